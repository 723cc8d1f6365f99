"""What every benchmark shares: its percentiles and its figures in bench/results.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"


def percentile(samples: list[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest sample with `fraction` of them at or below."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def merge_results(figures: dict[str, float]) -> None:
    """Read-modify-write: other benchmarks keep their keys in the same file."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.update(figures)
    temporary = RESULTS.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, RESULTS)
