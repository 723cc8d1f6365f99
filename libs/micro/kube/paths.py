"""Paths as a container sees them, wherever the process really runs."""

from __future__ import annotations

import os
import pathlib

ROOT_VARIABLE = "DEVCLUSTER_ROOT"


def container_path(path: str) -> pathlib.Path:
    """The file the container knows as `path` (an absolute path from the manifest).

    A devcluster pod has no mount namespace: its "/" is $DEVCLUSTER_ROOT, so the path is
    found under that folder; in a real container (variable unset) it is the path itself.
    """
    root = os.environ.get(ROOT_VARIABLE)
    if not root:
        return pathlib.Path(path)
    return pathlib.Path(root) / path.lstrip("/")
