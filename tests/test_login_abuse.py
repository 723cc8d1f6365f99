"""Login and sessions under abuse, attacked on the running system of .k8s.

Guesses come in as an attacker's would: through the NodePort, concurrently, over every
admin-srv replica, with forged X-Forwarded-For headers; the owner's device token and the
logout are tried over HTTP and gRPC. Each attack gets accounts of its
own (created by the dev admin) and, where the client address matters, a loopback source
address of its own, so that no budget it uses up touches another test.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import httpx
import pytest
import yaml

from api.admin_srv.v1 import admin_pb2, admin_pb2_grpc
from devcluster.runner.testing import ready_pods, wait_for

from .cluster_system import NAMESPACE, System, replicas_ready

LOGIN_PATH = "/admin/v1/login"
# The gRPC metadata key of the device token (admin-srv's device_tokens.METADATA_KEY).
DEVICE_METADATA = "x-device-token"
CALL_TIMEOUT_S = 20.0
CONCURRENT_GUESSES = 10
# Sequential guesses after a burst, enough to use up any budget the config gives.
MORE_GUESSES = 30
SCALED_REPLICAS = 3
SCALE_TIMEOUT_S = 90.0
# The revocation goal is one second; the margin covers a loaded CI machine.
REVOCATION_BOUND_S = 2.0
# Every client here connects from a loopback address of its own (the NodePort keeps
# it), so no address budget an attack uses up is shared with another test.
_SOURCES = (f"127.0.3.{i}" for i in range(1, 255))


def own_source() -> str:
    return next(_SOURCES)


def login_limits(k8s_objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """user-srv's login_limits as the shipped ConfigMap sets them."""
    config = yaml.safe_load(k8s_objects["ConfigMap/user-srv"]["data"]["config.yaml"])
    limits: dict[str, Any] = config["login_limits"]
    return limits


@pytest.fixture(scope="module")
def limits(k8s_objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return login_limits(k8s_objects)


@pytest.fixture(scope="module")
def admin_auth(system: System) -> dict[str, str]:
    return {"Authorization": f"Bearer {system.token()}"}


@pytest.fixture
def new_account(system: System, admin_auth: dict[str, str]) -> Callable[[], dict[str, str]]:
    """Creates an account no other test knows: {"userName", "password"}."""

    def create() -> dict[str, str]:
        account = {"userName": f"abuse-{secrets.token_hex(4)}", "password": secrets.token_hex(8)}
        created = system.http.post("/admin/v1/users", json=account, headers=admin_auth)
        assert created.status_code == 200, created.text
        return account

    return create


@contextlib.contextmanager
def client(base_url: str, source: str) -> Iterator[httpx.Client]:
    """A client with cookies of its own, connecting from `source`."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=base_url, timeout=20.0, transport=transport) as http:
        yield http


def guess(http: httpx.Client, user_name: str, **headers: str) -> int:
    """One wrong password; the answer's status."""
    body = {"userName": user_name, "password": f"wrong-{secrets.token_hex(4)}"}
    return http.post(LOGIN_PATH, json=body, headers=headers).status_code


def concurrent_guesses(base_urls: list[str], user_name: str, count: int) -> Counter[int]:
    """`count` wrong passwords at once, each on its own connection, over `base_urls` in
    turn; the answers by status."""
    start = threading.Barrier(count)
    urls = itertools.cycle(base_urls)
    source = own_source()

    def one(base_url: str) -> int:
        with client(base_url, source) as http:
            start.wait(timeout=30)
            return guess(http, user_name)

    with futures.ThreadPoolExecutor(count) as pool:
        answers = list(pool.map(one, [next(urls) for _ in range(count)]))
    return Counter(answers)


def guesses_until_refused(base_urls: list[str], user_name: str) -> Counter[int]:
    """Wrong passwords one at a time over `base_urls` in turn until one is refused
    unchecked (429), at most MORE_GUESSES; the answers by status."""
    answers: Counter[int] = Counter()
    source = own_source()
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(client(url, source)) for url in base_urls]
        for http in itertools.islice(itertools.cycle(clients), MORE_GUESSES):
            status = guess(http, user_name)
            answers[status] += 1
            if status == 429:
                break
    return answers


def admin_pod_urls(system: System) -> list[str]:
    """Each ready admin-srv pod's own HTTP address, past the Service."""
    pods = ready_pods(system.node.core, NAMESPACE, "app=admin-srv")
    return [f"http://{pod.status.pod_ip}:8080" for pod in pods]


def grpc_login(
    channel: grpc.Channel, account: dict[str, str], device_token: str = ""
) -> tuple[admin_pb2.LoginReply, str]:
    """A login over gRPC, with the device token when given; the reply and the device
    token answered in the initial metadata ("" when none)."""
    stub = admin_pb2_grpc.AuthenticationServiceStub(channel)
    request = admin_pb2.LoginRequest(user_name=account["userName"], password=account["password"])
    metadata = ((DEVICE_METADATA, device_token),) if device_token else ()
    reply, call = stub.Login.with_call(request, metadata=metadata, timeout=CALL_TIMEOUT_S)
    answered = dict(call.initial_metadata() or ()).get(DEVICE_METADATA, "")
    return reply, str(answered)


def grpc_me(channel: grpc.Channel, access_token: str) -> grpc.StatusCode:
    stub = admin_pb2_grpc.AuthenticationServiceStub(channel)
    metadata = (("authorization", f"Bearer {access_token}"),)
    try:
        stub.GetMe(admin_pb2.GetMeRequest(), metadata=metadata, timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    return grpc.StatusCode.OK


def test_concurrent_wrong_passwords_are_checked_at_most_the_budget(
    system: System, new_account: Callable[[], dict[str, str]], limits: dict[str, Any]
) -> None:
    """Checks in flight count: a burst cannot slip past the limit before it is recorded."""
    victim = new_account()["userName"]
    budget = limits["unknown_max_failures"]

    burst = concurrent_guesses([system.http_url], victim, CONCURRENT_GUESSES)
    rest = guesses_until_refused([system.http_url], victim)

    assert set(burst) <= {401, 429}, burst
    assert burst[401] <= budget, burst
    assert burst[401] + rest[401] == budget, (burst, rest)
    assert rest[429] == 1, rest


@pytest.fixture
def three_admin_replicas(system: System) -> Iterator[list[str]]:
    """admin-srv scaled to three replicas; back to two afterwards."""
    apps = system.node.apps

    def scale(replicas: int) -> None:
        patch = {"spec": {"replicas": replicas}}
        apps.patch_namespaced_deployment("admin-srv", NAMESPACE, patch)
        wait_for(
            f"{replicas} ready admin-srv replicas",
            lambda: replicas_ready(system, "admin-srv", set(), replicas),
            SCALE_TIMEOUT_S,
            0.2,
        )

    scale(SCALED_REPLICAS)
    try:
        yield admin_pod_urls(system)
    finally:
        scale(2)


@pytest.mark.timeout(300)  # two rollouts besides the attack
def test_replicas_share_one_budget(
    three_admin_replicas: list[str],
    new_account: Callable[[], dict[str, str]],
    limits: dict[str, Any],
) -> None:
    """Guesses spread over three replicas get what one replica would give."""
    victim = new_account()["userName"]
    budget = limits["unknown_max_failures"]
    assert len(three_admin_replicas) == SCALED_REPLICAS

    burst = concurrent_guesses(three_admin_replicas, victim, CONCURRENT_GUESSES)
    rest = guesses_until_refused(three_admin_replicas, victim)

    assert burst[401] + rest[401] == budget, (burst, rest)
    assert rest[429] == 1, rest


def test_rotating_forwarded_for_gives_no_fresh_budget(
    system: System, new_account: Callable[[], dict[str, str]], limits: dict[str, Any]
) -> None:
    """The address budget keys on the client's own address, not on what it claims."""
    per_account = limits["unknown_max_failures"] - 1  # below any account's own budget
    budget = limits["address_max_failures"]
    answers: Counter[int] = Counter()
    with client(system.http_url, own_source()) as http:
        while sum(answers.values()) < budget:
            victim = new_account()["userName"]
            for _ in range(min(per_account, budget - sum(answers.values()))):
                forged = f"198.51.100.{secrets.randbelow(250) + 1}"
                answers[guess(http, victim, **{"X-Forwarded-For": forged})] += 1
        fresh = new_account()["userName"]
        after = guess(http, fresh, **{"X-Forwarded-For": "203.0.113.9"})
    with client(system.http_url, own_source()) as elsewhere:
        other = guess(elsewhere, new_account()["userName"])

    assert answers == Counter({401: budget}), answers
    assert after == 429  # a fresh account, a fresh forged address: still this address's
    assert other == 401  # the address, not the account nor the whole edge, is refused


def test_owner_with_a_device_token_logs_in_during_an_attack(
    system: System, new_account: Callable[[], dict[str, str]]
) -> None:
    """The attacker uses up the budget all unknown clients share; the owner's device,
    which logged in before, has a budget of its own."""
    owner = new_account()
    with (
        client(system.http_url, own_source()) as device,
        client(system.http_url, own_source()) as stranger,
    ):
        first = device.post(LOGIN_PATH, json=owner)
        assert first.status_code == 200, first.text
        assert device.cookies, "no device token after a login"

        attack = guesses_until_refused([system.http_url], owner["userName"])
        unknown = stranger.post(LOGIN_PATH, json=owner)
        during = device.post(LOGIN_PATH, json=owner)

    assert attack[429] == 1, attack  # the attack locked the shared budget
    assert unknown.status_code == 429, unknown.text  # even the right password, unknown
    assert during.status_code == 200, during.text


def test_logout_ends_access_on_every_replica_within_the_bound(
    system: System, new_account: Callable[[], dict[str, str]]
) -> None:
    account = new_account()
    session = system.http.post(LOGIN_PATH, json=account).json()
    auth = {"Authorization": f"Bearer {session['token']}"}
    pods = admin_pod_urls(system)
    with contextlib.ExitStack() as stack:
        source = own_source()
        replicas = [stack.enter_context(client(url, source)) for url in pods]
        before = [http.get("/admin/v1/me", headers=auth).status_code for http in replicas]

        logout = system.http.post(
            "/admin/v1/logout", json={"refreshToken": session["refreshToken"]}, headers=auth
        )
        ended = time.monotonic()
        wait_for(
            "every admin-srv replica to refuse the logged-out token",
            lambda: all(
                http.get("/admin/v1/me", headers=auth).status_code == 401 for http in replicas
            ),
            REVOCATION_BOUND_S,
            0.02,
        )
        delay = time.monotonic() - ended

    assert before == [200] * len(pods), before
    assert logout.status_code == 200, logout.text
    assert delay < REVOCATION_BOUND_S


def test_owner_with_a_device_token_logs_in_over_grpc_during_an_attack(
    system: System, new_account: Callable[[], dict[str, str]]
) -> None:
    """The same over gRPC: the device token comes and goes as metadata."""
    owner = new_account()
    with grpc.insecure_channel(system.grpc_target) as channel:
        _, device_token = grpc_login(channel, owner)
        attack = guesses_until_refused([system.http_url], owner["userName"])
        with pytest.raises(grpc.RpcError) as unknown:
            grpc_login(channel, owner)
        during, _ = grpc_login(channel, owner, device_token)

    assert device_token, "no device token after a login"
    assert attack[429] == 1, attack
    assert unknown.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert during.user_name == owner["userName"]


def test_logout_over_grpc_ends_access_on_every_replica_within_the_bound(
    system: System, new_account: Callable[[], dict[str, str]]
) -> None:
    account = new_account()
    pods = ready_pods(system.node.core, NAMESPACE, "app=admin-srv")
    with contextlib.ExitStack() as stack:
        channel = stack.enter_context(grpc.insecure_channel(system.grpc_target))
        replicas = [
            stack.enter_context(grpc.insecure_channel(f"{pod.status.pod_ip}:9090")) for pod in pods
        ]
        session, _ = grpc_login(channel, account)
        before = [grpc_me(replica, session.token) for replica in replicas]

        admin_pb2_grpc.AuthenticationServiceStub(channel).Logout(
            admin_pb2.LogoutRequest(refresh_token=session.refresh_token),
            metadata=(("authorization", f"Bearer {session.token}"),),
            timeout=CALL_TIMEOUT_S,
        )
        ended = time.monotonic()
        wait_for(
            "every admin-srv replica to refuse the logged-out token over gRPC",
            lambda: all(
                grpc_me(replica, session.token) == grpc.StatusCode.UNAUTHENTICATED
                for replica in replicas
            ),
            REVOCATION_BOUND_S,
            0.02,
        )
        delay = time.monotonic() - ended

    assert before == [grpc.StatusCode.OK] * len(pods), before
    assert delay < REVOCATION_BOUND_S
