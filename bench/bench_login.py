"""Login throughput through admin-srv's HTTP API, with every service as its own process.

Each login is admin-srv -> user-srv VerifyPassword (one argon2id verification) ->
token-srv GenerateToken (one EdDSA signature, one refresh-token row). Measured in the
same run as baselines: one argon2id verification in-process with user-srv's default
parameters (the bound: user-srv's hashing workers / hash time), and GET /healthz through
the same admin-srv HTTP server (the gateway without any work). Prints the figures and
their ratios; merges login_per_second (and the baselines) into bench/results.json.

    uv run python bench/bench_login.py [--logins 200] [--concurrency 8] [--max-seconds 120]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

# The process launcher the end-to-end tests use; bench/ scripts run with bench/ on sys.path.
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.results import merge_results  # noqa: E402
from tests.login_system import LoginSystem  # noqa: E402
from user_srv.config import Argon2Config  # noqa: E402
from user_srv.passwords import argon2id  # noqa: E402

USER = {"user_name": "bench", "password": "bench-password", "role": "user"}


def argon2_verify_ms(cfg: Argon2Config, rounds: int = 20) -> float:
    hasher = argon2id(cfg)  # the hasher user-srv builds from the same section
    encoded = hasher.hash(USER["password"])
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        hasher.verify(encoded, USER["password"])
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def throughput(
    client: httpx.AsyncClient,
    request: httpx.Request,
    count: int,
    concurrency: int,
    max_seconds: float,
) -> tuple[float, int]:
    """Requests per second over at most `count` requests and `max_seconds`; failures."""
    slots = asyncio.Semaphore(concurrency)
    deadline = time.monotonic() + max_seconds
    failures = 0
    done = 0

    async def one() -> None:
        nonlocal failures, done
        async with slots:
            if time.monotonic() > deadline:
                return
            response = await client.send(request)
            done += 1
            if response.status_code != 200:
                failures += 1

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return done / (time.perf_counter() - start), failures


async def measure(
    system: LoginSystem, count: int, concurrency: int, max_s: float
) -> dict[str, float]:
    login_body = {"userName": USER["user_name"], "password": USER["password"]}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=system.http_url, timeout=60.0, limits=limits) as client:
        warm = await client.post("/admin/v1/login", json=login_body)
        if warm.status_code != 200:
            raise RuntimeError(f"login failed: {warm.status_code} {warm.text}")
        health = client.build_request("GET", "/healthz")
        healthz_per_s, _ = await throughput(client, health, count, concurrency, max_s)
        login = client.build_request("POST", "/admin/v1/login", json=login_body)
        login_per_s, failures = await throughput(client, login, count, concurrency, max_s)
    if failures:
        raise RuntimeError(f"{failures} logins failed")
    return {"login_per_second": login_per_s, "healthz_per_second": healthz_per_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args()
    cfg = Argon2Config()
    hash_ms = argon2_verify_ms(cfg)
    bound = cfg.max_concurrency * 1000.0 / hash_ms
    with (
        tempfile.TemporaryDirectory(prefix="bench-login-") as folder,
        LoginSystem(Path(folder), bootstrap_users=[USER]) as system,
    ):
        figures = asyncio.run(measure(system, args.logins, args.concurrency, args.max_seconds))
    login_per_s = figures["login_per_second"]
    print(
        f"argon2id t={cfg.time_cost} m={cfg.memory_kib} KiB p={cfg.parallelism}: "
        f"one verification {hash_ms:.1f} ms; {cfg.max_concurrency} hashing workers "
        f"bound user-srv at {bound:.0f} logins/s"
    )
    print(f"GET /healthz through admin-srv  {figures['healthz_per_second']:8.1f} req/s (baseline)")
    print(f"POST /admin/v1/login            {login_per_s:8.1f} logins/s")
    print(f"  ratio login/healthz           {login_per_s / figures['healthz_per_second']:8.3f}")
    print(f"  ratio login/argon2 bound      {login_per_s / bound:8.3f}")
    merge_results(
        {
            "login_per_second": round(login_per_s, 1),
            "login_healthz_baseline_per_second": round(figures["healthz_per_second"], 1),
            "login_argon2_verify_ms": round(hash_ms, 2),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
