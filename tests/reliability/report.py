"""The figures of a reliability run: counted, printed, and written to bench/reliability.json."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..cluster_load import NON_IDEMPOTENT, OPERATIONS, Request
from ..cluster_system import REPO_ROOT
from .chaos import ChaosEvent

RESULTS = REPO_ROOT / "bench" / "reliability.json"
# A request belongs to a chaos action from the action until this long after recovery
# (endpoints and the callers' pools settle shortly after the pods are ready).
SETTLE_S = 2.0


def percentile(values: list[float], fraction: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def action_of(request: Request, events: list[ChaosEvent]) -> ChaosEvent | None:
    for event in events:
        if event.start <= request.end and request.start <= event.recovered + SETTLE_S:
            return event
    return None


# A caller sees that a killed process's connections are closed only when its transport
# next reads them. On the loaded two-core machine a login that started after the SIGKILL
# (the process was gone within a millisecond) still had its GenerateToken sent on such a
# connection and answered "Connection reset by peer".
CONNECTION_NOTICE_S = 0.5
# How a call sent on a connection that the peer had closed fails.
UNAVAILABLE = ("grpc UNAVAILABLE:", "http 503:")


def allowed_crash_failure(request: Request, event: ChaosEvent | None) -> bool:
    """A failure the system may give: a non-idempotent call (never retried) that failed
    as UNAVAILABLE because it was in flight to a token-srv process, the one serving its
    non-idempotent step, while that process was killed or before its callers could see
    it gone (CONNECTION_NOTICE_S)."""
    return bool(
        event is not None
        and event.kind == "crash"
        and event.service == "token-srv"
        and request.operation in NON_IDEMPOTENT
        and (request.error or "").startswith(UNAVAILABLE)
        and request.start <= event.gone + CONNECTION_NOTICE_S
        and event.start <= request.end
    )


@dataclass
class SoakFigures:
    requests: dict[str, int]
    failures: dict[str, dict[str, int]]  # operation -> error kind -> count
    by_action: dict[str, dict[str, int]]  # chaos kind (or "calm") -> counts
    latency_ms: dict[str, dict[str, float]]
    allowed: list[Request]
    unexpected: list[Request]

    @classmethod
    def of(cls, requests: list[Request], events: list[ChaosEvent]) -> SoakFigures:
        failures: dict[str, Counter[str]] = defaultdict(Counter)
        by_action: dict[str, Counter[str]] = defaultdict(Counter)
        allowed, unexpected = [], []
        for request in requests:
            event = action_of(request, events)
            bucket = by_action[event.kind if event else "calm"]
            bucket["requests"] += 1
            if request.ok:
                continue
            assert request.error is not None
            failures[request.operation][request.error.split(":", 1)[0]] += 1
            bucket["failures"] += 1
            if allowed_crash_failure(request, event):
                allowed.append(request)
                bucket["allowed_failures"] += 1
            else:
                unexpected.append(request)
        latency = {}
        for operation in OPERATIONS:
            times = [(r.end - r.start) * 1000 for r in requests if r.operation == operation]
            latency[operation] = {
                "p50": round(percentile(times, 0.50), 1),
                "p99": round(percentile(times, 0.99), 1),
            }
        return cls(
            requests=dict(Counter(r.operation for r in requests)),
            failures={op: dict(kinds) for op, kinds in failures.items()},
            by_action={kind: dict(counts) for kind, counts in by_action.items()},
            latency_ms=latency,
            allowed=allowed,
            unexpected=unexpected,
        )


@dataclass
class Report:
    seed: int
    sections: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, section: dict[str, Any]) -> None:
        """Keep a section, overwrite bench/reliability.json with all so far, print it."""
        self.sections[name] = section
        RESULTS.write_text(json.dumps({"seed": self.seed, **self.sections}, indent=2) + "\n")
        print(f"\n== reliability: {name}\n{json.dumps(section, indent=2)}")
