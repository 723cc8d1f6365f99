"""The long schemathesis run: RELIABILITY_FUZZ_CASES generated requests per API (500),
after the coverage cases, against admin-srv's and data-srv's OpenAPI documents on the
session's system, with the run's seed (RELIABILITY_SEED). The authenticated routes get
the token of a throwaway admin made for the run; the bootstrap admin's token serves only
to create it.

The file sorts after the soak on purpose: the fuzzed logins fail by the hundred, and
admin-srv's failed-login limit, per client address, would then refuse the soak's logins
(every client reaches admin-srv from the NodePort proxy's address) for its window.
"""

from __future__ import annotations

import pytest

from ..cluster_system import LOGIN, System
from ..openapi_fuzz import FuzzRun, fuzz, load, throwaway_admin
from .chaos import wait_steady
from .conftest import SEED, setting
from .report import Report

CASES = int(setting("RELIABILITY_FUZZ_CASES", 500))

# Start-up when this file runs alone, then a generous second per case for both runs.
pytestmark = pytest.mark.timeout(300 + CASES)


def figures(run: FuzzRun) -> dict[str, object]:
    return {
        "generated_cases": run.generated,
        "coverage_cases": run.coverage,
        "answers": {f"{op} {status}": n for (op, status), n in sorted(run.answers.items())},
    }


def test_admin_srv_answers_as_its_openapi_document_says(system: System, report: Report) -> None:
    wait_steady(system)
    tokens = throwaway_admin(system.http, LOGIN)

    run = fuzz(load(system.http_url), cases=CASES, seed=SEED, auth=tokens.provider())

    report.add("openapi fuzz: admin-srv", figures(run))
    assert run.generated >= CASES, run.summary()
    assert run.answers["GET /admin/v1/users", 200] > 0, run.summary()


def test_data_srv_answers_as_its_openapi_document_says(system: System, report: Report) -> None:
    wait_steady(system)

    run = fuzz(load(system.data_url), cases=CASES, seed=SEED)

    report.add("openapi fuzz: data-srv", figures(run))
    assert run.generated >= CASES, run.summary()
