"""The audit log: one audit.k8s.io/v1 Event per request, as kube-apiserver's at level
Metadata, in <state-dir>/audit.log unless --audit-log-path says otherwise."""

from __future__ import annotations

import base64
import datetime
import pathlib
import secrets
import ssl
from collections.abc import Callable
from typing import Any

import httpx
import kubernetes.client
import pytest
from kubernetes.client import ApiException

from devcluster.apiserver.audit import DEFAULT_FILE, Event, read_events
from devcluster.runner.testing import wait_for
from devcluster.testing import RunningDevCluster, body, running_devcluster

ROTATION_REQUESTS = 6000  # more than enough to pass 1 MB of events


def _log(devcluster: RunningDevCluster) -> pathlib.Path:
    return devcluster.state_dir / DEFAULT_FILE


def _events(path: pathlib.Path, match: Callable[[Event], bool], count: int = 1) -> list[Event]:
    """The matching events, once at least `count` of them are in the log (it is flushed
    a moment after each request)."""

    def matching() -> list[Event]:
        found = [e for e in read_events(path) if match(e)]
        return found if len(found) >= count else []

    found: list[Event] = wait_for(f"{count} audit event(s)", matching, timeout_s=10)
    return found


def _by_id(audit_id: str) -> Callable[[Event], bool]:
    return lambda event: event["auditID"] == audit_id


def _time(stamp: str) -> datetime.datetime:
    assert stamp.endswith("Z"), stamp
    assert len(stamp.split(".")[1]) == len("123456Z"), stamp  # microseconds
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_a_get_is_one_metadata_event_at_response_complete(
    devcluster: RunningDevCluster, core: Any, http: httpx.Client, namespace: str
) -> None:
    core.create_namespaced_config_map(namespace, body({"metadata": {"name": "settings"}}))
    path = f"/api/v1/namespaces/{namespace}/configmaps/settings"
    answer = http.get(path, params={"pretty": "false"})
    assert answer.status_code == 200
    audit_id = answer.headers["Audit-Id"]

    [event] = _events(_log(devcluster), _by_id(audit_id))
    assert {k: event[k] for k in ("kind", "apiVersion", "level", "stage", "verb")} == {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "stage": "ResponseComplete",
        "verb": "get",
    }
    assert event["requestURI"] == f"{path}?pretty=false"
    assert event["user"] == {
        "username": "kubernetes-admin",
        "groups": ["system:masters", "system:authenticated"],
    }
    assert event["objectRef"] == {
        "resource": "configmaps",
        "namespace": namespace,
        "name": "settings",
        "apiVersion": "v1",
    }
    assert event["responseStatus"] == {"metadata": {}, "code": 200}
    assert event["sourceIPs"] == ["127.0.0.1"]
    assert event["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert _time(event["requestReceivedTimestamp"]) <= _time(event["stageTimestamp"])
    assert "requestObject" not in event
    assert "responseObject" not in event


def test_a_list_in_a_named_group_and_a_missing_object(
    devcluster: RunningDevCluster, http: httpx.Client, namespace: str
) -> None:
    listed = http.get(f"/apis/apps/v1/namespaces/{namespace}/deployments")
    missing = http.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/nope")
    assert (listed.status_code, missing.status_code) == (200, 404)

    [as_list] = _events(_log(devcluster), _by_id(listed.headers["Audit-Id"]))
    [not_found] = _events(_log(devcluster), _by_id(missing.headers["Audit-Id"]))
    assert as_list["verb"] == "list"
    assert as_list["objectRef"] == {
        "resource": "deployments",
        "namespace": namespace,
        "apiGroup": "apps",
        "apiVersion": "v1",
    }
    assert not_found["verb"] == "get"
    assert not_found["objectRef"]["name"] == "nope"
    assert not_found["responseStatus"] == {
        "metadata": {},
        "status": "Failure",
        "reason": "NotFound",
        "code": 404,
    }


def test_a_denied_patch_under_a_pod_bound_service_account_token(
    devcluster: RunningDevCluster, core: Any, namespace: str
) -> None:
    core.create_namespaced_service_account(namespace, body({"metadata": {"name": "robot"}}))
    pod = {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    uid = core.create_namespaced_pod(namespace, body(pod)).metadata.uid
    bound = {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": uid}
    request = {"spec": {"audiences": [], "boundObjectRef": bound}}  # as the kubelet's
    token = core.create_namespaced_service_account_token("robot", namespace, body(request))
    token = token.status.token
    with devcluster.api_client(token) as client:
        as_robot: Any = kubernetes.client.CoreV1Api(client)
        with pytest.raises(ApiException) as raised:
            as_robot.patch_namespaced_pod("web", namespace, {"metadata": {"labels": {"a": "b"}}})
    assert raised.value.status == 403
    headers: Any = raised.value.headers  # untyped in the client
    audit_id = headers["Audit-Id"]

    [event] = _events(_log(devcluster), _by_id(audit_id))
    user = f"system:serviceaccount:{namespace}:robot"
    assert event["verb"] == "patch"
    assert event["user"]["username"] == user
    assert event["user"]["uid"]  # the ServiceAccount's
    assert event["user"]["extra"] == {  # which pod called: its token is bound to it
        "authentication.kubernetes.io/pod-name": ["web"],
        "authentication.kubernetes.io/pod-uid": [uid],
    }
    assert event["user"]["groups"] == [
        "system:serviceaccounts",
        f"system:serviceaccounts:{namespace}",
        "system:authenticated",
    ]
    assert event["objectRef"] == {
        "resource": "pods",
        "namespace": namespace,
        "name": "web",
        "apiVersion": "v1",
    }
    assert event["responseStatus"] == {
        "metadata": {},
        "status": "Failure",
        "reason": "Forbidden",
        "code": 403,
    }
    assert event["annotations"]["authorization.k8s.io/decision"] == "forbid"
    assert "message" not in event["responseStatus"]  # it may quote what was sent


def test_a_watch_is_logged_when_it_starts_and_again_when_it_ends(
    devcluster: RunningDevCluster, http: httpx.Client, namespace: str
) -> None:
    log = _log(devcluster)
    path = f"/api/v1/namespaces/{namespace}/secrets"
    params = {"watch": "true", "fieldSelector": "metadata.name=keys", "timeoutSeconds": "2"}
    with http.stream("GET", path, params=params) as stream:
        assert stream.status_code == 200
        audit_id = stream.headers["Audit-Id"]
        [started] = _events(log, _by_id(audit_id))  # while the watch is open
        assert started["stage"] == "ResponseStarted"
        for _ in stream.iter_lines():  # until the server ends it after timeoutSeconds
            pass

    first, complete = _events(log, _by_id(audit_id), count=2)
    assert first == started
    assert complete["stage"] == "ResponseComplete"
    for event in (started, complete):
        assert event["verb"] == "watch"
        assert event["responseStatus"] == {"metadata": {}, "code": 200}
        # As RequestInfo: a watch selecting one name is a request for that name.
        assert event["objectRef"] == {
            "resource": "secrets",
            "namespace": namespace,
            "name": "keys",
            "apiVersion": "v1",
        }
    assert complete["requestReceivedTimestamp"] == started["requestReceivedTimestamp"]
    assert _time(complete["stageTimestamp"]) - _time(started["stageTimestamp"]) >= (
        datetime.timedelta(seconds=1)
    )


def test_secret_data_never_reaches_the_log(
    devcluster: RunningDevCluster, core: Any, namespace: str
) -> None:
    value, string_value, patched = (secrets.token_hex(16) for _ in range(3))
    core.create_namespaced_secret(
        namespace,
        body(
            {
                "metadata": {"name": "db"},
                "data": {"password": base64.b64encode(value.encode()).decode()},
                "stringData": {"user": string_value},
            }
        ),
    )
    core.patch_namespaced_secret("db", namespace, {"stringData": {"password": patched}})
    core.read_namespaced_secret("db", namespace)  # the response carries the data too

    def about_the_secret(event: Event) -> bool:
        ref = event.get("objectRef", {})
        return bool(ref.get("resource") == "secrets" and ref.get("namespace") == namespace)

    found = _events(_log(devcluster), about_the_secret, count=3)
    seen = [(e["verb"], e["objectRef"].get("name"), e["responseStatus"]["code"]) for e in found]
    assert seen == [("create", "db", 201), ("patch", "db", 200), ("get", "db", 200)]
    text = _log(devcluster).read_text()
    for secret in (value, string_value, patched):
        assert secret not in text
        assert base64.b64encode(secret.encode()).decode() not in text


def _https(cluster: RunningDevCluster) -> httpx.Client:
    return httpx.Client(
        base_url=cluster.url,
        verify=ssl.create_default_context(cafile=str(cluster.ca_file)),
        headers={"Authorization": f"Bearer {cluster.admin_token}"},
    )


def test_an_empty_audit_log_path_writes_no_log(tmp_path: pathlib.Path) -> None:
    with running_devcluster(tmp_path, serve_args=("--audit-log-path", "")) as cluster:
        with _https(cluster) as http:
            answer = http.get("/api/v1/namespaces")
        assert answer.status_code == 200
        assert "Audit-Id" not in answer.headers
    assert not (tmp_path / DEFAULT_FILE).exists()


def test_a_log_at_another_path_rotates_past_its_size(tmp_path: pathlib.Path) -> None:
    log = tmp_path / "logs" / "api-audit.log"
    arguments = ("--audit-log-path", str(log), "--audit-log-maxsize", "1")
    with running_devcluster(tmp_path / "state", serve_args=arguments) as cluster:
        sent = []
        with _https(cluster) as http:
            for _ in range(ROTATION_REQUESTS):
                sent.append(http.get("/version").headers["Audit-Id"])
                if log.with_name(log.name + ".1").exists():
                    break
        assert log.with_name(log.name + ".1").exists()
        logged = _events(log, lambda e: e["requestURI"] == "/version", count=len(sent))
    assert [e["auditID"] for e in logged] == sent  # in order, across the rotation
    assert log.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "state" / DEFAULT_FILE).exists()
