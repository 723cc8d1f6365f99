"""A fresh machine has Python and make only: `make` hands the uv it resolved to what it
runs, installs the tests' real parts when it can, and .ci/run tests without the uv of
the machine it runs on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from micro.testing.postgres import postgres_bindir
from micro.testing.tools import kubectl_path

SYSTEM_PATH = "/usr/bin:/bin"
INSTALL_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install_test_tools.py"


def clean_environment(path: str, home: Path) -> dict[str, str]:
    """No MAKEFLAGS or UV from the make running these tests."""
    return {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8"}


@pytest.mark.parametrize("folder", [".", "admin-srv"])
def test_make_exports_the_uv_it_resolved(repo_root: Path, tmp_path: Path, folder: str) -> None:
    """Recipes (and so the tests) get UV even where uv is not on PATH."""
    extra = tmp_path / "show.mk"
    extra.write_text('show-uv:\n\t@echo "UV=$$UV"\n')
    result = subprocess.run(
        ["make", "--no-print-directory", "-f", "Makefile", "-f", str(extra), "show-uv"],
        cwd=repo_root / folder,
        env=clean_environment(SYSTEM_PATH, tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    expected = shutil.which("uv", path=SYSTEM_PATH) or str(repo_root / ".tools" / "bin" / "uv")
    assert result.stdout.strip() == f"UV={expected}"


def test_ci_run_drops_every_uv_outside_the_checkout(repo_root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "uv").write_text("#!/bin/sh\nexit 1\n")
    (elsewhere / "uv").chmod(0o755)
    record = tmp_path / "make-saw"
    fake = tmp_path / "fake"
    fake.mkdir()
    # A stand-in for make that records what it was given and prints a pytest summary.
    (fake / "make").write_text(
        "#!/bin/sh\n"
        f'printf \'%s\\n%s\\n%s\\n\' "$PATH" "$MICRO_REQUIRE_REAL" "$*" > {record}\n'
        "echo '============ 3 passed in 0.12s ============'\n"
        "exit 3\n"
    )
    (fake / "make").chmod(0o755)
    inside = repo_root / ".tools" / "bin"
    path = f"{fake}:{elsewhere}:{inside}:{SYSTEM_PATH}"
    result = subprocess.run(
        [str(repo_root / ".ci" / "run")],
        env=clean_environment(path, tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    seen_path, required, arguments = record.read_text().splitlines()
    assert seen_path == f"{fake}:{inside}:{SYSTEM_PATH}"
    assert (required, arguments) == ("1", "test")
    lines = result.stdout.splitlines()
    assert lines[0] == f"CI: removed from PATH (they hold a uv outside the checkout): {elsewhere}"
    assert lines[-1] == "CI summary: ============ 3 passed in 0.12s ============"


def test_the_install_step_prints_the_command_where_it_cannot_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No apt-get and no kubectl on this PATH: it says how to install, and goes on."""
    result = subprocess.run(
        [sys.executable, str(INSTALL_SCRIPT)],
        env=clean_environment(str(tmp_path), tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "kubernetes-client" in result.stdout
    assert "apt-get update && apt-get install -y" in result.stdout
    # PostgreSQL is found off PATH where Debian installed it.
    monkeypatch.setenv("PATH", str(tmp_path))
    assert ("postgresql" in result.stdout) is (postgres_bindir() is None)


def test_the_install_step_does_nothing_when_all_is_there(tmp_path: Path) -> None:
    if postgres_bindir() is None or kubectl_path() is None:
        pytest.skip("PostgreSQL or kubectl is missing here: the step would install it")
    result = subprocess.run(
        [sys.executable, str(INSTALL_SCRIPT)], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
