"""The short version of tests/reliability's resilience scenarios, on the session's
running system: a device-srv replica failing every call (its ConfigMap's `fault`
section naming that pod only) costs no lookup, through either gateway."""

from __future__ import annotations

import pytest

from .cluster_system import System
from .reliability import drills

pytestmark = pytest.mark.e2e

LOOKUPS = 40


def test_a_replica_failing_every_call_costs_no_lookup(system: System) -> None:
    (name, ip), *_ = sorted(drills.pod_ips(system, "device-srv").items())
    token = system.token()
    refused_before = refused(ip)
    try:
        drills.set_fault(system, "device-srv", {"unavailable_share": 1.0, "pods": [name]})
        answers = [
            system.data.get(f"/data/device{1 + k % 2}").status_code for k in range(LOOKUPS)
        ] + [
            system.http.get(
                "/admin/v1/devices/device2", headers={"Authorization": f"Bearer {token}"}
            ).status_code
            for _ in range(LOOKUPS)
        ]
    finally:
        drills.set_fault(system, "device-srv", None)
    assert answers == [200] * (2 * LOOKUPS)
    assert refused(ip) > refused_before  # the drill's replica was called, and failed


def refused(ip: str) -> float:
    """Calls the device-srv pod at `ip` answered UNAVAILABLE."""
    return drills.metric(
        ip, "micro_server_errors_total", lambda labels: labels.get("code") == "UNAVAILABLE"
    )
