"""docs/configuration.md's field reference is generated from the config models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GENERATOR = Path(__file__).resolve().parents[1] / "scripts" / "config_docs.py"
COMMAND = "uv run --locked --all-packages python scripts/config_docs.py"


def generate(*options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *options], capture_output=True, text=True, check=False
    )


def test_the_reference_matches_the_models_and_every_field_has_a_reload_policy() -> None:
    result = generate("--check")
    assert result.returncode == 0, result.stderr


def test_a_stale_reference_fails_naming_the_command(repo_root: Path, tmp_path: Path) -> None:
    current = (repo_root / "docs" / "configuration.md").read_text(encoding="utf-8")
    row = "| `data.retry_after` | duration | `5s` | live |"
    assert row in current
    doc = tmp_path / "configuration.md"
    doc.write_text(current.replace(row, "| `data.retry_after` | duration | `5s` | restart |"))

    stale = generate("--check", "--doc", str(doc))
    assert stale.returncode == 1
    assert f"is stale: run `{COMMAND}`" in stale.stderr

    assert generate("--doc", str(doc)).returncode == 0
    assert doc.read_text(encoding="utf-8") == current
