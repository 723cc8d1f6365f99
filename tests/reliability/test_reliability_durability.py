"""Durability: users created through admin-srv and refresh tokens issued before a crash
outlive a SIGKILL of every user-srv and token-srv process, one pod at a time."""

from __future__ import annotations

import secrets
import time

import pytest

from devcluster.runner.testing import ready_pods

from ..cluster_system import LOGIN, NAMESPACE, System
from .chaos import Chaos, wait_steady
from .conftest import TIMEOUT_S, USERS
from .report import Report

pytestmark = pytest.mark.timeout(TIMEOUT_S)


def test_users_and_refresh_tokens_outlive_crashes(
    system: System, chaos: Chaos, report: Report
) -> None:
    wait_steady(system)
    admin = {"Authorization": f"Bearer {system.token()}"}
    run = secrets.token_hex(4)
    users = {f"durable-{run}-{n}": f"password-{run}-{n}" for n in range(USERS)}
    for name, password in users.items():
        created = system.http.post(
            "/admin/v1/users", headers=admin, json={"userName": name, "password": password}
        )
        assert created.status_code == 200, created.text
    refresh_tokens = {}
    for name, password in users.items():
        login = system.http.post("/admin/v1/login", json={"userName": name, "password": password})
        assert login.status_code == 200, login.text
        refresh_tokens[name] = login.json()["refreshToken"]

    crashes = []
    for service in ("user-srv", "token-srv"):
        for pod in ready_pods(system.node.core, NAMESPACE, f"app={service}"):
            event = chaos.crash_pod(service, pod.metadata.name)
            crashes.append(f"{event.pod}: back in {event.recovered - event.start:.1f}s")
    wait_steady(system)

    started = time.monotonic()
    logins_ok = refreshes_ok = 0
    for name, password in users.items():
        login = system.http.post("/admin/v1/login", json={"userName": name, "password": password})
        assert login.status_code == 200, f"{name} after the crashes: {login.text}"
        assert login.json()["userName"] == name
        logins_ok += 1
        refreshed = system.http.post(
            "/admin/v1/refresh", json={"refreshToken": refresh_tokens[name]}
        )
        assert refreshed.status_code == 200, f"{name}'s refresh token: {refreshed.text}"
        assert refreshed.json()["refreshToken"] != refresh_tokens[name]
        refreshes_ok += 1
    assert system.http.post("/admin/v1/login", json=LOGIN).status_code == 200

    report.add(
        "durability",
        {
            "users_created": len(users),
            "crashes": crashes,
            "logins_ok_after": logins_ok,
            "refreshes_ok_after": refreshes_ok,
            "checked_in_s": round(time.monotonic() - started, 1),
        },
    )
