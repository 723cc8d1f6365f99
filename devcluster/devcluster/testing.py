"""Run a real devcluster API server as a subprocess for tests.

Other test suites import this module and build their own fixture on top of
`running_devcluster`; the server is a separate process so that clients cross a real
HTTPS boundary exactly as they would against kube-apiserver.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import kubernetes.client
import yaml

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def terminate(process: subprocess.Popen[bytes], timeout_s: float) -> int:
    """SIGTERM (a graceful stop), SIGKILL when it has not exited after timeout_s; answers
    the exit code. A process that already exited is only reaped."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class RunningDevCluster:
    """A devcluster API server process bound to one host:port and one state dir."""

    def __init__(
        self,
        state_dir: pathlib.Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        serve_args: Sequence[str] = (),
    ) -> None:
        self.state_dir = state_dir
        self.host = host
        self.port = port if port is not None else _free_port(host)
        self.url = f"https://{host}:{self.port}"
        self.kubeconfig = state_dir / "kubeconfig"
        self.ca_file = state_dir / "pki" / "ca.crt"
        self.admin_token = ""
        self._serve_args = list(serve_args)
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = state_dir / "apiserver.log"

    # lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server (again on the same port and state) and wait for /readyz."""
        if self._process is not None and self._process.poll() is None:
            raise RuntimeError("devcluster is already running")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.kubeconfig.unlink()  # written again only once the new server answers
        command = [
            sys.executable,
            "-m",
            "devcluster",
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--state-dir",
            str(self.state_dir),
            "--stop-with-parent",
            *self._serve_args,
        ]
        log = self._log_path.open("ab")
        try:
            # A process group of its own: a terminal's Ctrl-C reaches only the parent,
            # which stops this server last, after the pods that talk to it.
            self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ},
                process_group=0,
            )
        finally:
            log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.admin_token = self._read_admin_token()

    def stop(self) -> None:
        """SIGTERM the server; SIGKILL it when it has not exited after 10 s."""
        process, self._process = self._process, None
        if process is not None:
            terminate(process, STOP_TIMEOUT_S)

    def restart(self) -> None:
        self.stop()
        self.start()

    # clients ---------------------------------------------------------------------------

    def api_client(
        self, token: str | None = None, *, pool_size: int | None = None
    ) -> kubernetes.client.ApiClient:
        """An official-client ApiClient over HTTPS verifying the CA; admin unless a token
        is given; pool_size caps its keep-alive connections (the client's default is
        cpu count * 5)."""
        configuration = kubernetes.client.Configuration()
        if pool_size is not None:
            configuration.connection_pool_maxsize = pool_size
        configuration.host = self.url
        configuration.ssl_ca_cert = str(self.ca_file)
        configuration.verify_ssl = True
        configuration.api_key = {"authorization": token or self.admin_token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return kubernetes.client.ApiClient(configuration)

    def service_account_token(self, namespace: str, name: str) -> str:
        """A token for a ServiceAccount, obtained through the TokenRequest subresource."""
        with self.api_client() as client:
            core = kubernetes.client.CoreV1Api(client)
            request = kubernetes.client.AuthenticationV1TokenRequest(
                spec=kubernetes.client.V1TokenRequestSpec(audiences=[])
            )
            answer = core.create_namespaced_service_account_token(name, namespace, request)
            if answer.status is None or not answer.status.token:
                raise RuntimeError(f"TokenRequest for {namespace}/{name} returned no token")
            token: str = answer.status.token
            return token

    # internals -------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"devcluster exited with {self._process.returncode}: {self._log_tail()}"
                )
            if self.kubeconfig.exists() and self._answers_readyz():
                return
            time.sleep(0.05)
        raise TimeoutError(f"devcluster did not answer /readyz in time: {self._log_tail()}")

    def _answers_readyz(self) -> bool:
        try:
            with urllib.request.urlopen(  # noqa: S310 - https URL built from our own host
                f"{self.url}/readyz", context=self._ssl_context(), timeout=2
            ) as answer:
                return bool(answer.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def _read_admin_token(self) -> str:
        config: dict[str, Any] = yaml.safe_load(self.kubeconfig.read_text())
        token: str = config["users"][0]["user"]["token"]
        return token

    def _log_tail(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-2000:]
        except FileNotFoundError:
            return "(no log)"


def body(obj: Mapping[str, Any]) -> Any:
    """A plain dict as a request body for the official client: its type hints ask for
    model objects, but it sends dicts as they are (and patch bodies must be dicts)."""
    return dict(obj)


@contextlib.contextmanager
def running_devcluster(
    state_dir: pathlib.Path, *, host: str = "127.0.0.1", serve_args: Sequence[str] = ()
) -> Iterator[RunningDevCluster]:
    """Start `python -m devcluster serve` as a subprocess on a free port with its state
    in state_dir; yield once it answers /readyz; on exit SIGTERM it (then kill after 10 s)."""
    cluster = RunningDevCluster(state_dir, host=host, serve_args=serve_args)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
