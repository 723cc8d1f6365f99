"""A container's environment: downward API, ConfigMaps, Secrets, $(VAR) expansion."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from devcluster.runner.kube import Obj

# (kind, namespace, name) -> the object or None
Lookup = Callable[[str, str, str], Obj | None]

# What a container image would carry, taken from the runner's own environment.
INHERITED = ("PATH", "LANG", "LC_ALL", "TZ", "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR")

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class EnvError(Exception):
    """A reference the kubelet cannot resolve (CreateContainerConfigError)."""


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes $(VAR) expansion: $$ escapes, unknown references stay as written."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, value)


def field_value(pod: Obj, path: str) -> str:
    meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    labelled = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if labelled:
        return str((meta.get(labelled.group(1)) or {}).get(labelled.group(2), ""))
    simple: dict[str, Any] = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": status.get("podIP"),
        "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs") or []),
        "status.hostIP": status.get("hostIP"),
        "status.hostIPs": ",".join(i["ip"] for i in status.get("hostIPs") or []),
    }
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    if path not in simple:
        raise EnvError(f"unsupported fieldRef {path!r}")
    return "" if simple[path] is None else str(simple[path])


_UNITS: dict[str, Decimal | int] = {
    "": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip


def quantity(value: str) -> Decimal:
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    if not match or match.group(2) not in _UNITS:
        raise EnvError(f"bad quantity {value!r}")
    return Decimal(match.group(1)) * Decimal(_UNITS[match.group(2)])


def resource_value(container: Obj, ref: Obj) -> str:
    """resourceFieldRef: a limit (or request) divided by the divisor, rounded up."""
    section, _, name = ref["resource"].partition(".")
    resources = container.get("resources") or {}
    raw = (resources.get(section) or {}).get(name)
    if raw is None and section == "limits":
        raw = {"cpu": str(os.cpu_count() or 1), "memory": "0"}.get(name)
    if raw is None:
        raw = "0"
    divisor = quantity(str(ref.get("divisor", "1")))
    value = quantity(str(raw)) / divisor
    return str(int(value.to_integral_value(rounding="ROUND_CEILING")))


def _data(obj: Obj, secret: bool) -> dict[str, str]:
    if secret:
        decoded = {
            k: base64.b64decode(v).decode(errors="replace")
            for k, v in (obj.get("data") or {}).items()
        }
        decoded.update(obj.get("stringData") or {})
        return decoded
    return {str(k): str(v) for k, v in (obj.get("data") or {}).items()}


def container_env(
    pod: Obj, container: Obj, lookup: Lookup, base: Mapping[str, str]
) -> dict[str, str]:
    """envFrom first, then env in order (later wins), each value expanded against what
    came before, as the kubelet builds it; `base` underlies everything."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(key)
            if not ref:
                continue
            obj = lookup(kind, namespace, ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f'{kind.lower()} "{ref["name"]}" not found')
            for name, value in _data(obj, kind == "Secret").items():
                env[prefix + name] = value
    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" not in item:
            env[name] = expand(str(item.get("value", "")), env)
            continue
        source = item["valueFrom"]
        if "fieldRef" in source:
            env[name] = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            env[name] = resource_value(container, source["resourceFieldRef"])
        else:
            for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                ref = source.get(key)
                if not ref:
                    continue
                obj = lookup(kind, namespace, ref["name"])
                data = _data(obj, kind == "Secret") if obj is not None else None
                if data is None or ref["key"] not in data:
                    if ref.get("optional"):
                        break
                    missing = "not found" if data is None else f'has no key "{ref["key"]}"'
                    raise EnvError(f'{kind.lower()} "{ref["name"]}" {missing}')
                env[name] = data[ref["key"]]
    return env


def inherited() -> dict[str, str]:
    return {k: os.environ[k] for k in INHERITED if k in os.environ}
