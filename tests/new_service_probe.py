"""Start a rendered service on the devcluster and call its sample RPC through discovery.

Run by tests/test_new_service.py with the interpreter of the scratch repository the
service was rendered into (only there is its package installed and its proto code
generated): `python tests/new_service_probe.py orders-srv <work dir>`. Exits 0 once
Hello answered through the Pod registry, as another service's client would call it: with
a caller identity (a token bound to the probe's own Pod), refused until a rule of the
service's ConfigMap allows the probe (default deny), then answered.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import kubernetes.client
import yaml

from devcluster.runner.testing import running_node
from micro.client import ClientFactory
from micro.config.model import GrpcClientConfig
from micro.identity import IDENTITY_METADATA_KEY
from micro.registry import PodDiscovery
from micro.registry.names import registry_name

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "go-micro"
START_TIMEOUT_S = 90.0
# The probe's own ServiceAccount and Pod: it calls as any other caller does.
PROBE = "new-service-probe"
WAITING = (grpc.StatusCode.UNAVAILABLE,)  # no ready pod yet, or discovery has not seen it


def probe_identity(core: Any, service: str) -> str:
    """What a caller's projected volume holds: a token for the probe's account, bound to
    its Pod (an idle process), for the service's audience (its registry name)."""
    core.create_namespaced_service_account(NAMESPACE, {"metadata": {"name": PROBE}})
    container = {
        "name": "idle",
        "image": f"devexps/{service}:k8s",
        "command": ["python", "-c", "import time; time.sleep(3600)"],
    }
    pod = core.create_namespaced_pod(
        NAMESPACE,
        {
            "metadata": {"name": PROBE},
            "spec": {"serviceAccountName": PROBE, "containers": [container]},
        },
    )
    reference = {"apiVersion": "v1", "kind": "Pod", "name": PROBE, "uid": pod.metadata.uid}
    request = {"spec": {"audiences": [registry_name(service)], "boundObjectRef": reference}}
    answer = core.create_namespaced_service_account_token(PROBE, NAMESPACE, request)
    return str(answer.status.token)


def allow_probe(core: Any, service: str, method: str) -> None:
    """Add the rule a new caller's author adds to the service's ConfigMap (hot-reloaded)."""
    configmap = core.read_namespaced_config_map(service, NAMESPACE)
    config = yaml.safe_load(configmap.data["config.yaml"])
    config["identity"]["allow"] = [{"callers": [PROBE], "methods": [method]}]
    patch = {"data": {"config.yaml": yaml.safe_dump(config)}}
    core.patch_namespaced_config_map(service, NAMESPACE, patch)


async def hello(api: Any, service: str) -> str:
    """Hello through a client over Pod discovery with the probe's identity: first refused
    (no rule names the probe), then answered once the probe is allowed."""
    package = service.replace("-", "_")
    short = package.removesuffix("_srv")
    cls = "".join(p.title() for p in short.split("_"))
    messages = importlib.import_module(f"api.{package}.v1.{short}_pb2")
    stubs = importlib.import_module(f"api.{package}.v1.{short}_pb2_grpc")
    core = kubernetes.client.CoreV1Api(api)
    identity = ((IDENTITY_METADATA_KEY, probe_identity(core, service)),)
    discovery = PodDiscovery(api, NAMESPACE)
    factory = ClientFactory(discovery, GrpcClientConfig(timeout=timedelta(seconds=5)))
    try:
        stub = factory.stub(registry_name(service), getattr(stubs, f"{cls}ServiceStub"))

        async def call(retry_on: tuple[grpc.StatusCode, ...]) -> Any:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                try:
                    return await stub.Hello(messages.HelloRequest(name="probe"), metadata=identity)
                except grpc.aio.AioRpcError as error:
                    if error.code() not in retry_on or time.monotonic() > deadline:
                        return error
                await asyncio.sleep(0.2)

        refused = await call(WAITING)
        if not isinstance(refused, grpc.aio.AioRpcError):
            raise AssertionError(f"{service} answered a caller no rule allows: {refused!r}")
        print(f"default deny: {refused.code().name}", flush=True)
        allow_probe(core, service, f"{package}.v1.{cls}Service/Hello")
        reply = await call((*WAITING, grpc.StatusCode.PERMISSION_DENIED))
        if isinstance(reply, grpc.aio.AioRpcError):
            raise reply
        return str(reply.message)
    finally:
        await factory.close()
        await discovery.close()


def main() -> int:
    service, work = sys.argv[1], Path(sys.argv[2])
    manifests = (ROOT / ".k8s" / "00-namespace.yaml", ROOT / ".k8s" / f"{service}.yaml")
    with running_node(work, manifest_paths=manifests) as node:
        try:
            message = asyncio.run(hello(node.api, service))
        except Exception:
            print(node.text()[-4000:], file=sys.stderr)
            raise
    print(message)
    return 0 if message == "Hello, probe" else 1


if __name__ == "__main__":
    sys.exit(main())
