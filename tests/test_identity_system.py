"""Zero trust between the services, attacked on the running system of .k8s (issue 14).

Every attack is made as a compromised data-srv (or any process reaching a pod address)
would make it: straight to a pod's gRPC port, with the tokens the API server hands out,
through the official Kubernetes client. Positive controls show each refusal has teeth.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import kubernetes.client
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes.client.exceptions import ApiException

from api.token_srv.v1 import token_pb2, token_pb2_grpc
from devcluster.apiserver.audit import DEFAULT_FILE, read_events
from devcluster.apiserver.signing_keys import SigningKeys
from devcluster.runner.testing import ready_pods, wait_for
from micro.identity import IDENTITY_METADATA_KEY

from .audit_calls import calls_by_service, self_registered
from .cluster_load import Load
from .cluster_system import LOGIN, NAMESPACE, SERVICES, TOKEN_REFRESH_S, System

GENERATE = "token_srv.v1.TokenService/GenerateToken"
TOKEN_SRV = "go-micro.token-srv"
CALL_TIMEOUT_S = 5.0
LOGINS = 100
FORGED_POD = "forged-user-srv"


def first_ready_pod(system: System, app: str) -> Any:
    pods = ready_pods(system.node.core, NAMESPACE, f"app={app}")
    assert pods, f"no ready {app} pod"
    return pods[0]


def bound_token(system: System, account: str, audience: str, pod: Any) -> str:
    """A TokenRequest for `account` bound to `pod`, as the kubelet asks for a projected one."""
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": [audience] if audience else [],
            "expirationSeconds": 600,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": pod.metadata.name,
                "uid": pod.metadata.uid,
            },
        },
    }
    answer = system.node.core.create_namespaced_service_account_token(account, NAMESPACE, request)
    token: str = answer.status.token
    return token


def generate(address: str, token: str | None) -> token_pb2.GenerateTokenResponse:
    """token-srv's GenerateToken for an admin, straight to a pod, with `token` as identity."""
    metadata = ((IDENTITY_METADATA_KEY, token),) if token is not None else ()
    with grpc.insecure_channel(address) as channel:
        stub = token_pb2_grpc.TokenServiceStub(channel)
        request = token_pb2.GenerateTokenRequest(user_id="1", user_name="thangn", role="admin")
        reply: token_pb2.GenerateTokenResponse = stub.GenerateToken(
            request, metadata=metadata, timeout=CALL_TIMEOUT_S
        )
        return reply


def refusal(address: str, token: str | None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        generate(address, token)
    error: grpc.RpcError = caught.value
    assert token is None or token not in (error.details() or ""), "a token in a refusal"
    return error


@pytest.fixture(scope="module")
def token_srv(system: System) -> str:
    return f"{first_ready_pod(system, 'token-srv').status.pod_ip}:9090"


@pytest.fixture(scope="module")
def admin_identity(system: System) -> str:
    """admin-srv's identity for token-srv: what its projected volume holds."""
    return bound_token(system, "admin-srv", TOKEN_SRV, first_ready_pod(system, "admin-srv"))


# refusals by token-srv ------------------------------------------------------------------


def test_admin_srv_identity_may_generate_a_token(token_srv: str, admin_identity: str) -> None:
    """The control: the caller the rules allow gets its answer straight from the pod."""
    assert generate(token_srv, admin_identity).token.access_token


def test_no_identity_is_unauthenticated(token_srv: str) -> None:
    error = refusal(token_srv, None)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "missing" in (error.details() or "").lower()


def test_data_srv_identity_may_not_mint_a_token(system: System, token_srv: str) -> None:
    identity = bound_token(system, "data-srv", TOKEN_SRV, first_ready_pod(system, "data-srv"))
    error = refusal(token_srv, identity)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    details = error.details() or ""
    assert f"system:serviceaccount:{NAMESPACE}:data-srv" in details
    assert GENERATE in details


def test_a_token_for_another_audience_is_unauthenticated(system: System, token_srv: str) -> None:
    """admin-srv's identity for user-srv, replayed to token-srv."""
    pod = first_ready_pod(system, "admin-srv")
    identity = bound_token(system, "admin-srv", "go-micro.user-srv", pod)
    error = refusal(token_srv, identity)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "audience" in (error.details() or "").lower()


def test_an_expired_token_is_unauthenticated(
    system: System, token_srv: str, admin_identity: str
) -> None:
    """admin-srv's own claims, signed by the cluster's own key, expired a minute ago."""
    claims = jwt.decode(admin_identity, options={"verify_signature": False})
    now = int(time.time())
    claims.update(iat=now - 660, nbf=now - 660, exp=now - 60)
    expired = SigningKeys(system.node.state_dir / "pki").sign(claims)
    error = refusal(token_srv, expired)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in (error.details() or "").lower()


@pytest.mark.parametrize(
    ("kid", "named"), [("the cluster's", "bad signature"), ("an unknown", "unknown key")]
)
def test_a_token_signed_by_another_key_is_unauthenticated(
    token_srv: str, admin_identity: str, kid: str, named: str
) -> None:
    """admin-srv's own claims signed by a key made here, under the cluster's key id (a bad
    signature) or one the JWKS does not list (an unknown key, after a refetch)."""
    header = jwt.get_unverified_header(admin_identity)
    claims = jwt.decode(admin_identity, options={"verify_signature": False})
    forged = jwt.encode(
        claims,
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": header["kid"] if kid == "the cluster's" else "not-a-cluster-key"},
    )
    error = refusal(token_srv, forged)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert named in (error.details() or "")


# registration that cannot be forged -------------------------------------------------------


class CountingServer:
    """A real gRPC server that answers nothing and counts every call it receives."""

    def __init__(self, address: str) -> None:
        self.calls = 0
        counter = self

        class Count(grpc.GenericRpcHandler):  # type: ignore[type-arg]
            def service(self, handler_call_details: Any) -> None:
                counter.calls += 1  # one thread: the pool below has one worker

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        self.server.add_generic_rpc_handlers((Count(),))
        assert self.server.add_insecure_port(address) > 0, f"cannot listen on {address}"
        self.server.start()

    def stop(self) -> None:
        self.server.stop(0).wait()


def forged_instances(system: System, pod: Any) -> float:
    """micro_registry_forged_instances_total for user-srv on one admin-srv pod."""
    text = httpx.get(f"http://{pod.status.pod_ip}:9091/metrics", timeout=5).text
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("micro_registry_forged_instances_total{")
        and 'service="go-micro.user-srv"' in line
    )


@pytest.fixture
def forged_user_srv(system: System) -> Iterator[CountingServer]:
    """A Pod under data-srv's account that carries user-srv's registry labels, running,
    with a counting gRPC server at its address; deleted afterwards."""
    core = system.node.core
    real = first_ready_pod(system, "user-srv").metadata
    labels = {k: v for k, v in real.labels.items() if k.startswith("gomicro-service-")}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": FORGED_POD,
            "labels": {**labels, "gomicro-service-id": "forged"},
            "annotations": {
                k: v for k, v in real.annotations.items() if k.startswith("gomicro-service-")
            },
        },
        "spec": {
            "serviceAccountName": "data-srv",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "idle",
                    "image": "devexps/data-srv:k8s",
                    "command": ["python", "-c", "import time; time.sleep(3600)"],
                }
            ],
        },
    }
    core.create_namespaced_pod(NAMESPACE, pod)
    server: CountingServer | None = None
    try:
        ip = wait_for(
            "the forged pod to run",
            lambda: (
                (p := core.read_namespaced_pod(FORGED_POD, NAMESPACE)).status.phase == "Running"
                and p.status.pod_ip
            ),
            30,
        )
        server = CountingServer(f"{ip}:9090")
        yield server
    finally:
        if server is not None:
            server.stop()
        core.delete_namespaced_pod(FORGED_POD, NAMESPACE, grace_period_seconds=0)
        wait_for("the forged pod to go", lambda: not pod_exists(system, FORGED_POD), 30)


def pod_exists(system: System, name: str) -> bool:
    try:
        system.node.core.read_namespaced_pod(name, NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def test_a_pod_with_user_srv_labels_under_another_account_gets_no_call(
    system: System, forged_user_srv: CountingServer
) -> None:
    gateways = ready_pods(system.node.core, NAMESPACE, "app=admin-srv")
    wait_for(
        "every admin-srv to see and skip the forged pod",
        lambda: all(forged_instances(system, pod) >= 1 for pod in gateways),
        30,
        0.2,
    )
    answers = [system.http.post("/admin/v1/login", json=LOGIN).status_code for _ in range(LOGINS)]
    assert answers == [200] * LOGINS
    assert forged_user_srv.calls == 0


# the admission policy, against the deployed .k8s -----------------------------------------


@contextlib.contextmanager
def as_account(system: System, token: str) -> Iterator[Any]:
    """The core API as the holder of `token` (the client's models are Optional: Any)."""
    configuration = kubernetes.client.Configuration()
    source = system.node.api.configuration
    configuration.host = source.host
    configuration.ssl_ca_cert = source.ssl_ca_cert
    configuration.verify_ssl = True
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    with kubernetes.client.ApiClient(configuration) as client:
        yield kubernetes.client.CoreV1Api(client)


def patch_status(call: Any) -> tuple[int, str]:
    try:
        call()
    except ApiException as exc:
        return int(exc.status), str(exc.body)
    return 200, ""


def test_data_srv_may_patch_only_its_own_registry_metadata(system: System) -> None:
    """With data-srv's pod-bound API token: another pod's labels or image, and its own
    pod's other metadata, are refused by the policy (RBAC alone grants pods patch)."""
    own = first_ready_pod(system, "data-srv")
    target = first_ready_pod(system, "token-srv")
    image = target.spec.containers[0].image
    with as_account(system, bound_token(system, "data-srv", "", own)) as core:
        attempts = {
            "token-srv's registry label": lambda: core.patch_namespaced_pod(
                target.metadata.name,
                NAMESPACE,
                {"metadata": {"labels": {"gomicro-service-app": "go-micro.data-srv"}}},
            ),
            "token-srv's image": lambda: core.patch_namespaced_pod(
                target.metadata.name,
                NAMESPACE,
                {"spec": {"containers": [{"name": "token-srv", "image": "devexps/data-srv:k8s"}]}},
            ),
            "its own app label": lambda: core.patch_namespaced_pod(
                own.metadata.name, NAMESPACE, {"metadata": {"labels": {"app": "admin-srv"}}}
            ),
            "its own other annotation": lambda: core.patch_namespaced_pod(
                own.metadata.name,
                NAMESPACE,
                {"metadata": {"annotations": {"prometheus.io/port": "9090"}}},
            ),
        }
        answers = {what: patch_status(call) for what, call in attempts.items()}
        refused = {
            what
            for what, (code, body) in answers.items()
            if code in (403, 422) and "ValidatingAdmissionPolicy" in body
        }
        assert refused == set(attempts), answers
        after = system.node.core.read_namespaced_pod(target.metadata.name, NAMESPACE)
        assert after.spec.containers[0].image == image
        # The control: its own registry labels stay its to write (the value it has).
        version = own.metadata.labels["gomicro-service-version"]
        own_label = {"metadata": {"labels": {"gomicro-service-version": version}}}
        assert patch_status(
            lambda: core.patch_namespaced_pod(own.metadata.name, NAMESPACE, own_label)
        ) == (200, "")


# rotation ---------------------------------------------------------------------------------


def token_file(system: System, pod: Any, name: str) -> Path:
    (path,) = system.node.state_dir.glob(f"**/{pod.metadata.uid}/volumes/identity/{name}")
    return path


def test_a_rotated_identity_token_is_used_without_a_failed_call(system: System) -> None:
    """The kubelet rewrites admin-srv's projected tokens every TOKEN_REFRESH_S (the
    devcluster's test-only cap); logins and lookups keep working across two swaps."""
    pods = ready_pods(system.node.core, NAMESPACE, "app=admin-srv")
    files = [token_file(system, pod, TOKEN_SRV) for pod in pods]
    first = [f.read_text() for f in files]
    load = Load(system, clients=1, duration_s=6 * TOKEN_REFRESH_S, limit=3000)
    load.start()
    try:
        wait_for(
            "a token swap on every admin-srv pod",
            lambda: all(f.read_text() != t for f, t in zip(files, first, strict=True)),
            3 * TOKEN_REFRESH_S,
            0.2,
        )
        second = [f.read_text() for f in files]
        wait_for(
            "another swap",
            lambda: all(f.read_text() != t for f, t in zip(files, second, strict=True)),
            3 * TOKEN_REFRESH_S,
            0.2,
        )
        swapped = time.monotonic()
        wait_for("calls after the swap", lambda: load.completed_since(swapped) >= 5, 30, 0.1)
    finally:
        requests = load.stop()
    assert [f"{r.operation}: {r.error}" for r in requests if not r.ok] == []
    assert len(requests) >= 5


# the audit log ----------------------------------------------------------------------------


def test_no_service_account_touched_a_pod_but_its_own(system: System) -> None:
    """Every patch, update or delete of a Pod that a service's account made and the API
    server carried out named the pod the token is bound to."""
    log = system.node.state_dir / DEFAULT_FILE
    calls = wait_for(
        "the services' registrations in the audit log",
        lambda: (
            (c := calls_by_service(read_events(log), NAMESPACE))
            and all(self_registered(c[s]) for s in SERVICES)
            and c
        ),
        10,
    )
    touched = [
        (service, c.verb, c.name, c.pod)
        for service in SERVICES
        for c in calls[service]
        if c.resource.startswith("pods")
        and c.verb in ("patch", "update", "delete")
        and 200 <= c.code < 300
        and c.name != c.pod
    ]
    assert touched == []
