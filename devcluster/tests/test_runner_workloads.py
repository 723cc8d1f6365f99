"""The runner as a one-node cluster: Deployments, pods, probes, EndpointSlices, NodePorts.

One `python -m devcluster run` serves the whole module; each test works in a namespace
of its own and talks to the cluster only through the official client.
"""

from __future__ import annotations

import base64
import http.client
import json
import pathlib
import random
import threading
import time
import urllib.request
from typing import Any

import kubernetes.client
import pytest

from devcluster.runner.testing import (
    RunningNode,
    alive,
    deployment,
    node_namespace,
    pod_pids,
    ready_pods,
    wait_for,
)


@pytest.fixture
def namespace(node: RunningNode) -> str:
    return node_namespace(node, "r")


def get_json(url: str, timeout: float = 3.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - loopback
        return json.loads(answer.read())


def test_deployment_brings_up_ready_pods_with_their_own_addresses(
    node: RunningNode, namespace: str
) -> None:
    node.apply(json.dumps(deployment("web", namespace, replicas=3)))
    pods = wait_for(
        "3 ready pods", lambda: len(p := ready_pods(node.core, namespace, "app=web")) == 3 and p
    )
    addresses = {p.status.pod_ip for p in pods}
    assert len(addresses) == 3
    assert all(ip.startswith(node.node_address.rsplit(".", 1)[0] + ".") for ip in addresses)
    replicaset = node.apps.list_namespaced_replica_set(namespace).items[0]
    assert replicaset.metadata.owner_references[0].kind == "Deployment"
    pod_hash = replicaset.metadata.labels["pod-template-hash"]
    for pod in pods:
        assert pod.metadata.labels == {"app": "web", "pod-template-hash": pod_hash}
        assert pod.metadata.annotations["team"] == "runner"
        assert pod.metadata.owner_references[0].uid == replicaset.metadata.uid
        assert pod.spec.node_name == "devcluster"
        # The process sees the downward API and binds its own address.
        seen = get_json(f"http://{pod.status.pod_ip}:8080/env")
        assert seen["POD_NAME"] == pod.metadata.name
        assert seen["POD_IP"] == seen["MICRO_BIND_HOST"] == pod.status.pod_ip
    status = wait_for(
        "deployment status",
        lambda: (
            (s := node.apps.read_namespaced_deployment("web", namespace).status).available_replicas
            == 3
            and s
        ),
    )
    assert status.updated_replicas == status.ready_replicas == status.replicas == 3
    assert {c.type: c.status for c in status.conditions} == {
        "Available": "True",
        "Progressing": "True",
    }


def test_deleted_pod_is_stopped_and_replaced(
    node: RunningNode, namespace: str, tmp_path: pathlib.Path
) -> None:
    trace = tmp_path / "prestop"
    hook = {
        "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", f"echo $POD_NAME >> {trace}"]}}}
    }
    node.apply(json.dumps(deployment("web", namespace, replicas=2, extra_container=hook)))
    pods = wait_for(
        "2 ready pods", lambda: len(p := ready_pods(node.core, namespace, "app=web")) == 2 and p
    )
    victim = pods[0]
    [pid] = pod_pids([victim])
    assert alive(pid)
    node.core.delete_namespaced_pod(victim.metadata.name, namespace)
    wait_for(
        "the deleted pod to leave the API",
        lambda: (
            victim.metadata.name
            not in {p.metadata.name for p in node.core.list_namespaced_pod(namespace).items}
        ),
    )
    assert not alive(pid)
    assert trace.read_text().split() == [victim.metadata.name]  # preStop ran
    replaced = wait_for(
        "a replacement", lambda: len(p := ready_pods(node.core, namespace, "app=web")) == 2 and p
    )
    assert victim.metadata.name not in {p.metadata.name for p in replaced}


def test_rolling_update_keeps_every_replica_available(node: RunningNode, namespace: str) -> None:
    node.apply(
        json.dumps(deployment("web", namespace, replicas=2, env={"VERSION": "v1", "DRAIN_S": "1"}))
    )
    wait_for("2 ready pods", lambda: len(ready_pods(node.core, namespace, "app=web")) == 2)
    samples: list[tuple[int, int]] = []
    done = threading.Event()

    def sample() -> None:
        core: Any = kubernetes.client.CoreV1Api(node.api)
        while not done.is_set():
            pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
            active = [p for p in pods if p.metadata.deletion_timestamp is None]
            samples.append((len(ready_pods(core, namespace, "app=web")), len(active)))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        node.apps.patch_namespaced_deployment(
            "web",
            namespace,
            {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {"name": "app", "env": [{"name": "VERSION", "value": "v2"}]}
                            ]
                        }
                    }
                }
            },
        )

        def rolled_out() -> bool:
            d = node.apps.read_namespaced_deployment("web", namespace)
            s = d.status
            return bool(
                s.observed_generation >= d.metadata.generation
                and s.updated_replicas == s.replicas == s.available_replicas == 2
            )

        wait_for("the rollout", rolled_out, timeout_s=60)
    finally:
        done.set()
        sampler.join()
    assert min(ready for ready, _ in samples) >= 2, "maxUnavailable=0 was not honoured"
    assert max(active for _, active in samples) <= 3, "maxSurge=1 was not honoured"
    pods = wait_for(
        "2 pods of v2", lambda: len(p := ready_pods(node.core, namespace, "app=web")) == 2 and p
    )
    assert {get_json(f"http://{p.status.pod_ip}:8080/")["version"] for p in pods} == {"v2"}
    sets = node.apps.list_namespaced_replica_set(namespace).items
    assert sorted(rs.spec.replicas for rs in sets) == [0, 2]
    assert (
        max(int(rs.metadata.annotations["deployment.kubernetes.io/revision"]) for rs in sets) == 2
    )


def service(
    name: str, namespace: str, node_port: int | None = None, traffic_policy: str = ""
) -> dict[str, Any]:
    port: dict[str, Any] = {"name": "http", "port": 80, "targetPort": "http"}
    if node_port:
        port["nodePort"] = node_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "type": "NodePort" if node_port else "ClusterIP",
            "selector": {"app": name},
            "ports": [port],
            **({"externalTrafficPolicy": traffic_policy} if traffic_policy else {}),
        },
    }


def test_endpointslices_follow_readiness(node: RunningNode, namespace: str) -> None:
    # Ready only while a file exists in the pod's emptyDir: an exec probe reads it.
    gate = {
        "readinessProbe": {
            "exec": {"command": ["sh", "-c", 'test -f "$DEVCLUSTER_ROOT/gate/open"']},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
        "volumeMounts": [{"name": "gate", "mountPath": "/gate"}],
    }
    manifest = deployment(
        "gated",
        namespace,
        replicas=1,
        extra_container=gate,
        pod_spec={"volumes": [{"name": "gate", "emptyDir": {}}]},
    )
    node.apply(json.dumps(manifest))
    node.apply(json.dumps(service("gated", namespace)))

    def endpoints() -> list[tuple[str, bool, bool]]:
        slices = node.discovery.list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=gated"
        ).items
        return [
            (e.addresses[0], bool(e.conditions.ready), bool(e.conditions.serving))
            for s in slices
            for e in s.endpoints or []
        ]

    pod = wait_for(
        "a running pod",
        lambda: [p for p in node.core.list_namespaced_pod(namespace).items if p.status.pod_ip],
    )[0]
    wait_for("a not-ready endpoint", lambda: endpoints() == [(pod.status.pod_ip, False, False)])
    gate_file = node.state_dir / "pods" / pod.metadata.uid / "volumes" / "gate" / "open"
    gate_file.write_text("")
    wait_for("a ready endpoint", lambda: endpoints() == [(pod.status.pod_ip, True, True)])
    slice_ = node.discovery.list_namespaced_endpoint_slice(namespace).items[0]
    assert [(p.name, p.port) for p in slice_.ports] == [("http", 8080)]
    assert slice_.endpoints[0].target_ref.name == pod.metadata.name
    gate_file.unlink()
    wait_for(
        "the endpoint to turn not ready", lambda: endpoints() == [(pod.status.pod_ip, False, False)]
    )


def test_nodeport_proxy_forwards_over_ready_endpoints(node: RunningNode, namespace: str) -> None:
    node_port = random.randint(30000, 32767)  # noqa: S311 - the node address is ours alone
    node.apply(json.dumps(deployment("front", namespace, replicas=2)))
    node.apply(json.dumps(service("front", namespace, node_port)))
    wait_for("2 ready pods", lambda: len(ready_pods(node.core, namespace, "app=front")) == 2)
    url = f"http://{node.node_address}:{node_port}/"

    def answers() -> set[str]:
        try:
            return {get_json(url)["pod"] for _ in range(6)}
        except OSError:
            return set()

    pods = wait_for("both pods behind the NodePort", lambda: len(a := answers()) == 2 and a)
    assert pods == {p.metadata.name for p in ready_pods(node.core, namespace, "app=front")}


def peer_seen_from(source: str, host: str, port: int) -> str | None:
    """The address the pod saw for a request sent from `source`; None while not served."""
    connection = http.client.HTTPConnection(host, port, timeout=3, source_address=(source, 0))
    try:
        connection.request("GET", "/")
        peer = json.loads(connection.getresponse().read())["peer"]
        return str(peer)
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        connection.close()


def test_nodeport_with_local_traffic_policy_keeps_the_client_address(
    node: RunningNode, namespace: str
) -> None:
    """externalTrafficPolicy: Local, as kube-proxy: the pod sees each client's own address;
    Cluster (the default) shows the node's for every client."""
    local_port, cluster_port = random.sample(range(30000, 32768), 2)
    node.apply(json.dumps(deployment("keep", namespace, replicas=1)))
    node.apply(json.dumps(service("keep", namespace, local_port, traffic_policy="Local")))
    node.apply(
        json.dumps(
            {
                **service("keep", namespace, cluster_port),
                "metadata": {"name": "keep-cluster", "namespace": namespace},
            }
        )
    )
    wait_for("a ready pod", lambda: ready_pods(node.core, namespace, "app=keep"))
    host = node.node_address

    def peer_through(port: int, source: str) -> str:
        return str(wait_for(f"an answer from {source}", lambda: peer_seen_from(source, host, port)))

    sources = ("127.0.0.2", "127.0.0.3")
    seen = {source: peer_through(local_port, source) for source in sources}
    assert seen == {"127.0.0.2": "127.0.0.2", "127.0.0.3": "127.0.0.3"}
    through_cluster = {peer_through(cluster_port, source) for source in sources}
    assert len(through_cluster) == 1
    assert through_cluster.isdisjoint(seen.values())


def test_failing_liveness_probe_restarts_with_back_off(node: RunningNode, namespace: str) -> None:
    liveness = {
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 1,
            "failureThreshold": 1,
        }
    }
    node.apply(
        json.dumps(
            deployment(
                "sick", namespace, replicas=1, env={"HEALTH": "fail"}, extra_container=liveness
            )
        )
    )
    seen: set[str] = set()

    def restarted_twice() -> bool:
        for pod in node.core.list_namespaced_pod(namespace).items:
            for status in pod.status.container_statuses or []:
                if status.state.waiting:
                    seen.add(status.state.waiting.reason)
                if status.restart_count >= 2 and status.last_state.terminated:
                    return True
        return False

    wait_for("two restarts", restarted_twice, timeout_s=45, every_s=0.05)
    assert "CrashLoopBackOff" in seen
    [pod] = node.core.list_namespaced_pod(namespace).items
    assert pod.status.container_statuses[0].last_state.terminated.exit_code != 0


def test_crashing_container_backs_off_and_keeps_its_exit_code(
    node: RunningNode, namespace: str
) -> None:
    crash = {
        "command": ["python", "-c", "import sys; print('crashing'); sys.exit(3)"],
        "readinessProbe": None,
    }
    node.apply(json.dumps(deployment("crash", namespace, replicas=1, extra_container=crash)))

    def crash_looping() -> Any:
        for pod in node.core.list_namespaced_pod(namespace).items:
            status = (pod.status.container_statuses or [None])[0]
            if (
                status
                and status.state.waiting
                and status.state.waiting.reason == "CrashLoopBackOff"
            ):
                return pod
        return None

    pod = wait_for("CrashLoopBackOff", crash_looping, timeout_s=30, every_s=0.05)
    status = pod.status.container_statuses[0]
    assert status.last_state.terminated.exit_code == 3
    assert status.restart_count >= 1
    assert pod.status.phase == "Running"
    log = node.state_dir / "logs" / namespace / pod.metadata.name / "app.log"
    assert "crashing" in log.read_text()


def test_env_volumes_and_service_account_files(node: RunningNode, namespace: str) -> None:
    node.core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {"name": "settings"},
            "data": {"app.yaml": "greeting: hello\n", "LEVEL": "debug"},
        },
    )
    node.core.create_namespaced_secret(
        namespace,
        {"metadata": {"name": "keys"}, "data": {"API_KEY": base64.b64encode(b"s3cret").decode()}},
    )
    extra = {
        "envFrom": [{"secretRef": {"name": "keys"}}],
        "volumeMounts": [{"name": "config", "mountPath": "/etc/config", "readOnly": True}],
    }
    manifest = deployment(
        "configured",
        namespace,
        replicas=1,
        extra_container=extra,
        pod_spec={"volumes": [{"name": "config", "configMap": {"name": "settings"}}]},
    )
    manifest["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {
            "name": "LOG_LEVEL",
            "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "LEVEL"}},
        }
    )
    node.apply(json.dumps(manifest))
    [pod] = wait_for("a ready pod", lambda: ready_pods(node.core, namespace, "app=configured"))
    base = f"http://{pod.status.pod_ip}:8080"
    env = get_json(f"{base}/env")
    assert env["LOG_LEVEL"] == "debug"
    assert env["API_KEY"] == "s3cret"
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert get_json(f"{base}/file?path=/etc/config/app.yaml")["content"] == "greeting: hello\n"
    account = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert env["KUBE_SERVICEACCOUNT_DIR"] == env["DEVCLUSTER_ROOT"] + account
    assert get_json(f"{base}/file?path={account}/namespace")["content"] == namespace
    token = get_json(f"{base}/file?path={account}/token")["content"]
    # The mounted token authenticates as the pod's service account.
    configuration = kubernetes.client.Configuration()
    configuration.host = node.api.configuration.host
    configuration.ssl_ca_cert = str(node.state_dir / "pki" / "ca.crt")
    configuration.api_key = {"authorization": f"Bearer {token}"}
    with kubernetes.client.ApiClient(configuration) as client:
        authentication: Any = kubernetes.client.AuthenticationV1Api(client)
        review = authentication.create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
    assert review.status.user_info.username == f"system:serviceaccount:{namespace}:default"
    # A ConfigMap update reaches the mounted file.
    node.core.patch_namespaced_config_map(
        "settings", namespace, {"data": {"app.yaml": "greeting: bye\n"}}
    )
    wait_for(
        "the updated file",
        lambda: get_json(f"{base}/file?path=/etc/config/app.yaml")["content"] == "greeting: bye\n",
    )
    # kubectl logs reads what the process printed.
    assert "listening on" in node.core.read_namespaced_pod_log(pod.metadata.name, namespace)
