"""A pytest plugin: where real parts are required (CI), a test marked as needing one
(`postgres`, `kubectl`) fails instead of skipping, so a missing PostgreSQL or kubectl
cannot silently drop those tests out of the run. The root conftest.py loads it for
every test folder."""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping

import pytest

REAL_PART_MARKERS = ("postgres", "kubectl")


def real_parts_required(environ: Mapping[str, str] = os.environ) -> bool:
    """CI=true (set by CI systems) or MICRO_REQUIRE_REAL=1 (set by .ci/run)."""
    return environ.get("MICRO_REQUIRE_REAL") == "1" or environ.get("CI", "").lower() in {
        "true",
        "1",
    }


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    needed = [name for name in REAL_PART_MARKERS if item.get_closest_marker(name)]
    # An expected failure (xfail) is reported as skipped too: it is not a dropped part.
    if report.skipped and needed and not hasattr(report, "wasxfail") and real_parts_required():
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        report.outcome = "failed"
        report.longrepr = (
            f"a test that needs {' and '.join(needed)} was skipped where real parts are "
            f"required (CI=true or MICRO_REQUIRE_REAL=1): {reason}"
        )
    return report
