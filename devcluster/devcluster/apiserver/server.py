"""Run the API server: state, TLS, bootstrap objects, kubeconfig, clean shutdown."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import pathlib
import signal
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import yaml
from aiohttp import web

from devcluster.apiserver.app import ApiServer
from devcluster.apiserver.audit import DEFAULT_MAX_MEGABYTES, AuditLog
from devcluster.apiserver.auth import TokenAuthority, bootstrap_rbac
from devcluster.apiserver.certs import ServingFiles, ensure_serving_files
from devcluster.apiserver.gcpolicy import gc_policy
from devcluster.apiserver.registry import Registry
from devcluster.apiserver.resources import by_key
from devcluster.apiserver.store import DEFAULT_HISTORY, Store

log = logging.getLogger(__name__)

SNAPSHOT = "store.json"
SHUTDOWN_GRACE_S = 2.0
SAVE_EVERY_S = 5.0


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 6443
    state_dir: pathlib.Path = pathlib.Path(".devcluster")
    watch_history: int = DEFAULT_HISTORY
    audit_log_path: str | None = None  # None: <state_dir>/audit.log; "-" stdout; "" off
    audit_log_max_megabytes: int = DEFAULT_MAX_MEGABYTES
    stop_with_parent: bool = False  # a runner that dies must not leave its API server behind


def bootstrap(registry: Registry) -> None:
    """What every cluster has from the start; idempotent across restarts."""
    namespaces = by_key("", "namespaces")
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        if registry.store.get(namespaces.key, ("", name)) is None:
            registry.create(namespaces, "", {"metadata": {"name": name}})
    for plural, obj in bootstrap_rbac():
        resource = by_key("rbac.authorization.k8s.io", plural)
        if registry.store.get(resource.key, ("", obj["metadata"]["name"])) is None:
            registry.create(resource, "", obj)
    services = by_key("", "services")
    if registry.store.get(services.key, ("default", "kubernetes")) is None:
        registry.create(
            services,
            "default",
            {
                "metadata": {
                    "name": "kubernetes",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "clusterIP": "10.96.0.1",
                    "ports": [
                        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}
                    ],
                },
            },
        )


async def save_periodically(store: Store, snapshot: pathlib.Path) -> None:
    """Snapshot after writes, so even a killed server loses at most a few seconds."""
    saved = store.rv
    while True:
        await asyncio.sleep(SAVE_EVERY_S)
        if store.rv != saved:
            saved = store.rv
            store.save(snapshot)


def kubeconfig_text(url: str, ca_file: pathlib.Path, token: str) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "devcluster",
                "cluster": {
                    "server": url,
                    "certificate-authority-data": base64.b64encode(ca_file.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": "devcluster-admin", "user": {"token": token}}],
        "contexts": [
            {
                "name": "devcluster",
                "context": {
                    "cluster": "devcluster",
                    "user": "devcluster-admin",
                    "namespace": "default",
                },
            }
        ],
        "current-context": "devcluster",
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def _write_private(path: pathlib.Path, text: str) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.chmod(0o600)
    os.replace(temporary, path)


def _ssl_context(files: ServingFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert, files.key)
    return context


def _stop_with_parent(stop: asyncio.Event) -> Callable[[], None]:
    """Set stop when the parent process exits (a Linux pidfd turns readable then);
    answers the clean-up."""
    loop = asyncio.get_running_loop()
    pidfd = os.pidfd_open(os.getppid())

    def parent_exited() -> None:
        log.warning("the process that started this server exited: stopping")
        stop.set()

    loop.add_reader(pidfd, parent_exited)

    def close() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)

    return close


async def serve(options: ServeOptions) -> None:
    state_dir = options.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    files = ensure_serving_files(state_dir, options.host)
    tokens = TokenAuthority(state_dir / "pki")
    store = Store(options.watch_history)
    snapshot = state_dir / SNAPSHOT
    if store.load(snapshot):
        log.info("loaded %s at resourceVersion %d", snapshot, store.rv)
    audit = AuditLog.for_flag(options.audit_log_path, state_dir, options.audit_log_max_megabytes)
    server = ApiServer(store, tokens, state_dir, f"{options.host}:{options.port}", audit)
    bootstrap(server.registry)

    # Handlers first: a stop request that comes as soon as the server is up is honoured.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(server.application(), access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    site = web.TCPSite(
        runner, options.host, options.port, ssl_context=_ssl_context(files), reuse_address=True
    )
    await site.start()
    port = runner.addresses[0][1] if options.port == 0 else options.port  # port 0: any free
    url = f"https://{options.host}:{port}"
    server.server_address = f"{options.host}:{port}"
    kubeconfig = state_dir / "kubeconfig"
    _write_private(kubeconfig, kubeconfig_text(url, files.ca_cert, tokens.admin_token))
    log.info("devcluster API serving on %s; kubeconfig %s", url, kubeconfig)

    try:
        saver = asyncio.create_task(save_periodically(store, snapshot))
        stop_watching_parent = _stop_with_parent(stop) if options.stop_with_parent else None
        async with gc_policy(lambda: store.rv):
            await stop.wait()
        if stop_watching_parent is not None:
            stop_watching_parent()
        saver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await saver
    finally:
        log.info("stopping")
        with contextlib.suppress(FileNotFoundError):
            kubeconfig.unlink()
        store.close_watchers()  # ends every watch stream cleanly
        await runner.cleanup()
        if audit is not None:
            audit.close()  # after cleanup: the streams it ended are logged complete
        store.save(snapshot)
        log.info("saved %s at resourceVersion %d", snapshot, store.rv)
