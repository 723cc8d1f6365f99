"""Name and metadata validation with kube-apiserver's messages."""

from __future__ import annotations

import re
from typing import Any

from devcluster.apiserver.selectors import valid_label_key, valid_label_value

Causes = list[tuple[str, str]]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character (e.g. "
    "'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_1123_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
LABEL_1035_MESSAGE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)

# Which name rule each kind uses (the default is an RFC 1123 subdomain).
_NAME_RULES = {
    "namespaces": (_LABEL_1123, 63, LABEL_1123_MESSAGE),
    "services": (_LABEL_1035, 63, LABEL_1035_MESSAGE),
}
_PATH_SEGMENT_KINDS = {"roles", "rolebindings", "clusterroles", "clusterrolebindings"}


def name_causes(plural: str, name: str) -> Causes:
    if plural in _PATH_SEGMENT_KINDS:
        if name in (".", "..") or "/" in name or "%" in name:
            return [("metadata.name", f"Invalid value: \"{name}\": may not contain '/' or '%'")]
        return []
    pattern, limit, message = _NAME_RULES.get(plural, (_SUBDOMAIN, 253, SUBDOMAIN_MESSAGE))
    if len(name) > limit:
        return [
            ("metadata.name", f'Invalid value: "{name}": must be no more than {limit} characters')
        ]
    if not pattern.match(name):
        return [("metadata.name", f'Invalid value: "{name}": {message}')]
    return []


def metadata_causes(metadata: dict[str, Any]) -> Causes:
    causes: Causes = []
    labels = metadata.get("labels") or {}
    if not isinstance(labels, dict):
        return [("metadata.labels", "Invalid value: labels must be a map of strings")]
    for key, value in labels.items():
        if not valid_label_key(key):
            causes.append(
                (
                    "metadata.labels",
                    f'Invalid value: "{key}": name part must consist of alphanumeric characters, '
                    "'-', '_' or '.', and must start and end with an alphanumeric character",
                )
            )
        if not isinstance(value, str) or not valid_label_value(value):
            causes.append(
                (
                    "metadata.labels",
                    f'Invalid value: "{value}": a valid label must be an empty string or consist '
                    "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character",
                )
            )
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, dict):
        return [*causes, ("metadata.annotations", "Invalid value: must be a map of strings")]
    for key, value in annotations.items():
        if not valid_label_key(key):
            causes.append(
                (
                    "metadata.annotations",
                    f'Invalid value: "{key}": name part must '
                    "consist of alphanumeric characters, '-', '_' or '.'",
                )
            )
        if not isinstance(value, str):
            causes.append(("metadata.annotations", f"Invalid value: {key}: must be a string"))
    return causes
