"""`python -m devcluster run`: the API server, the manifests and the node, in the foreground.

It says when every Deployment is available and, while some are not, which and why
(runner.availability). Ctrl-C or SIGTERM stops every pod's processes, then the API
server, and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import pathlib
import signal
import sys

from devcluster.runner import manifests
from devcluster.runner.availability import AvailabilityReporter
from devcluster.runner.kubelet.images import DEFAULT_IMAGES_FILE
from devcluster.runner.node import Node, NodeOptions
from devcluster.testing import RunningDevCluster

log = logging.getLogger("devcluster.run")

# Every informer holds a watch and every controller and pod worker calls from a thread.
API_POOL_SIZE = 32


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--manifests",
        type=pathlib.Path,
        action="append",
        help="a folder or file of manifests to apply (repeatable; default .k8s)",
    )
    parser.add_argument(
        "--state-dir",
        type=pathlib.Path,
        default=pathlib.Path(".devcluster"),
        help="API state, kubeconfig, pod folders and logs (.devcluster)",
    )
    parser.add_argument("--api-host", default="127.0.0.1", help="API server address (127.0.0.1)")
    parser.add_argument(
        "--api-port", type=int, default=6443, help="API server port (6443; 0 picks a free one)"
    )
    parser.add_argument("--node-name", default="devcluster", help="the node's name (devcluster)")
    parser.add_argument(
        "--node-address", default="127.0.0.1", help="where NodePort Services listen (127.0.0.1)"
    )
    parser.add_argument(
        "--pod-network",
        default="127.0.1.0/24",
        help="loopback network pod addresses come from (127.0.1.0/24)",
    )
    parser.add_argument(
        "--images",
        type=pathlib.Path,
        default=DEFAULT_IMAGES_FILE,
        help="image -> local command mapping (devcluster/images.yaml)",
    )
    parser.add_argument(
        "--restart-backoff",
        type=float,
        default=10.0,
        help="first crash-loop back-off in seconds, doubling to 300 (10)",
    )


def run(args: argparse.Namespace) -> int:
    # The API server may stop before the node on Ctrl-C; the node's retries say enough.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    state_dir = args.state_dir.resolve()
    cluster = RunningDevCluster(state_dir, host=args.api_host, port=args.api_port or None)
    await asyncio.to_thread(cluster.start)
    node: Node | None = None
    try:
        node = Node(
            cluster.api_client(pool_size=API_POOL_SIZE),
            NodeOptions(
                api_host=args.api_host,
                api_port=cluster.port,
                ca_file=cluster.ca_file,
                state_dir=state_dir,
                images=args.images,
                node_name=args.node_name,
                node_address=args.node_address,
                pod_network=args.pod_network,
                restart_backoff_s=args.restart_backoff,
            ),
        )
        await node.start()
        folders = args.manifests or [pathlib.Path(".k8s")]
        for line in await asyncio.to_thread(manifests.apply, node.kube, folders):
            print(line, flush=True)
        await asyncio.sleep(0.5)  # let the proxy open the NodePorts of the new Services
        await node.proxy.sync()
        _print_where(cluster, node)
        reporter = AvailabilityReporter(
            node.kube,
            node.deployments,
            node.replicasets,
            node.pods,
            node.events,
            clean_start=_clean_start(args.state_dir),
            say=_say,
        )
        watcher = asyncio.create_task(reporter.run())
        await stop.wait()
        watcher.cancel()
        print("devcluster: stopping", flush=True)
    finally:
        if node is not None:
            await node.stop()
        await asyncio.to_thread(cluster.stop)
    print("devcluster: stopped", flush=True)
    return 0


def _print_where(cluster: RunningDevCluster, node: Node) -> None:
    print(f"devcluster: API {cluster.url}", flush=True)
    print(f"devcluster: export KUBECONFIG={cluster.kubeconfig}", flush=True)
    for service, port_name, node_port in node.proxy.urls():
        scheme = "grpc" if "grpc" in port_name else "http"
        address = f"{node.options.node_address}:{node_port}"
        url = (
            f"grpc {address} (grpcurl -plaintext {address} list)"
            if scheme == "grpc"
            else f"http://{address}"
        )
        print(f"devcluster: service {service} port {port_name or '-'}: {url}", flush=True)


def _say(line: str) -> None:
    print(f"devcluster: {line}", flush=True)


def _clean_start(state_dir: pathlib.Path) -> str:
    return (
        "to start again: Ctrl-C, then `make run` (it applies the manifests again, restoring"
        f" objects edited since); from a clean state: Ctrl-C, `rm -rf {state_dir}`, `make run`"
        " (the services' data goes too)"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: python -m devcluster run")
