"""A steady mixed load on the system from a few client threads, every request recorded.

Each client loops over the operations a user of the system makes: logins over HTTP and
gRPC, /me, and device lookups through admin-srv and through data-srv. Each client is one
device of the same user: it logs in once, one client after another, before its loop,
and from then on sends the device token it was given (the HTTP cookie, the gRPC
metadata), as a returning device does; unknown devices of one account log in one at a
time (user-srv's login limits), which concurrent clients would otherwise trip over. A request is
recorded with its start and end (time.monotonic()) and, when it failed, what failed,
so failures can be matched against the chaos actions afterwards. Used by the disruption
tests of tests/test_e2e_cluster.py and the soak of tests/reliability/.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import httpx

from api.admin_srv.v1 import admin_pb2, admin_pb2_grpc

from .cluster_system import LOGIN, System

# admin-srv's gRPC metadata key for the device token (admin_srv.device_tokens).
DEVICE_TOKEN_METADATA = "x-device-token"
OPERATIONS = ("login_http", "login_grpc", "me", "device_admin", "device_data")
REQUEST_TIMEOUT_S = 10.0
PAUSE_S = 0.02  # between two requests of one client: leaves the two cores some room


@dataclass(frozen=True)
class Request:
    operation: str
    start: float
    end: float
    error: str | None  # None: answered as expected

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Client:
    """One user's session: its own HTTP connections and gRPC channel."""

    system: System
    number: int
    stop: threading.Event
    deadline: float
    limit: int
    operations: tuple[str, ...] = OPERATIONS
    enrolment: threading.Lock = field(default_factory=threading.Lock)
    """Held for each client's first logins, shared by the clients of one Load."""
    requests: list[Request] = field(default_factory=list)
    token: str = ""
    device_token: str = ""  # the gRPC side's; httpx keeps the HTTP cookie itself

    def run(self) -> None:
        with (
            httpx.Client(base_url=self.system.http_url, timeout=REQUEST_TIMEOUT_S) as http,
            httpx.Client(base_url=self.system.data_url, timeout=REQUEST_TIMEOUT_S) as data,
            grpc.insecure_channel(self.system.grpc_target) as channel,
        ):
            auth = admin_pb2_grpc.AuthenticationServiceStub(channel)
            calls: dict[str, Callable[[], None]] = {
                "login_http": lambda: self._login_http(http),
                "login_grpc": lambda: self._login_grpc(auth),
                "me": lambda: self._get(http, "/admin/v1/me", "thangn"),
                "device_admin": lambda: self._get(http, "/admin/v1/devices/device2", "device2"),
                "device_data": lambda: self._get(data, "/data/device1", "device1"),
            }
            with self.enrolment:
                for login in ("login_http", "login_grpc"):
                    if login in self.operations:
                        self._record(login, calls[login])
            # Clients start on different operations so that every one runs at any time.
            index = self.number
            while (
                not self.stop.is_set()
                and len(self.requests) < self.limit
                and time.monotonic() < self.deadline
            ):
                operation = self.operations[index % len(self.operations)]
                index += 1
                if operation in ("me", "device_admin") and not self.token:
                    operation = "login_http"  # nothing to authenticate with yet
                self._record(operation, calls[operation])
                time.sleep(PAUSE_S)

    def _record(self, operation: str, call: Callable[[], None]) -> None:
        start = time.monotonic()
        error: str | None = None
        try:
            call()
        except grpc.RpcError as exc:
            error = f"grpc {exc.code().name}: {exc.details()}"
        except AssertionError as exc:
            error = str(exc)
        except Exception as exc:  # every failure counts (a bad body too), none ends the client
            error = f"{type(exc).__name__}: {exc}"
        self.requests.append(Request(operation, start, time.monotonic(), error))

    def _login_http(self, http: httpx.Client) -> None:
        # A key per login, as a client that may retry it sends (admin-srv README).
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        reply = http.post("/admin/v1/login", json=LOGIN, headers=headers)
        assert reply.status_code == 200, f"http {reply.status_code}: {reply.text[:200]}"
        self.token = reply.json()["token"]

    def _login_grpc(self, auth: admin_pb2_grpc.AuthenticationServiceStub) -> None:
        metadata: tuple[tuple[str, str | bytes], ...] = (("idempotency-key", uuid.uuid4().hex),)
        if self.device_token:
            metadata += ((DEVICE_TOKEN_METADATA, self.device_token),)
        reply, call = auth.Login.with_call(
            admin_pb2.LoginRequest(user_name=LOGIN["userName"], password=LOGIN["password"]),
            timeout=REQUEST_TIMEOUT_S,
            metadata=metadata,
        )
        assert reply.user_name == LOGIN["userName"], f"login answered {reply.user_name!r}"
        self.token = reply.token
        sent = dict(call.initial_metadata() or ())
        self.device_token = str(sent.get(DEVICE_TOKEN_METADATA, self.device_token))

    def _get(self, http: httpx.Client, path: str, expected: str) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        reply = http.get(path, headers=headers)
        assert reply.status_code == 200, f"http {reply.status_code}: {reply.text[:200]}"
        assert expected in reply.text, f"unexpected answer: {reply.text[:200]}"


class Load:
    """`clients` client threads until stop() (or each reaches its bounds)."""

    def __init__(
        self,
        system: System,
        clients: int,
        duration_s: float,
        limit: int,
        operations: tuple[str, ...] = OPERATIONS,
    ) -> None:
        """`operations`: a subset of OPERATIONS (e.g. the device lookups of a drill)."""
        self._stop = threading.Event()
        deadline = time.monotonic() + duration_s
        enrolment = threading.Lock()
        self.clients = [
            Client(system, n, self._stop, deadline, limit, operations, enrolment)
            for n in range(clients)
        ]
        self._threads = [
            threading.Thread(target=c.run, name=f"load-{c.number}", daemon=True)
            for c in self.clients
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def completed_since(self, moment: float) -> int:
        """How many requests started at or after `moment` (time.monotonic()) have ended."""
        return sum(1 for c in self.clients for r in list(c.requests) if r.start >= moment)

    def stop(self) -> list[Request]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT_S + 5)
        return sorted((r for c in self.clients for r in c.requests), key=lambda r: r.start)
