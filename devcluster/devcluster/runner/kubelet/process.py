"""Starting and stopping a container's process group, with its output in a log file."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import pathlib
import signal
import sys
from collections.abc import Mapping

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: the child gets SIGKILL should the runner itself be killed."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def rotate_log(log_path: pathlib.Path) -> None:
    """Keep the previous instance's output for `kubectl logs --previous`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if log_path.exists():
        log_path.replace(log_path.with_suffix(".previous.log"))


async def start(
    argv: list[str], env: Mapping[str, str], cwd: pathlib.Path, log_path: pathlib.Path
) -> asyncio.subprocess.Process:
    """The process leads its own session, so that signals reach everything it spawned."""
    rotate_log(log_path)
    with log_path.open("ab") as log:
        return await asyncio.create_subprocess_exec(
            *argv,
            env=dict(env),
            cwd=str(cwd),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


def signal_group(process: asyncio.subprocess.Process, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


async def stop(process: asyncio.subprocess.Process, grace_s: float) -> int:
    """SIGTERM, wait up to the grace period, then SIGKILL; answers the exit code."""
    if process.returncode is None:
        signal_group(process, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), max(grace_s, 0.0))
        except TimeoutError:
            signal_group(process, signal.SIGKILL)
    code = await process.wait()
    signal_group(process, signal.SIGKILL)  # anything the process left in its group
    return code


def exit_code(returncode: int) -> int:
    """A container's exit code: 128 + signal for a signalled process."""
    return 128 - returncode if returncode < 0 else returncode
