"""The login system as separate processes: user-srv, token-srv, device-srv and admin-srv,
each `python -m <package>` with its own config folder, wired by a static registry.

Servers bind port 0; the ports come from each process's "listening on" log lines
(micro.testing.processes), so concurrent runs never collide. Used by
tests/test_e2e_login.py and bench/bench_login.py; whoever starts a LoginSystem stops it
(it is a context manager).
"""

from __future__ import annotations

import pathlib
import secrets
from concurrent import futures
from types import TracebackType
from typing import Any

from micro.testing.processes import ServiceProcess

_QUICK_SHUTDOWN = {"drain_delay": "0s", "grace_period": "2s"}


def _grpc_endpoint(service: str, process: ServiceProcess) -> dict[str, Any]:
    return {"name": service, "endpoints": [f"grpc://127.0.0.1:{process.ports['gRPC']}"]}


class LoginSystem:
    """user-srv, token-srv, device-srv and `admin_replicas` admin-srv processes, started in
    order; the replicas share the backends, as Deployment replicas do."""

    def __init__(
        self,
        workdir: pathlib.Path,
        *,
        bootstrap_users: list[dict[str, str]],
        argon2: dict[str, int] | None = None,
        login_limits: dict[str, Any] | None = None,
        admin_replicas: int = 1,
    ) -> None:
        data = workdir / "data"
        # user-srv's login budgets, only when given: the shipped defaults otherwise.
        budgets = {} if login_limits is None else {"login_limits": login_limits}
        self.user = ServiceProcess(
            "user_srv",
            {
                "server": {"grpc": {"addr": "127.0.0.1:0", "timeout": "5s"}},
                "registry": {"type": "static"},
                "shutdown": _QUICK_SHUTDOWN,
                "database": {"data_dir": str(data)},
                "argon2": argon2 or {},
                "bootstrap_users": bootstrap_users,
                **budgets,
            },
            workdir,
        )
        self.token = ServiceProcess(
            "token_srv",
            {
                "server": {"grpc": {"addr": "127.0.0.1:0", "timeout": "5s"}},
                "registry": {"type": "static"},
                "shutdown": _QUICK_SHUTDOWN,
                "database": {"data_dir": str(data)},
                "jwt": {"dev_key_file": "dev-key.pem", "audience": ["go-micro"]},
            },
            workdir,
        )
        self.device = ServiceProcess(
            "device_srv",
            {
                "server": {"grpc": {"addr": "127.0.0.1:0"}},
                "registry": {"type": "static"},
                "shutdown": _QUICK_SHUTDOWN,
                "database": {"url": f"sqlite+aiosqlite:///{data}/devices.db"},
                "devices": [
                    {"name": "device1", "active": True},
                    {"name": "device2", "active": True},
                    {"name": "device3", "active": False},
                ],
            },
            workdir,
        )
        self._workdir = workdir
        # One device-token key for all admin-srv replicas, as they share the Secret.
        self._device_token_key = secrets.token_urlsafe(32)
        self._admin_replicas = admin_replicas
        self.admin: ServiceProcess | None = None  # the first replica
        self.admins: list[ServiceProcess] = []
        self.started: list[ServiceProcess] = []

    @property
    def http_url(self) -> str:
        assert self.admin is not None
        return f"http://127.0.0.1:{self.admin.ports['HTTP']}"

    @property
    def grpc_target(self) -> str:
        assert self.admin is not None
        return f"127.0.0.1:{self.admin.ports['gRPC']}"

    @property
    def http_urls(self) -> list[str]:
        """Every admin-srv replica's HTTP base URL."""
        return [f"http://127.0.0.1:{admin.ports['HTTP']}" for admin in self.admins]

    def __enter__(self) -> LoginSystem:
        try:
            # The backends need nothing of each other: started together, they overlap
            # their start-up instead of waiting in turn.
            self._start_together([self.user, self.token, self.device])
            services = [
                _grpc_endpoint("go-micro.user-srv", self.user),
                _grpc_endpoint("go-micro.token-srv", self.token),
                _grpc_endpoint("go-micro.device-srv", self.device),
            ]
            for replica in range(self._admin_replicas):
                # Each replica its own config folder: they share only the backends.
                workdir = self._workdir / f"admin-{replica}" if replica else self._workdir
                workdir.mkdir(exist_ok=True)
                admin = ServiceProcess("admin_srv", self._admin_config(services), workdir)
                admin.start()
                self.started.append(admin)
                self.admins.append(admin)
            self.admin = self.admins[0]
        except BaseException:
            self.stop()
            raise
        return self

    def _start_together(self, processes: list[ServiceProcess]) -> None:
        """Start every process, each in a thread of its own; raise the first failure once
        all have settled, the ones that did start being in `started` to be stopped."""
        with futures.ThreadPoolExecutor(len(processes)) as pool:
            starts = [pool.submit(process.start) for process in processes]
        for process, start in zip(processes, starts, strict=True):
            if start.exception() is None:
                self.started.append(process)
        for start in starts:
            start.result()

    def _admin_config(self, services: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "server": {
                "http": {"addr": "127.0.0.1:0", "timeout": "10s"},
                "grpc": {"addr": "127.0.0.1:0", "timeout": "10s"},
            },
            "client": {"grpc": {"timeout": "10s"}},
            "registry": {"type": "static", "services": services},
            "shutdown": _QUICK_SHUTDOWN,
            "auth": {"audience": ["go-micro"]},
            "device_tokens": {"key": self._device_token_key},
        }

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> dict[str, int | None]:
        """Stop everything, the gateway first; answers each process's exit code."""
        codes: dict[str, int | None] = {}
        while self.started:
            process = self.started.pop()
            codes[process.package] = process.stop()
        return codes
