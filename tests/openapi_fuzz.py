"""schemathesis against a running service: requests generated from its /openapi.json,
each answer checked against the same document.

A run draws `cases` requests (bounded in count; each request in time) across every
operation of the document, valid ones and ones that break it (a wrong type, a value out
of range, a missing or unknown field), with a seed, so `seed` repeats a run. Before them
come schemathesis' coverage cases: for each operation, the boundaries of what it
declares (each limit and one past it, every required field left out, undeclared
methods). Every default check of schemathesis applies: no 5xx, only declared statuses
and media types, bodies and headers as declared, schema-breaking requests refused with
a 4xx, valid ones not refused as invalid, and declared authentication enforced.

One exception: a page token is opaque (only a nextPageToken from a previous page is
valid, which a schema cannot say), so a valid-looking random one may be refused with
400.
"""

from __future__ import annotations

import collections
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict
from schemathesis import Case as AnyCase
from schemathesis import GenerationMode
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import positive_data_acceptance

Case = AnyCase[Any]
REQUEST_TIMEOUT_S = 10.0
# Query parameters whose valid values only the server can hand out.
OPAQUE_PARAMETERS = frozenset({"pageToken"})


@dataclass
class FuzzRun:
    """What a run sent: cases per operation and the statuses they were answered."""

    generated: int = 0
    coverage: int = 0
    # (operation, status) -> how many answers, e.g. ("GET /admin/v1/users", 200)
    answers: collections.Counter[tuple[str, int]] = field(default_factory=collections.Counter)

    def summary(self) -> str:
        answers = "; ".join(
            f"{op} {status}: {n}" for (op, status), n in sorted(self.answers.items())
        )
        return f"{self.generated} generated + {self.coverage} coverage cases ({answers})"


def load(base_url: str) -> schemathesis.BaseSchema:
    """The document the service serves, with requests going to `base_url`."""
    schema = schemathesis.openapi.from_url(
        f"{base_url}/openapi.json", config=schemathesis.Config(), timeout=REQUEST_TIMEOUT_S
    )
    schema.config.update(base_url=base_url, request_timeout=REQUEST_TIMEOUT_S)
    return schema


def _excluded_checks(case: Case) -> list[schemathesis.CheckFunction]:
    if OPAQUE_PARAMETERS & {k for k, v in (case.query or {}).items() if v}:
        return [positive_data_acceptance]
    return []


def _coverage_cases(schema: schemathesis.BaseSchema) -> Iterator[Case]:
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # a document schemathesis cannot read fails the run
        operation = result.ok()
        config = schema.config.generation_for(operation=operation, phase="coverage")
        yield from schema.iter_coverage_cases(
            operation, generation_modes=modes, generation_config=config
        )


def fuzz(
    schema: schemathesis.BaseSchema,
    *,
    cases: int,
    seed: int,
    auth: type[BearerAuth] | None = None,
) -> FuzzRun:
    """Send the coverage cases, then `cases` generated ones; raise on the first answer a
    check refuses (hypothesis shrinks it to a small example first)."""
    if auth is not None:
        # No caching: get() is a lookup, and a cached token would not depend on the case.
        schema.auth(refresh_interval=None)(auth)
    run = FuzzRun()
    with requests.Session() as session:

        def send(case: Case) -> None:
            response = case.call_and_validate(
                session=session,
                excluded_checks=_excluded_checks(case),
                timeout=REQUEST_TIMEOUT_S,
            )
            run.answers[case.operation.label, response.status_code] += 1

        for case in _coverage_cases(schema):
            send(case)
            run.coverage += 1

        strategy = st.one_of(
            schema.as_strategy(GenerationMode.POSITIVE),
            schema.as_strategy(GenerationMode.NEGATIVE),
        )

        @hypothesis.seed(seed)
        @hypothesis.settings(
            max_examples=cases,
            deadline=None,
            database=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
        )
        @hypothesis.given(case=strategy)
        def generated(case: Case) -> None:
            send(case)
            run.generated += 1

        generated()
    return run


@dataclass(frozen=True)
class FuzzTokens:
    """Access tokens of a throwaway admin made for one run: `main` for every route but
    logout, which gets a session of its own (`logout`) since it revokes the token it is
    sent with."""

    user_name: str
    main: str
    logout: str

    def provider(self) -> type[BearerAuth]:
        """An auth provider class (schemathesis makes the instance) sending these tokens."""
        tokens = self

        class Bearer(BearerAuth):
            def get(self, case: Case, context: schemathesis.AuthContext) -> str:
                return tokens.logout if case.path == LOGOUT_PATH else tokens.main

        return Bearer


class BearerAuth:
    """Sets the bearer token get() answers, on every case but those whose generation
    left the Authorization header out or broke it on purpose (schemathesis skips those)."""

    def get(self, case: Case, context: schemathesis.AuthContext) -> str | None:
        return None

    def set(self, case: Case, data: str, context: schemathesis.AuthContext) -> None:
        headers = CaseInsensitiveDict(case.headers or {})
        headers["Authorization"] = f"Bearer {data}"
        case.headers = headers


LOGOUT_PATH = "/admin/v1/logout"


def throwaway_admin(http: httpx.Client, bootstrap_login: dict[str, str]) -> FuzzTokens:
    """Create an admin with a random name and password, with the bootstrap admin's token
    used for that one call, and log it in twice."""
    bootstrap = _login(http, bootstrap_login)
    user_name = f"fuzz-{secrets.token_hex(6)}"
    password = secrets.token_urlsafe(18)
    created = http.post(
        "/admin/v1/users",
        json={"userName": user_name, "password": password, "role": "admin"},
        headers={"Authorization": f"Bearer {bootstrap}"},
    )
    assert created.status_code == 200, created.text
    credentials = {"userName": user_name, "password": password}
    return FuzzTokens(user_name, _login(http, credentials), _login(http, credentials))


def _login(http: httpx.Client, credentials: dict[str, str]) -> str:
    reply = http.post("/admin/v1/login", json=credentials)
    assert reply.status_code == 200, reply.text
    token: str = reply.json()["token"]
    return token
