"""The login system as separate processes: user-srv, token-srv, device-srv and admin-srv,
each `python -m <package>` with its own config folder, wired by a static registry.

Servers bind port 0; the ports come from each process's "listening on" log lines
(micro.testing.processes), so concurrent runs never collide. Used by
tests/test_e2e_login.py and bench/bench_login.py; whoever starts a LoginSystem stops it
(it is a context manager).
"""

from __future__ import annotations

import pathlib
from types import TracebackType
from typing import Any

from micro.testing.processes import ServiceProcess

_QUICK_SHUTDOWN = {"drain_delay": "0s", "grace_period": "2s"}


def _grpc_endpoint(service: str, process: ServiceProcess) -> dict[str, Any]:
    return {"name": service, "endpoints": [f"grpc://127.0.0.1:{process.ports['gRPC']}"]}


class LoginSystem:
    """user-srv, token-srv, device-srv and admin-srv, started in order."""

    def __init__(
        self,
        workdir: pathlib.Path,
        *,
        bootstrap_users: list[dict[str, str]],
        argon2: dict[str, int] | None = None,
        login_limit: dict[str, Any] | None = None,
    ) -> None:
        data = workdir / "data"
        self.user = ServiceProcess(
            "user_srv",
            {
                "server": {"grpc": {"addr": "127.0.0.1:0", "timeout": "5s"}},
                "registry": {"type": "static"},
                "shutdown": _QUICK_SHUTDOWN,
                "database": {"data_dir": str(data)},
                "argon2": argon2 or {},
                "bootstrap_users": bootstrap_users,
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
        self._login_limit = login_limit or {}
        self.admin: ServiceProcess | None = None
        self.started: list[ServiceProcess] = []

    @property
    def http_url(self) -> str:
        assert self.admin is not None
        return f"http://127.0.0.1:{self.admin.ports['HTTP']}"

    @property
    def grpc_target(self) -> str:
        assert self.admin is not None
        return f"127.0.0.1:{self.admin.ports['gRPC']}"

    def __enter__(self) -> LoginSystem:
        try:
            for process in (self.user, self.token, self.device):
                process.start()
                self.started.append(process)
            services = [
                _grpc_endpoint("go-micro.user-srv", self.user),
                _grpc_endpoint("go-micro.token-srv", self.token),
                _grpc_endpoint("go-micro.device-srv", self.device),
            ]
            self.admin = ServiceProcess(
                "admin_srv",
                {
                    "server": {
                        "http": {"addr": "127.0.0.1:0", "timeout": "10s"},
                        "grpc": {"addr": "127.0.0.1:0", "timeout": "10s"},
                    },
                    "client": {"grpc": {"timeout": "10s"}},
                    "registry": {"type": "static", "services": services},
                    "shutdown": _QUICK_SHUTDOWN,
                    "auth": {"audience": ["go-micro"]},
                    "login_limit": self._login_limit,
                },
                self._workdir,
            )
            self.admin.start()
            self.started.append(self.admin)
        except BaseException:
            self.stop()
            raise
        return self

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
