"""Where tests find the command-line tools `make` provides. `make` may install a tool
off PATH (uv into .tools/), so a test never runs one by its bare name."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys

KUBECTL_INSTALL_HINT = (
    "`make test` installs it as root with apt-get; elsewhere: apt-get install kubernetes-client"
)


def uv_command() -> list[str]:
    """How to run uv: the path in UV (the Makefile exports the uv it resolved, and
    `uv run` sets it), else uv on PATH, else the uv module of this interpreter."""
    resolved = os.environ.get("UV") or shutil.which("uv")
    if resolved:
        return [resolved]
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    raise LookupError("uv not found: run the tests with `make test`, or set UV to uv's path")


def kubectl_path() -> str | None:
    """kubectl's path, or None where it is not installed (see KUBECTL_INSTALL_HINT)."""
    return shutil.which("kubectl")
