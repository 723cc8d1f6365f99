"""micro.testing.real_parts: where real parts are required, a skipped test marked as
needing PostgreSQL or kubectl is a failure; elsewhere it stays a skip."""

from __future__ import annotations

import pytest

pytest_plugins = ("pytester",)

TESTS = """
import pytest

@pytest.fixture
def database():
    pytest.skip("PostgreSQL server binaries are not installed")

@pytest.mark.postgres
def test_fixture_skips(database):
    pass

@pytest.mark.kubectl
def test_body_skips():
    pytest.skip("kubectl is not installed")

@pytest.mark.postgres
@pytest.mark.skipif(True, reason="no server here")
def test_skipif():
    pass

def test_unmarked_skip():
    pytest.skip("nothing real is missing")

@pytest.mark.postgres
@pytest.mark.xfail(reason="a known defect", strict=True)
def test_expected_failure():
    assert False

@pytest.mark.postgres
def test_runs():
    pass
"""


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for variable in ("CI", "MICRO_REQUIRE_REAL"):
        monkeypatch.delenv(variable, raising=False)
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "markers =\n    postgres: x\n    kubectl: y\n"
    )
    pytester.makepyfile(test_parts=TESTS)
    return pytester


@pytest.mark.parametrize(("variable", "value"), [("CI", "true"), ("MICRO_REQUIRE_REAL", "1")])
def test_a_marked_skip_fails_where_real_parts_are_required(
    run: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    result = run.runpytest("-p", "micro.testing.real_parts", "-rA")
    # A skip in setup (a fixture, skipif) turns into an error, one in the body a failure.
    result.assert_outcomes(errors=2, failed=1, skipped=1, xfailed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*a test that needs postgres was skipped where real parts are required*"
            "PostgreSQL server binaries are not installed*",
            "*a test that needs postgres was skipped*no server here*",
            "*a test that needs kubectl was skipped*kubectl is not installed*",
        ]
    )
    result.stdout.fnmatch_lines(["SKIPPED*nothing real is missing*"])


def test_a_marked_skip_stays_a_skip_elsewhere(run: pytest.Pytester) -> None:
    result = run.runpytest("-p", "micro.testing.real_parts")
    result.assert_outcomes(skipped=4, xfailed=1, passed=1)


def test_the_root_conftest_loads_the_rule(request: pytest.FixtureRequest) -> None:
    """Every test folder of the repository runs with the rule."""
    assert request.config.pluginmanager.has_plugin("micro.testing.real_parts")
