"""The figures of a reliability run: counted, printed, and written to bench/reliability.json."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..cluster_load import OPERATIONS, Request
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


@dataclass
class SoakFigures:
    requests: dict[str, int]
    failures: dict[str, dict[str, int]]  # operation -> error kind -> count
    by_action: dict[str, dict[str, int]]  # chaos kind (or "calm") -> counts
    latency_ms: dict[str, dict[str, float]]
    # Every failed request: none is allowed, a login included (its token-srv step is
    # keyed, so admin-srv retries it like an idempotent call).
    unexpected: list[Request]

    @classmethod
    def of(cls, requests: list[Request], events: list[ChaosEvent]) -> SoakFigures:
        failures: dict[str, Counter[str]] = defaultdict(Counter)
        by_action: dict[str, Counter[str]] = defaultdict(Counter)
        unexpected = []
        for request in requests:
            event = action_of(request, events)
            bucket = by_action[event.kind if event else "calm"]
            bucket["requests"] += 1
            if request.ok:
                continue
            assert request.error is not None
            failures[request.operation][request.error.split(":", 1)[0]] += 1
            bucket["failures"] += 1
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


def phase_figures(requests: list[Request]) -> dict[str, Any]:
    """A scenario phase as the issue compares it with calm: requests sent and failed, the
    caller's p50/p99 of all of them, and of the successes and the failures apart."""
    ok = [(r.end - r.start) * 1000 for r in requests if r.ok]
    failed = [(r.end - r.start) * 1000 for r in requests if not r.ok]
    every = ok + failed
    return {
        "requests": len(requests),
        "failed": len(failed),
        "p50_ms": round(percentile(every, 0.50), 1),
        "p99_ms": round(percentile(every, 0.99), 1),
        "ok_p50_ms": round(percentile(ok, 0.50), 1),
        "failed_p99_ms": round(percentile(failed, 0.99), 1),
        "errors": dict(Counter((r.error or "")[:80] for r in requests if not r.ok).most_common(5)),
    }
