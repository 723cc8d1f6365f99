"""The Pod keys of the registry contract, for a configurable prefix, and their checks."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

MAX_LABEL_VALUE = 63
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


class LabelValueError(ValueError):
    """A value that Kubernetes would refuse as a label value."""


@dataclass(frozen=True)
class RegistryKeys:
    """gomicro-service-id/app/version labels and metadata/protocols annotations; the
    prefix "kratos" gives kratos-service-*."""

    prefix: str = "gomicro"

    @property
    def id(self) -> str:
        return f"{self.prefix}-service-id"

    @property
    def app(self) -> str:
        return f"{self.prefix}-service-app"

    @property
    def version(self) -> str:
        return f"{self.prefix}-service-version"

    @property
    def metadata(self) -> str:
        return f"{self.prefix}-service-metadata"

    @property
    def protocols(self) -> str:
        return f"{self.prefix}-service-protocols"

    def app_selector(self, service_name: str) -> str:
        check_label_value(self.app, service_name)
        return f"{self.app}={service_name}"


def check_label_value(key: str, value: str) -> None:
    """Raise LabelValueError naming the key, the value and the rule it breaks."""
    if not value:
        raise LabelValueError(f"label {key}: the value must not be empty")
    if len(value) > MAX_LABEL_VALUE:
        raise LabelValueError(
            f"label {key}={value!r}: {len(value)} characters, at most {MAX_LABEL_VALUE} allowed"
        )
    if not _LABEL_VALUE.match(value):
        raise LabelValueError(
            f"label {key}={value!r}: only letters, digits, '-', '_' and '.' are allowed, "
            "and it must begin and end with a letter or digit"
        )


def instance_id(pod_name: str, service_name: str) -> str:
    """ "<pod name>.<service name>", the id Go-Micro logs, kept a valid label value: when
    longer than 63 characters it is cut and ends in 8 hex digits of its SHA-256, so it
    stays unique and stable for the pod."""
    full = f"{pod_name}.{service_name}"
    if len(full) <= MAX_LABEL_VALUE:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    head = full[: MAX_LABEL_VALUE - len(digest) - 1].rstrip("-_.")
    return f"{head}-{digest}"
