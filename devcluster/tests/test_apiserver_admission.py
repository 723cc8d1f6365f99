"""ValidatingAdmissionPolicy: specs compiled at write, evaluation in the write path with
kube-apiserver's matching, failure policies, messages, reasons and codes, and kubectl.

The module has its own API server: policies are cluster-wide."""

from __future__ import annotations

import contextlib
import json
import pathlib
import ssl
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import kubernetes.client
import pytest
from kubernetes.client import ApiException

from devcluster.apiserver.audit import DEFAULT_FILE, read_events
from devcluster.runner.testing import wait_for
from devcluster.testing import RunningDevCluster, body, running_devcluster
from micro.testing.tools import KUBECTL_INSTALL_HINT, kubectl_path

POLICY_FILE = pathlib.Path(__file__).resolve().parents[2] / ".k8s" / "02-admission-policy.yaml"
CONFIGMAPS = {
    "apiGroups": [""],
    "apiVersions": ["v1"],
    "operations": ["CREATE", "UPDATE", "DELETE"],
    "resources": ["configmaps"],
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDevCluster]:
    with running_devcluster(tmp_path_factory.mktemp("admission")) as running:
        yield running


@pytest.fixture
def api(cluster: RunningDevCluster) -> Iterator[kubernetes.client.ApiClient]:
    with cluster.api_client() as client:
        yield client


@pytest.fixture
def core(api: kubernetes.client.ApiClient) -> Any:
    return kubernetes.client.CoreV1Api(api)


@pytest.fixture
def http(cluster: RunningDevCluster) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=cluster.url,
        verify=ssl.create_default_context(cafile=str(cluster.ca_file)),
        headers={"Authorization": f"Bearer {cluster.admin_token}"},
        timeout=30,
    ) as client:
        yield client


@pytest.fixture
def namespace(core: Any) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(body({"metadata": {"name": name, "labels": {"team": "a"}}}))
    yield name
    core.delete_namespace(name)


Policy = Callable[..., str]


@pytest.fixture
def policy(api: kubernetes.client.ApiClient) -> Iterator[Policy]:
    """Create a policy on configmaps and a binding of it; both removed after the test."""
    admission: Any = kubernetes.client.AdmissionregistrationV1Api(api)
    created: list[str] = []

    def create(
        validations: list[dict[str, Any]],
        *,
        actions: tuple[str, ...] = ("Deny",),
        match_resources: dict[str, Any] | None = None,
        **spec: Any,
    ) -> str:
        name = f"p-{uuid.uuid4().hex[:8]}"
        spec.setdefault("matchConstraints", {"resourceRules": [CONFIGMAPS]})
        admission.create_validating_admission_policy(
            body({"metadata": {"name": name}, "spec": {"validations": validations, **spec}})
        )
        created.append(name)
        binding: dict[str, Any] = {"policyName": name, "validationActions": list(actions)}
        if match_resources is not None:
            binding["matchResources"] = match_resources
        admission.create_validating_admission_policy_binding(
            body({"metadata": {"name": f"{name}-binding"}, "spec": binding})
        )
        return name

    yield create
    for name in created:
        admission.delete_validating_admission_policy_binding(f"{name}-binding")
        admission.delete_validating_admission_policy(name)


def configmap(name: str, data: dict[str, str], labels: dict[str, str] | None = None) -> Any:
    return body({"metadata": {"name": name, "labels": labels or {}}, "data": data})


def refusal(call: Callable[..., Any], *args: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiException) as raised:
        call(*args)
    status: dict[str, Any] = json.loads(str(raised.value.body))
    assert status["code"] == raised.value.status
    return int(raised.value.status), status


def test_an_expression_that_does_not_compile_is_refused_at_create(
    api: kubernetes.client.ApiClient,
) -> None:
    admission: Any = kubernetes.client.AdmissionregistrationV1Api(api)
    broken: dict[str, Any] = {
        "metadata": {"name": "broken"},
        "spec": {
            "matchConstraints": {"resourceRules": [CONFIGMAPS]},
            "validations": [
                {"expression": "object.data.size() > 0"},
                {"expression": "objekt.data.size() > 0"},
                {"expression": "'a' + 1 == 'a1'"},
            ],
            "variables": [{"name": "two words", "expression": "1"}],
        },
    }
    code, status = refusal(admission.create_validating_admission_policy, body(broken))
    assert (code, status["reason"]) == (422, "Invalid")
    fields = {cause["field"]: cause["message"] for cause in status["details"]["causes"]}
    assert set(fields) == {
        "spec.validations[1].expression",
        "spec.validations[2].expression",
        "spec.variables[0].name",
    }
    assert "undeclared reference to 'objekt" in fields["spec.validations[1].expression"]
    assert fields["spec.validations[1].expression"].startswith(
        'Invalid value: "objekt.data.size() > 0": compilation failed: '
    )
    assert "no matching overload" in fields["spec.validations[2].expression"]
    validations = [{"expression": "'text'"}]
    not_bool = {**broken, "spec": {**broken["spec"], "variables": [], "validations": validations}}
    code, status = refusal(admission.create_validating_admission_policy, body(not_bool))
    assert "must evaluate to bool but got string" in status["message"]
    with pytest.raises(ApiException) as missing:
        admission.read_validating_admission_policy("broken")
    assert missing.value.status == 404


def test_a_binding_is_validated(api: kubernetes.client.ApiClient) -> None:
    admission: Any = kubernetes.client.AdmissionregistrationV1Api(api)
    spec = {"policyName": "p", "validationActions": ["Deny", "Warn", "Nope"]}
    code, status = refusal(
        admission.create_validating_admission_policy_binding,
        body({"metadata": {"name": "b"}, "spec": spec}),
    )
    fields = [cause["field"] for cause in status["details"]["causes"]]
    assert code == 422
    assert fields == ["spec.validationActions[2]", "spec.validationActions"]


def test_a_false_validation_is_422_by_default_and_403_when_forbidden(
    core: Any, namespace: str, policy: Policy
) -> None:
    invalid = policy([{"expression": "!('bad' in object.data)", "message": "no bad key"}])
    code, status = refusal(
        core.create_namespaced_config_map, namespace, configmap("c", {"bad": "1"})
    )
    inner = (
        f"ValidatingAdmissionPolicy '{invalid}' with binding '{invalid}-binding' "
        "denied request: no bad key"
    )
    assert (code, status["reason"]) == (422, "Invalid")
    assert status["message"] == f'configmaps "c" is forbidden: {inner}'
    assert status["details"] == {"name": "c", "kind": "configmaps", "causes": [{"message": inner}]}

    policy([{"expression": "!('worse' in object.data)", "reason": "Forbidden"}])
    code, status = refusal(
        core.create_namespaced_config_map, namespace, configmap("d", {"worse": "1"})
    )
    assert (code, status["reason"]) == (403, "Forbidden")
    assert status["message"].endswith(
        "denied request: failed expression: !('worse' in object.data)"
    )
    assert core.create_namespaced_config_map(namespace, configmap("e", {"good": "1"}))


def test_message_expression_and_its_fallbacks(core: Any, namespace: str, policy: Policy) -> None:
    policy(
        [
            {
                "expression": "object.data.size() < 2",
                "messageExpression": "'too many keys: ' + string(object.data.size())",
                "message": "unused",
            },
            {
                "expression": "!('x' in object.data)",
                "messageExpression": "object.data.nope",
                "message": "the static message",
            },
            {"expression": "!('y' in object.data)", "messageExpression": "'  '"},
        ]
    )
    _, status = refusal(
        core.create_namespaced_config_map, namespace, configmap("c", {"a": "1", "b": "2"})
    )
    assert status["message"].endswith("denied request: too many keys: 2")
    # A messageExpression that fails or is blank falls back to message, then to the
    # expression.
    _, status = refusal(core.create_namespaced_config_map, namespace, configmap("c", {"x": ""}))
    assert status["message"].endswith("denied request: the static message")
    _, status = refusal(core.create_namespaced_config_map, namespace, configmap("c", {"y": ""}))
    assert status["message"].endswith("denied request: failed expression: !('y' in object.data)")


@pytest.mark.parametrize("failure_policy", ["Fail", "Ignore"])
def test_failure_policy_on_a_runtime_error(
    core: Any, namespace: str, policy: Policy, failure_policy: str
) -> None:
    name = policy([{"expression": "object.data.required == 'yes'"}], failurePolicy=failure_policy)
    if failure_policy == "Ignore":
        assert core.create_namespaced_config_map(namespace, configmap("c", {"other": "1"}))
        return
    code, status = refusal(
        core.create_namespaced_config_map, namespace, configmap("c", {"other": "1"})
    )
    assert (code, status["reason"]) == (422, "Invalid")
    assert status["message"].startswith(
        f"configmaps \"c\" is forbidden: ValidatingAdmissionPolicy '{name}' with binding "
        f"'{name}-binding' denied request: expression 'object.data.required == 'yes'' "
        "resulted in error: "
    )


def test_match_conditions_variables_and_request(core: Any, namespace: str, policy: Policy) -> None:
    policy(
        [
            {
                "expression": "variables.size <= 1",
                "messageExpression": "request.operation + ' by ' + request.userInfo.username",
            }
        ],
        matchConditions=[{"name": "checked", "expression": "object.metadata.name != 'free'"}],
        variables=[
            {"name": "keys", "expression": "object.data"},
            {"name": "size", "expression": "variables.keys.size()"},
        ],
    )
    two = {"a": "1", "b": "2"}
    assert core.create_namespaced_config_map(namespace, configmap("free", two))
    _, status = refusal(core.create_namespaced_config_map, namespace, configmap("c", two))
    assert status["message"].endswith("denied request: CREATE by kubernetes-admin")
    core.create_namespaced_config_map(namespace, configmap("c", {"a": "1"}))
    _, status = refusal(core.patch_namespaced_config_map, "c", namespace, body({"data": two}))
    assert status["message"].endswith("denied request: UPDATE by kubernetes-admin")


def test_old_object_and_delete(core: Any, namespace: str, policy: Policy) -> None:
    policy(
        [
            {
                "expression": "request.operation != 'DELETE' || "
                "(object == null && oldObject.data.keep != 'yes')",
                "message": "kept",
            },
            {
                "expression": "oldObject == null || object == null || "
                "object.data.keep == oldObject.data.keep",
                "message": "keep is immutable",
            },
        ]
    )
    core.create_namespaced_config_map(namespace, configmap("c", {"keep": "yes"}))
    _, status = refusal(
        core.patch_namespaced_config_map, "c", namespace, body({"data": {"keep": "no"}})
    )
    assert status["message"].endswith("denied request: keep is immutable")
    _, status = refusal(core.delete_namespaced_config_map, "c", namespace)
    assert status["message"].endswith("denied request: kept")
    core.create_namespaced_config_map(namespace, configmap("d", {"keep": "no"}))
    core.delete_namespaced_config_map("d", namespace)


def test_selectors_and_binding_match_resources(core: Any, namespace: str, policy: Policy) -> None:
    policy(
        [{"expression": "false", "message": "labelled"}],
        matchConstraints={
            "resourceRules": [CONFIGMAPS],
            "objectSelector": {"matchLabels": {"checked": "yes"}},
        },
        match_resources={"namespaceSelector": {"matchLabels": {"team": "a"}}},
    )
    _, status = refusal(
        core.create_namespaced_config_map, namespace, configmap("c", {}, {"checked": "yes"})
    )
    assert status["message"].endswith("denied request: labelled")
    assert core.create_namespaced_config_map(namespace, configmap("d", {}, {"checked": "no"}))
    core.patch_namespace(namespace, body({"metadata": {"labels": {"team": "b"}}}))
    assert core.create_namespaced_config_map(namespace, configmap("e", {}, {"checked": "yes"}))


def test_a_rule_for_pods_does_not_catch_pods_status(
    core: Any, namespace: str, policy: Policy
) -> None:
    rule = {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["UPDATE"],
        "resources": ["pods"],
    }
    policy([{"expression": "false", "message": "pods"}], matchConstraints={"resourceRules": [rule]})
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "m", "image": "i"}]}}
    core.create_namespaced_pod(namespace, body(pod))
    status_patch = body({"status": {"message": "m"}})
    assert core.patch_namespaced_pod_status("p", namespace, status_patch)
    _, status = refusal(
        core.patch_namespaced_pod, "p", namespace, body({"metadata": {"labels": {"a": "b"}}})
    )
    assert status["message"].endswith("denied request: pods")
    policy(
        [{"expression": "false", "message": "status"}],
        matchConstraints={"resourceRules": [{**rule, "resources": ["pods/status"]}]},
    )
    _, status = refusal(core.patch_namespaced_pod_status, "p", namespace, status_patch)
    assert status["message"].endswith("denied request: status")


def test_warn_adds_a_warning_header_and_dry_run_is_checked(
    http: httpx.Client, namespace: str, policy: Policy
) -> None:
    name = policy(
        [{"expression": "object.data.size() == 0", "message": "has data"}], actions=("Warn",)
    )
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    created = http.post(path, json={"metadata": {"name": "c"}, "data": {"a": "1"}})
    assert created.status_code == 201, created.text
    assert created.headers.get_list("Warning") == [
        f"299 - \"Validation failed for ValidatingAdmissionPolicy '{name}' with binding "
        f"'{name}-binding': has data\""
    ]
    policy([{"expression": "false", "message": "no"}])
    dry = http.post(path, params={"dryRun": "All"}, json={"metadata": {"name": "d"}})
    assert dry.status_code == 422
    assert dry.json()["message"].endswith("denied request: no")


def test_a_denied_request_keeps_its_code_in_the_audit_log(
    cluster: RunningDevCluster, core: Any, namespace: str, policy: Policy
) -> None:
    policy([{"expression": "false", "reason": "Forbidden"}])
    code, _ = refusal(core.create_namespaced_config_map, namespace, configmap("c", {}))
    assert code == 403

    def denied_create() -> list[dict[str, Any]]:
        # The log is flushed a moment after each request.
        return [
            event
            for event in read_events(cluster.state_dir / DEFAULT_FILE)
            if event.get("verb") == "create"
            and event.get("stage") == "ResponseComplete"
            and (event.get("objectRef") or {}).get("namespace") == namespace
            and (event.get("objectRef") or {}).get("resource") == "configmaps"
        ]

    events = wait_for("the denied create's audit event", denied_create, timeout_s=10)
    assert [e["responseStatus"]["code"] for e in events] == [403]
    assert events[0]["responseStatus"]["reason"] == "Forbidden"


def test_kubectl_applies_the_project_policy_file(cluster: RunningDevCluster) -> None:
    binary = kubectl_path()
    if binary is None:
        pytest.skip(f"kubectl is not installed: {KUBECTL_INSTALL_HINT}")

    def kubectl(*args: str) -> str:
        done = subprocess.run(
            [binary, "--kubeconfig", str(cluster.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    applied = kubectl("apply", "-f", str(POLICY_FILE))
    try:
        assert "validatingadmissionpolicy.admissionregistration.k8s.io/" in applied
        assert "validatingadmissionpolicybinding.admissionregistration.k8s.io/" in applied
        assert "created" in applied
        again = kubectl("apply", "-f", str(POLICY_FILE))
        assert again.count("unchanged") == 2, again
        listed = kubectl("get", "validatingadmissionpolicies", "-o", "name")
        assert (
            listed
            == "validatingadmissionpolicy.admissionregistration.k8s.io/gomicro-service-own-pod\n"
        )
    finally:
        with contextlib.suppress(AssertionError):
            kubectl("delete", "-f", str(POLICY_FILE))
