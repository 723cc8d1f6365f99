"""Start a rendered service on the devcluster and call its sample RPC through discovery.

Run by tests/test_new_service.py with the interpreter of the scratch repository the
service was rendered into (only there is its package installed and its proto code
generated): `python tests/new_service_probe.py orders-srv <work dir>`. Exits 0 once
Hello answered through the Pod registry, as another service's client would call it.
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

from devcluster.runner.testing import running_node
from micro.client import ClientFactory
from micro.config.model import GrpcClientConfig
from micro.registry import PodDiscovery
from micro.registry.names import registry_name

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "go-micro"
START_TIMEOUT_S = 90.0


async def hello(api: Any, service: str) -> str:
    """Hello through a client over Pod discovery, retried until an instance answers."""
    package = service.replace("-", "_")
    short = package.removesuffix("_srv")
    cls = "".join(p.title() for p in short.split("_"))
    messages = importlib.import_module(f"api.{package}.v1.{short}_pb2")
    stubs = importlib.import_module(f"api.{package}.v1.{short}_pb2_grpc")
    discovery = PodDiscovery(api, NAMESPACE)
    factory = ClientFactory(discovery, GrpcClientConfig(timeout=timedelta(seconds=5)))
    try:
        stub = factory.stub(registry_name(service), getattr(stubs, f"{cls}ServiceStub"))
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                reply = await stub.Hello(messages.HelloRequest(name="probe"))
                return str(reply.message)
            except grpc.aio.AioRpcError as error:
                # UNAVAILABLE until a pod is ready and discovery has seen it.
                if error.code() is not grpc.StatusCode.UNAVAILABLE:
                    raise
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.2)
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
