"""Login under abuse: what an attacker gets, how soon logout bites, what honest users keep.

Every service as its own process (tests/login_system.py), clients over admin-srv's HTTP
API. The attacker rotates over 64 loopback addresses of its own (127.0.2.0/24), as a
botnet would, so the per-account budget is what binds it; each honest user comes from an
address of its own (127.0.1.0/24).

- Guesses per account per hour, with 1 and with 3 admin-srv replicas: the attacker
  floods one account with wrong passwords over every replica for --attack-seconds under
  a short-lockout budget config; a guess counts when it was checked (401, not 429). The
  count is compared with the bound computed from that config for the same span, and
  scaled by the ratio to the shipped config's bound for an hour; the bound itself is
  reported too.
- Revocation delay p50/p99: log in, log out, then poll GET /admin/v1/me on every replica
  with the old access token until each answers 401.
- Honest logins/s while the attacker floods one account, against no flood, same run, under
  the shipped lockouts: quiet and flooded phases alternate, so outside load weighs on both
  alike. The flood is open-loop (micro.testing.open_loop): guesses arrive at a multiple of
  the quiet login rate whatever the answers' pace, from a process of its own, as from a
  machine of its own; a closed-loop attacker would instead take whatever CPU the refusals
  leave on this one machine, which says more about sharing two cores than about the system.

    uv run python bench/bench_login_abuse.py [--attack-seconds 12] [--phase-seconds 12]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.results import merge_results, percentile  # noqa: E402
from micro.testing.open_loop import Offered, Request, offer  # noqa: E402
from tests.login_system import LoginSystem  # noqa: E402
from user_srv.config import LoginLimitsConfig  # noqa: E402

HONEST = [
    {"user_name": f"honest{i}", "password": f"honest-password-{i}", "role": "user"}
    for i in range(8)
]
VICTIMS = [
    {"user_name": f"victim{i}", "password": f"victim-password-{i}", "role": "user"}
    for i in range(3)
]
ATTACKER_ADDRESSES = [f"127.0.2.{i}" for i in range(1, 65)]
# Each honest user from an address of its own, as real users are.
HONEST_ADDRESSES = {user["user_name"]: f"127.0.1.{i + 1}" for i, user in enumerate(HONEST)}
# Lockouts short enough that a bounded run sees several of them escalate.
SHORT_LIMITS = {"first_lockout": "1s", "max_lockout": "4s"}
HOUR = timedelta(hours=1)
POLL_S = 0.005
REVOCATION_TIMEOUT_S = 10.0
# Quiet and flooded phases alternate this many times each.
PHASES = 4
# A flood's first seconds, not measured: each attacker address x replica meets user-srv
# once before admin-srv remembers its refusal (the docs give what it costs).
WARM_UP_S = 3.0


def shipped_limits_config() -> dict[str, Any]:
    """user-srv's login_limits section as .k8s/user-srv.yaml writes it ({}: the defaults)."""
    for document in yaml.safe_load_all((REPO_ROOT / ".k8s/user-srv.yaml").read_text()):
        if document and document.get("kind") == "ConfigMap":
            config = yaml.safe_load(document["data"]["config.yaml"]) or {}
            limits: dict[str, Any] = config.get("login_limits", {})
            return limits
    return {}


def shipped_limits() -> LoginLimitsConfig:
    """user-srv's login_limits as .k8s/user-srv.yaml configures them (defaults otherwise)."""
    return LoginLimitsConfig.model_validate(shipped_limits_config())


def guesses_within(cfg: LoginLimitsConfig, span: timedelta) -> int:
    """The checked guesses an unknown client gets on one account within `span`: a full
    budget, then a lockout that doubles each time up to max_lockout, again and again."""
    elapsed, lockouts, guesses = timedelta(0), 0, 0
    while elapsed < span:
        guesses += cfg.unknown_max_failures
        elapsed += min(cfg.first_lockout * (1 << min(lockouts, 62)), cfg.max_lockout)
        lockouts += 1
    return guesses


def clients(urls: list[str], addresses: list[str]) -> list[httpx.AsyncClient]:
    """A client per replica and source address: the socket is bound to that address."""
    return [
        httpx.AsyncClient(
            base_url=url,
            timeout=30.0,
            transport=httpx.AsyncHTTPTransport(local_address=address),
        )
        for address in addresses
        for url in urls
    ]


async def post_login(client: httpx.AsyncClient, body: dict[str, str]) -> int:
    """The answer's status; 0 when the connection failed (a kept-alive connection the
    server closed as it was reused), counted rather than fatal."""
    try:
        reply = await client.post("/admin/v1/login", json=body)
    except httpx.TransportError:
        return 0
    return reply.status_code


async def flood(
    attackers: list[httpx.AsyncClient], victim: str, concurrency: int, until: float
) -> dict[int, int]:
    """Wrong passwords for `victim` over every replica until the monotonic time `until`;
    answers by status."""
    statuses: dict[int, int] = {}
    replicas = itertools.cycle(attackers)
    guess = itertools.count()

    async def worker() -> None:
        while time.monotonic() < until:
            client = next(replicas)
            body = {"userName": victim, "password": f"guess-{next(guess)}"}
            status = await post_login(client, body)
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


def flood_elsewhere(urls: list[str], victim: str, rate: float, seconds: float) -> Offered:
    """Wrong passwords for `victim` at `rate` a second over every replica and attacker
    address, open-loop; run in the attacker's process, as from a machine of its own: in
    the honest users' event loop its client work would slow their logins, not the system's."""

    def guess(k: int) -> Request:
        body = json.dumps({"userName": victim, "password": f"guess-{k}"}).encode()
        return ("POST", "/admin/v1/login", body)

    return asyncio.run(
        offer(
            urls,
            guess,
            rate=rate,
            seconds=seconds,
            connections=len(urls) * len(ATTACKER_ADDRESSES),
            local_addresses=ATTACKER_ADDRESSES,
        )
    )


async def honest_logins(
    honest: dict[str, list[httpx.AsyncClient]], seconds: float, concurrency: int
) -> tuple[float, dict[int, int]]:
    """Successful logins/s of the honest users, each from its own address over every
    replica in turn; each worker has users of its own, so no user has two logins at
    once. Every answer by status."""
    deadline = time.monotonic() + seconds
    statuses: dict[int, int] = {}

    async def worker(users: list[dict[str, str]]) -> None:
        turns = itertools.cycle(
            (user, replica)
            for replica in range(len(honest[users[0]["user_name"]]))
            for user in users
        )
        while time.monotonic() < deadline:
            user, replica = next(turns)
            body = {"userName": user["user_name"], "password": user["password"]}
            status = await post_login(honest[user["user_name"]][replica], body)
            statuses[status] = statuses.get(status, 0) + 1

    start = time.monotonic()
    await asyncio.gather(*(worker(HONEST[w::concurrency]) for w in range(concurrency)))
    return statuses.get(200, 0) / (time.monotonic() - start), statuses


async def attack(system: LoginSystem, victim: str, seconds: float, concurrency: int) -> int:
    """The guesses checked (401) in `seconds` of flooding."""
    attackers = clients(system.http_urls, ATTACKER_ADDRESSES)
    try:
        # The measured span itself.
        statuses = await flood(attackers, victim, concurrency, time.monotonic() + seconds)
    finally:
        for client in attackers:
            await client.aclose()
    # A 5xx is reported, not fatal: how the system bears the flood is part of the figure.
    print(f"  answers to {victim}'s attacker: {dict(sorted(statuses.items()))}")
    return statuses.get(401, 0)


async def flood_ratio(
    system: LoginSystem, seconds: float, concurrency: int, multiple: float
) -> tuple[float, float, float]:
    """Honest logins/s without and with a flood at `multiple` x the first quiet phase's
    login rate, in alternating phases of `seconds` / PHASES each, so load from outside
    the bench weighs on both; and the flood's rate. The flood's first WARM_UP_S run
    before the first flooded phase, unmeasured."""
    honest = {
        name: clients(system.http_urls, [address]) for name, address in HONEST_ADDRESSES.items()
    }
    phase_s = seconds / PHASES
    rates: dict[bool, list[float]] = {False: [], True: []}
    answers: dict[bool, dict[int, int]] = {False: {}, True: {}}
    flood_answers: Counter[int] = Counter()
    late = 0
    loop = asyncio.get_running_loop()
    victim = VICTIMS[-1]["user_name"]
    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            # Started before the first phase: a process start is no part of a phase.
            await loop.run_in_executor(pool, time.sleep, 0)
            for flooding in itertools.islice(itertools.cycle((False, True)), 2 * PHASES):
                flood_rate = multiple * rates[False][0] if flooding else 0.0
                if flooding and not rates[True]:
                    warm_up = await loop.run_in_executor(
                        pool, flood_elsewhere, system.http_urls, victim, flood_rate, WARM_UP_S
                    )
                    print(f"  warm-up flood answers: {dict(sorted(warm_up.statuses.items()))}")
                running = (
                    loop.run_in_executor(
                        pool, flood_elsewhere, system.http_urls, victim, flood_rate, phase_s
                    )
                    if flooding
                    else None
                )
                rate, statuses = await honest_logins(honest, phase_s, concurrency)
                if running is not None:
                    offered = await running
                    flood_answers.update(offered.statuses)
                    late += offered.late
                rates[flooding].append(rate)
                for status, count in statuses.items():
                    answers[flooding][status] = answers[flooding].get(status, 0) + count
    finally:
        for client in itertools.chain(*honest.values()):
            await client.aclose()
    print(f"  honest answers: quiet {answers[False]}, flooded {answers[True]}")
    print(f"  flood answers: {dict(sorted(flood_answers.items()))}, {late} sent late")
    quiet = statistics.fmean(rates[False])
    return quiet, statistics.fmean(rates[True]), multiple * rates[False][0]


async def revocation_delays(system: LoginSystem, rounds: int) -> list[float] | None:
    """Seconds from a logout's answer until every replica refuses its access token; None
    when one still allows it after REVOCATION_TIMEOUT_S."""
    user = HONEST[0]
    honest = clients(system.http_urls, [HONEST_ADDRESSES[user["user_name"]]])
    delays = []
    try:
        for _ in range(rounds):
            login = await honest[0].post(
                "/admin/v1/login",
                json={"userName": user["user_name"], "password": user["password"]},
            )
            login.raise_for_status()
            session: dict[str, Any] = login.json()
            auth = {"Authorization": f"Bearer {session['token']}"}
            logout = await honest[0].post(
                "/admin/v1/logout", json={"refreshToken": session["refreshToken"]}, headers=auth
            )
            logout.raise_for_status()
            ended = time.monotonic()
            waiting = list(honest)
            while waiting:
                if time.monotonic() - ended > REVOCATION_TIMEOUT_S:
                    return None
                answers = [await c.get("/admin/v1/me", headers=auth) for c in waiting]
                waiting = [c for c, a in zip(waiting, answers, strict=True) if a.status_code != 401]
                if waiting:
                    await asyncio.sleep(POLL_S)  # the poll interval, not a wait for a result
            delays.append(time.monotonic() - ended)
    finally:
        for client in honest:
            await client.aclose()
    return delays


def revocation(system: LoginSystem, rounds: int, figures: dict[str, float]) -> None:
    delays = asyncio.run(revocation_delays(system, rounds))
    if delays is None:
        print(f"  revocation: access still allowed {REVOCATION_TIMEOUT_S:.0f} s after logout")
        return
    p50, p99 = percentile(delays, 0.5) * 1000, percentile(delays, 0.99) * 1000
    print(f"  revocation delay p50 {p50:.1f} ms, p99 {p99:.1f} ms (every replica)")
    figures["login_abuse_revocation_p50_ms"] = round(p50, 1)
    figures["login_abuse_revocation_p99_ms"] = round(p99, 1)


def run(args: argparse.Namespace) -> dict[str, float]:
    figures: dict[str, float] = {}
    short = LoginLimitsConfig.model_validate(SHORT_LIMITS)
    span = timedelta(seconds=args.attack_seconds)
    short_bound = guesses_within(short, span)
    shipped = shipped_limits()
    hour_bound = guesses_within(shipped, HOUR)
    steady = shipped.unknown_max_failures * (HOUR / shipped.max_lockout)
    print(
        f"bound from the shipped config: {hour_bound} guesses in the first hour, then "
        f"{steady:.0f} an hour; short config over {span.total_seconds():.0f} s: {short_bound}"
    )
    figures["login_abuse_bound_first_hour"] = hour_bound
    for replicas in (1, 3):
        with (
            tempfile.TemporaryDirectory(prefix="bench-login-abuse-") as folder,
            LoginSystem(
                Path(folder),
                bootstrap_users=[*HONEST, *VICTIMS],
                login_limits=SHORT_LIMITS,
                admin_replicas=replicas,
            ) as system,
        ):
            print(f"{replicas} admin-srv replica(s):")
            victim = VICTIMS[0 if replicas == 1 else 1]["user_name"]
            checked = asyncio.run(attack(system, victim, args.attack_seconds, args.attackers))
            per_hour = checked * hour_bound / short_bound
            print(f"  checked guesses {checked} (bound {short_bound}): {per_hour:.0f} an hour")
            figures[f"login_abuse_guesses_per_hour_{replicas}_replica"] = round(per_hour, 1)
            if replicas == 3:
                revocation(system, args.revocations, figures)
    with (
        tempfile.TemporaryDirectory(prefix="bench-login-abuse-") as folder,
        LoginSystem(
            Path(folder),
            bootstrap_users=[*HONEST, *VICTIMS],
            login_limits=shipped_limits_config(),
            admin_replicas=3,
        ) as system,
    ):
        print("3 admin-srv replicas, the shipped lockouts:")
        for multiple in args.flood_multiples:
            quiet, flooded, flood_rate = asyncio.run(
                flood_ratio(system, args.phase_seconds, args.concurrency, multiple)
            )
            print(
                f"  honest logins/s {quiet:.1f} quiet, {flooded:.1f} under a flood of "
                f"{flood_rate:.0f} guesses/s ({multiple:g}x): ratio {flooded / quiet:.3f}"
            )
            key = f"login_abuse_flood_{multiple:g}x"
            figures[f"{key}_guesses_per_second"] = round(flood_rate)
            figures[f"{key}_honest_per_second"] = round(flooded, 1)
            figures[f"{key}_ratio"] = round(flooded / quiet, 3)
            figures["login_abuse_honest_per_second"] = round(quiet, 1)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attack-seconds", type=float, default=12.0)
    parser.add_argument("--attackers", type=int, default=16, help="concurrent guesses")
    parser.add_argument(
        "--flood-multiples",
        type=float,
        nargs="+",
        default=[10.0, 50.0],
        help="flood rates, as multiples of the quiet login rate",
    )
    parser.add_argument("--phase-seconds", type=float, default=12.0, help="per mode, in all")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--revocations", type=int, default=100)
    args = parser.parse_args()
    merge_results(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
