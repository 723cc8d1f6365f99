"""Drain without a lost keep-alive request: rounds of a closed loop on 4 kept-alive
connections through data-srv's NodePort, each across two rolling updates of data-srv
and the deletion of one of its pods; not one request may go unanswered or fail."""

from __future__ import annotations

import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any

import pytest

from devcluster.runner.testing import ready_pods, wait_for

from ..cluster_system import NAMESPACE, REPO_ROOT, System, replicas_ready, rolled_out
from . import generator
from .conftest import setting
from .report import Report

ROUNDS = int(setting("RELIABILITY_DRAIN_ROUNDS", 10))
# Each round's load outlasts its disruptions (checked): about 55 s under this load.
LOAD_S = setting("RELIABILITY_DRAIN_LOAD_S", 70)
RECOVERY_TIMEOUT_S = 60.0

pytestmark = pytest.mark.timeout(120 + ROUNDS * (LOAD_S + 30))


def disrupt(system: System, round_number: int) -> None:
    """Two rolling updates of data-srv, then one of its pods deleted, each waited for."""
    for rollout in (1, 2):
        before = {p.metadata.name for p in ready_pods(system.node.core, NAMESPACE, "app=data-srv")}
        annotations = {"reliability/drain": f"{round_number}.{rollout}"}
        patch = {"spec": {"template": {"metadata": {"annotations": annotations}}}}
        system.node.apps.patch_namespaced_deployment("data-srv", NAMESPACE, patch)
        wait_for(
            "data-srv rolled out",
            partial(rolled_out, system, "data-srv", before),
            RECOVERY_TIMEOUT_S,
            0.2,
        )
    victim = ready_pods(system.node.core, NAMESPACE, "app=data-srv")[0].metadata.name
    system.node.core.delete_namespaced_pod(victim, NAMESPACE)
    wait_for(
        f"data-srv to replace {victim}",
        partial(replicas_ready, system, "data-srv", {victim}),
        RECOVERY_TIMEOUT_S,
        0.2,
    )


def test_keep_alive_clients_lose_nothing_across_rollouts(
    system: System, report: Report, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(REPO_ROOT))  # the spawned process imports `generator`
    rounds: list[dict[str, Any]] = []
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(time.sleep, 0).result()  # the process start is no part of a round
        for number in range(ROUNDS):
            started = time.monotonic()
            load = pool.submit(generator.keep_alive, [system.data_url], LOAD_S)
            disrupt(system, number)
            disrupted_s = time.monotonic() - started
            offered = load.result()
            rounds.append(
                {
                    "sent": offered.sent,
                    "statuses": {str(k): v for k, v in sorted(offered.statuses.items())},
                    "disruption_s": round(disrupted_s, 1),
                }
            )
    report.add("drain_keep_alive", {"rounds": rounds, "load_s": LOAD_S})
    assert all(r["disruption_s"] < LOAD_S for r in rounds), json.dumps(rounds)
    # Nothing but 200: no 5xx and no NO_ANSWER (a connection closed under a request).
    assert all(set(r["statuses"]) == {"200"} for r in rounds), json.dumps(rounds)
