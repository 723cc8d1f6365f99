"""bench/compare.py: which figures `make bench` reports as worse than the committed ones."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

# bench/ is a folder of scripts, not a package on the tests' path: load the module by file.
_SPEC = importlib.util.spec_from_file_location(
    "bench_compare", Path(__file__).resolve().parents[1] / "bench" / "compare.py"
)
assert _SPEC is not None
assert _SPEC.loader is not None
compare = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = compare  # its dataclass looks its module up there
_SPEC.loader.exec_module(compare)
lower_is_better, worse = compare.lower_is_better, compare.worse


@pytest.mark.parametrize(
    ("name", "lower"),
    [
        ("config_reload_p99_ms", True),
        ("grpc_server_cpu_chain_us", True),
        ("service_rss_mib_max", True),
        ("service_ready_s_max", True),
        ("discovery_bytes_per_instance", True),
        ("subset_load_max_over_mean", True),
        ("login_abuse_guesses_per_hour_1_replica", True),
        ("grpc_server_chain_concurrent_ratio", False),
        ("login_per_second", False),
        ("login_abuse_flood_10x_honest_per_second", False),
        ("devcluster_version_baseline_p50_ms", None),
        ("login_abuse_flood_10x_guesses_per_second", None),
        ("seed", None),
    ],
)
def test_which_way_is_worse_follows_from_the_name(name: str, lower: bool | None) -> None:
    assert lower_is_better(name) is lower


def test_only_moves_the_wrong_way_past_the_tolerance_are_reported() -> None:
    committed = {
        "a_p99_ms": 100.0,  # slower by 20%: worse
        "b_p99_ms": 100.0,  # slower by 5%: noise
        "c_p99_ms": 100.0,  # faster: better
        "d_ratio": 0.9,  # down by a third: worse
        "e_ratio": 0.9,  # up: better
        "f_baseline_p50_ms": 1.0,  # not judged
        "gone_ms": 1.0,  # not in this run
    }
    now = {
        "a_p99_ms": 120.0,
        "b_p99_ms": 105.0,
        "c_p99_ms": 50.0,
        "d_ratio": 0.6,
        "e_ratio": 1.2,
        "f_baseline_p50_ms": 9.0,
        "new_ms": 5.0,
    }
    changes = worse(committed, now, tolerance=0.1)
    assert [c.name for c in changes] == ["a_p99_ms", "d_ratio"]
    assert changes[0].line() == "a_p99_ms: 100 -> 120 (+20% worse)"
