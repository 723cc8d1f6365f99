"""Service processes for whole-system tests: `python -m <package>` with its own config
folder and environment, waited on until it reports its bound ports or answers a readiness
check, and stopped gracefully (SIGTERM, then SIGKILL after a grace period).

The log of a process is a file; its ports come from the "[gRPC] / [HTTP] server listening
on" lines, so servers can bind port 0 and concurrent runs never collide.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
LOG_TAIL_CHARS = 5000

_LISTENING = re.compile(r"\[(gRPC|HTTP)\] server listening on: (\S+):(\d+)")
# micro.app logs "<name> <version> started" once every server listens and it registered.
_STARTED = " started"
# Readiness checks go straight to the process, whatever *_proxy variables say.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A loopback port free right now, for a process that must keep one across restarts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServiceProcess:
    """One service process with `config` as its config.yaml in workdir/<package>/configs.

    `env` is added to this process's environment (MICRO_BIND_HOST is dropped: tests bind
    127.0.0.1); server.admin defaults to a free loopback port, and caller identity to off
    (a test process has no projected tokens). The log file is appended to across
    restarts; each start reads only its own part.
    """

    def __init__(
        self,
        package: str,
        config: Mapping[str, Any],
        workdir: pathlib.Path,
        *,
        env: Mapping[str, str] | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        self.package = package
        self.workdir = workdir
        self.config_dir = workdir / package / "configs"
        self.config_dir.mkdir(parents=True, exist_ok=True)
        # The admin port on loopback and a free port, unless the config says otherwise.
        server = {"admin": {"addr": "127.0.0.1:0"}, **config.get("server", {})}
        config = {"identity": {"mode": "off"}, **config, "server": server}
        (self.config_dir / "config.yaml").write_text(yaml.safe_dump(config))
        self.log_path = workdir / f"{package}.log"
        self.env = dict(env or {})
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int] = {}  # "gRPC" / "HTTP" -> bound port, after start()
        self._log_start = 0

    def start(self, ready: Callable[[], bool] | None = None) -> None:
        """Start the process and wait until `ready()` answers True or, without a check,
        until its log says it started; then `ports` holds the ports it reported.

        Raises RuntimeError when it exits first, TimeoutError (after stopping it) when
        it is not ready in time; both carry the end of its log.
        """
        if self.process is not None:
            raise RuntimeError(f"{self.package} is already running")
        env = {**os.environ, "MICRO_CONFIG_DIR": str(self.config_dir), **self.env}
        env.pop("MICRO_BIND_HOST", None)
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", self.package],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"{self.package} exited early:\n{self.log()}")
            if ready() if ready is not None else _STARTED in self._own_log():
                self.ports = {m[1]: int(m[3]) for m in _LISTENING.finditer(self._own_log())}
                return
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.package} was not ready in time:\n{self.log()}")

    def stop(self) -> int | None:
        """SIGTERM (a graceful stop), SIGKILL after the grace period; answers the exit
        code, or None when it was not running."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def log(self) -> str:
        """The end of the log, for failure messages."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]

    def _own_log(self) -> str:
        """What this start of the process logged so far."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")


def grpc_serving(port: int, host: str = "127.0.0.1") -> bool:
    """The gRPC health check of the whole server answers SERVING."""
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1.0
            )
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def http_ready(url: str) -> bool:
    """A GET of `url` (a readiness endpoint) answers 200."""
    try:
        with _NO_PROXY.open(url, timeout=1.0) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False
