"""Every object in .k8s validates against the Kubernetes API schemas and applies in one go."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

# The oldest Kubernetes these manifests promise to run on (ValidatingAdmissionPolicy is
# admissionregistration.k8s.io/v1 from 1.30 on), and the newest schema known.
OLDEST_SUPPORTED = "1.30.0"
VERSIONS = (OLDEST_SUPPORTED, kubernetes_validate.latest_version())
NAMESPACE = "go-micro"
# Kinds that live in no namespace (the admission policy that narrows the Roles).
CLUSTER_SCOPED = frozenset({"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"})


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_validates_strictly(
    k8s_documents: list[tuple[Path, dict[str, Any]]], version: str
) -> None:
    failures = []
    for path, document in k8s_documents:
        name = f"{path.name}: {document.get('kind')}/{document.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{name}: {exc.message} at {'.'.join(map(str, exc.path))}")
    assert not failures, "\n".join(failures)
    assert len(k8s_documents) >= 1 + 7 * 5, "the namespace and seven objects per service"


def test_schema_validation_rejects_a_wrong_field(
    k8s_objects: dict[str, dict[str, Any]],
) -> None:
    """The check above has teeth: a typo in a pod spec fails it."""
    deployment = k8s_objects["Deployment/user-srv"]
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_namespace_sorts_first_and_holds_everything(
    k8s_documents: list[tuple[Path, dict[str, Any]]],
) -> None:
    first_path, first = k8s_documents[0]
    assert (first["kind"], first["metadata"]["name"]) == ("Namespace", NAMESPACE)
    namespace_files = {p.name for p, d in k8s_documents if d["kind"] == "Namespace"}
    assert namespace_files == {first_path.name}
    for path, document in k8s_documents[1:]:
        where = f"{path.name}: {document['kind']}/{document['metadata']['name']}"
        expected = None if document["kind"] in CLUSTER_SCOPED else NAMESPACE
        assert document["metadata"].get("namespace") == expected, where


def test_no_secret_is_committed(k8s_documents: list[tuple[Path, dict[str, Any]]]) -> None:
    """Secrets come from `make secrets` into a git-ignored folder, never from .k8s."""
    assert not [d for _, d in k8s_documents if d["kind"] == "Secret"]


def test_every_object_is_labelled_and_named_uniquely(
    k8s_documents: list[tuple[Path, dict[str, Any]]],
) -> None:
    seen: set[tuple[str, str]] = set()
    for path, document in k8s_documents:
        key = (document["kind"], document["metadata"]["name"])
        assert key not in seen, f"{key} twice ({path.name})"
        seen.add(key)
        if path.name.endswith("-srv.yaml"):
            assert document["metadata"]["labels"]["app"] == path.stem, key
