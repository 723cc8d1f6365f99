"""A pod's folder: its volumes, and each container's view of the filesystem.

    <pods>/<uid>/volumes/<volume>/         emptyDir, configMap, secret, projected
    <pods>/<uid>/root/<container>/<mountPath> -> the volume (a symlink)

A process finds a file it would read at /etc/config/app.yaml in a container at
$DEVCLUSTER_ROOT/etc/config/app.yaml. ConfigMap and Secret volumes are written as the
kubelet writes them, a timestamped folder behind a `..data` symlink swapped atomically,
so that an update never shows a half-written folder.
"""

from __future__ import annotations

import base64
import datetime
import os
import pathlib
import shutil
from collections.abc import Callable

from devcluster.runner.kube import Obj
from devcluster.runner.kubelet.env import EnvError, Lookup, field_value

SERVICE_ACCOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
# (audience list, expiry seconds) -> token; a pod's TokenRequest
TokenSource = Callable[[list[str], int], str]


def data_bytes(obj: Obj, secret: bool) -> dict[str, bytes]:
    if secret:
        files = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        files.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
        return files
    files = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    files.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return files


def _select(files: dict[str, bytes], items: list[Obj] | None, what: str) -> dict[str, bytes]:
    if not items:
        return files
    chosen = {}
    for item in items:
        if item["key"] not in files:
            raise EnvError(f"{what} has no key {item['key']!r}")
        chosen[item["path"]] = files[item["key"]]
    return chosen


def write_atomically(target: pathlib.Path, files: dict[str, bytes], mode: int = 0o644) -> None:
    """The kubelet's AtomicWriter: a new ..<timestamp> folder, then swap ..data; nothing
    when the files are already those."""
    target.mkdir(parents=True, exist_ok=True)
    if _written(target / "..data", files):
        return
    stamp = datetime.datetime.now(datetime.UTC).strftime("..%Y_%m_%d_%H_%M_%S.%f")
    folder = target / stamp
    folder.mkdir()
    for relative, content in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    link = target / "..data"
    previous = os.readlink(link) if link.is_symlink() else None
    temporary = target / "..data_tmp"
    if temporary.is_symlink():
        temporary.unlink()
    temporary.symlink_to(stamp)
    temporary.replace(link)
    for top in {relative.split("/", 1)[0] for relative in files}:
        entry = target / top
        if not entry.is_symlink() and not entry.exists():
            entry.symlink_to(f"..data/{top}")
    for entry in target.iterdir():
        if entry.is_symlink() and not entry.name.startswith("..") and not entry.exists():
            entry.unlink()  # a key removed from the source
    # The folder just replaced stays until the next write: a reader that resolved
    # ..data an instant before the swap still finds its files.
    for entry in target.iterdir():
        if entry.name.startswith("..2") and entry.name not in (stamp, previous):
            shutil.rmtree(entry, ignore_errors=True)


def _written(folder: pathlib.Path, files: dict[str, bytes]) -> bool:
    """Whether folder holds exactly these files (and, so, need not be written again)."""
    if not folder.is_dir():
        return False
    present = {str(path.relative_to(folder)) for path in folder.rglob("*") if not path.is_dir()}
    if present != set(files):
        return False
    try:
        return all((folder / relative).read_bytes() == data for relative, data in files.items())
    except OSError:
        return False


class PodFiles:
    """Materialises one pod's volumes and container roots."""

    def __init__(self, folder: pathlib.Path, pod: Obj, lookup: Lookup, token: TokenSource) -> None:
        self.folder = folder
        self.pod = pod
        self.lookup = lookup
        self.token = token

    def volume_dir(self, name: str) -> pathlib.Path:
        return self.folder / "volumes" / name

    def container_root(self, container: str) -> pathlib.Path:
        return self.folder / "root" / container

    def prepare(self, ca_data: bytes, with_service_account: bool) -> None:
        for volume in self.pod["spec"].get("volumes") or []:
            self.write_volume(volume)
        if with_service_account:
            self.write_service_account(ca_data)
        containers = [
            *(self.pod["spec"].get("initContainers") or []),
            *self.pod["spec"].get("containers", []),
        ]
        for container in containers:
            self._mount(container, with_service_account)

    def write_service_account(self, ca_data: bytes) -> None:
        """The token, ca.crt and namespace the in-cluster config loader reads."""
        write_atomically(
            self.volume_dir("kube-api-access"),
            {
                "token": self.token([], 3607).encode(),
                "ca.crt": ca_data,
                "namespace": self.pod["metadata"]["namespace"].encode(),
            },
        )

    def write_token_volumes(self, ca_data: bytes, with_service_account: bool) -> None:
        """Every volume that shows a service-account token, written again: a kept token
        stays, one that fell due is renewed (other sources are read afresh too)."""
        for volume in self.pod["spec"].get("volumes") or []:
            sources = (volume.get("projected") or {}).get("sources") or []
            if any("serviceAccountToken" in source for source in sources):
                self.write_volume(volume)
        if with_service_account:
            self.write_service_account(ca_data)

    def write_volume(self, volume: Obj) -> None:
        name = volume["name"]
        target = self.volume_dir(name)
        namespace = self.pod["metadata"]["namespace"]
        if "emptyDir" in volume:
            target.mkdir(parents=True, exist_ok=True)
        elif "configMap" in volume or "secret" in volume:
            secret = "secret" in volume
            source = volume["secret" if secret else "configMap"]
            ref = source.get("secretName" if secret else "name", "")
            kind = "Secret" if secret else "ConfigMap"
            obj = self.lookup(kind, namespace, ref)
            if obj is None:
                if not source.get("optional"):
                    raise EnvError(f'{kind.lower()} "{ref}" not found')
                files: dict[str, bytes] = {}
            else:
                files = _select(data_bytes(obj, secret), source.get("items"), f"{kind} {ref}")
            write_atomically(target, files, source.get("defaultMode", 0o644))
        elif "projected" in volume:
            write_atomically(target, self._projected(volume["projected"], namespace))
        elif "downwardAPI" in volume:
            write_atomically(target, self._downward(volume["downwardAPI"].get("items") or []))
        else:
            raise EnvError(
                f"volume {name!r}: only emptyDir, configMap, secret, projected and "
                "downwardAPI volumes are supported"
            )

    def _projected(self, projected: Obj, namespace: str) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        for source in projected.get("sources") or []:
            if "serviceAccountToken" in source:
                spec = source["serviceAccountToken"]
                audience = [spec["audience"]] if spec.get("audience") else []
                files[spec["path"]] = self.token(
                    audience, spec.get("expirationSeconds", 3607)
                ).encode()
            elif "downwardAPI" in source:
                files.update(self._downward(source["downwardAPI"].get("items") or []))
            else:
                for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
                    if key not in source:
                        continue
                    ref = source[key]
                    obj = self.lookup(kind, namespace, ref["name"])
                    if obj is None:
                        if ref.get("optional"):
                            continue
                        raise EnvError(f'{kind.lower()} "{ref["name"]}" not found')
                    files.update(_select(data_bytes(obj, kind == "Secret"), ref.get("items"), kind))
        return files

    def _downward(self, items: list[Obj]) -> dict[str, bytes]:
        return {
            item["path"]: field_value(self.pod, item["fieldRef"]["fieldPath"]).encode()
            for item in items
            if "fieldRef" in item
        }

    def _mount(self, container: Obj, with_service_account: bool) -> None:
        root = self.container_root(container["name"])
        root.mkdir(parents=True, exist_ok=True)
        mounts = [
            (m["mountPath"], m["name"], m.get("subPath", ""))
            for m in container.get("volumeMounts") or []
        ]
        if with_service_account and not any(path == SERVICE_ACCOUNT_PATH for path, _, _ in mounts):
            mounts.append((SERVICE_ACCOUNT_PATH, "kube-api-access", ""))
        for mount_path, volume, sub_path in mounts:
            link = root / mount_path.lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            source = self.volume_dir(volume) / sub_path if sub_path else self.volume_dir(volume)
            if sub_path and not source.exists():
                source.mkdir(parents=True, exist_ok=True)
            if link.is_symlink():
                link.unlink()
            link.symlink_to(source)
