"""The soak and failure tests: one system for the session, run by `make reliability`.

They run only when a path under tests/reliability/ is named on the command line, so a
plain `pytest` (the testpaths of `make test`) never starts them. Their size comes from
the environment, so a CI-like run can stay short:

    RELIABILITY_SECONDS   soak duration (120)
    RELIABILITY_CHAOS_S   seconds between two chaos actions (15)
    RELIABILITY_CLIENTS   concurrent load clients (3)
    RELIABILITY_USERS     users created for the durability test (10)
    RELIABILITY_SEED      the chaos schedule's and the fuzz run's seed (a fresh one when unset)
    RELIABILITY_FUZZ_CASES  generated requests per API in the OpenAPI fuzz run (500)
    RELIABILITY_DRAIN_ROUNDS  rounds of the keep-alive drain test (10)
    RELIABILITY_DRAIN_LOAD_S  each drain round's load in seconds (70)
    RELIABILITY_PHASE_S   length of the calm phase and of each resilience drill (20)
    RELIABILITY_OVERLOAD_S  how long 4x data-srv's capacity is offered (10)
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..cluster_system import System, running_system
from .chaos import Chaos
from .report import Report

HERE = Path(__file__).resolve().parent


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collect these tests only when the command line names this folder or a file in it."""
    for arg in config.args:
        named = Path(arg.split("::", 1)[0]).resolve()
        if named == HERE or HERE in named.parents:
            return None
    return True


def setting(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value else default


SECONDS = setting("RELIABILITY_SECONDS", 120)
CHAOS_INTERVAL_S = setting("RELIABILITY_CHAOS_S", 15)
CLIENTS = int(setting("RELIABILITY_CLIENTS", 3))
USERS = int(setting("RELIABILITY_USERS", 10))
PHASE_S = setting("RELIABILITY_PHASE_S", 20)
OVERLOAD_S = setting("RELIABILITY_OVERLOAD_S", 10)
SEED = int(setting("RELIABILITY_SEED", random.randrange(1 << 30)))  # noqa: S311
# Start-up (about a minute on two cores), the soak, and each chaos action's recovery.
TIMEOUT_S = 300 + 3 * SECONDS


@pytest.fixture(scope="session")
def rng() -> random.Random:
    return random.Random(SEED)  # noqa: S311 - a test schedule, not a secret


@pytest.fixture(scope="session")
def report() -> Report:
    return Report(seed=SEED)


@pytest.fixture(scope="session")
def system_and_chaos(
    tmp_path_factory: pytest.TempPathFactory, rng: random.Random
) -> Iterator[tuple[System, Chaos]]:
    with contextlib.ExitStack() as stack:
        tmp = tmp_path_factory.mktemp("reliability")
        # Entered first, so closed last: an API server started by a restart action must
        # outlive the runner, which needs the API to stop its pods.
        closing = stack.enter_context(contextlib.ExitStack())
        system = stack.enter_context(running_system(tmp))
        chaos = Chaos(system, rng)
        closing.callback(chaos.close)
        yield system, chaos


@pytest.fixture
def system(system_and_chaos: tuple[System, Chaos]) -> System:
    return system_and_chaos[0]


@pytest.fixture
def chaos(system_and_chaos: tuple[System, Chaos]) -> Chaos:
    return system_and_chaos[1]
