"""A short schemathesis run against admin-srv's and data-srv's OpenAPI documents, on the
whole system from .k8s (tests/cluster_system.py), through the NodePorts.

OPENAPI_FUZZ_CASES generated cases per API (100), after the coverage cases, with seed
OPENAPI_FUZZ_SEED (fixed, so `make test` sends the same requests every run); `make
reliability` runs the long one (tests/reliability/test_reliability_wire_contract.py).
The authenticated routes get the token of a throwaway admin created for the module.
"""

from __future__ import annotations

import os

import pytest

from .cluster_system import LOGIN, System
from .openapi_fuzz import FuzzTokens, fuzz, load, throwaway_admin

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CASES = int(os.environ.get("OPENAPI_FUZZ_CASES", "100"))
SEED = int(os.environ.get("OPENAPI_FUZZ_SEED", "20240612"))


@pytest.fixture(scope="module")
def tokens(system: System) -> FuzzTokens:
    return throwaway_admin(system.http, LOGIN)


def test_admin_srv_answers_as_its_openapi_document_says(system: System, tokens: FuzzTokens) -> None:
    run = fuzz(load(system.http_url), cases=CASES, seed=SEED, auth=tokens.provider())

    assert run.generated >= CASES, run.summary()
    # The throwaway admin's token reached the protected routes. Which of them answer 200
    # depends on the draw: most generated cases of a route leave the header out or break
    # it on purpose, and the draw is not the same from one run to the next.
    protected = ("GET /admin/v1/users", "POST /admin/v1/users", "GET /admin/v1/me")
    assert sum(run.answers[route, 200] for route in protected) > 0, run.summary()


def test_data_srv_answers_as_its_openapi_document_says(system: System) -> None:
    run = fuzz(load(system.data_url), cases=CASES, seed=SEED)

    assert run.generated >= CASES, run.summary()
