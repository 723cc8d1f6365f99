"""Install the real parts the tests need when they are missing (`make test-tools`, run by
`make test`): PostgreSQL's server binaries and kubectl, from Debian's packages.

Each is looked up as the tests look it up (micro.testing), so nothing runs when both
are found. As root with apt-get the missing packages are installed; elsewhere the
command that would install them is printed, and their tests skip (fail under CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable

from micro.testing.postgres import postgres_bindir
from micro.testing.tools import kubectl_path

# Debian package -> whether what the tests need from it is found.
PACKAGES: dict[str, Callable[[], bool]] = {
    "postgresql": lambda: postgres_bindir() is not None,
    "kubernetes-client": lambda: kubectl_path() is not None,
}
APT_TIMEOUT_S = 900


def missing_packages() -> list[str]:
    return [package for package, found in PACKAGES.items() if not found()]


def apt_get(apt: str, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(  # noqa: S603 - the system's apt-get, our own arguments
        [apt, "-qq", *args],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
        timeout=APT_TIMEOUT_S,
    )


def main() -> int:
    missing = missing_packages()
    if not missing:
        return 0
    command = f"apt-get update && apt-get install -y {' '.join(missing)}"
    apt = shutil.which("apt-get")
    if os.geteuid() != 0 or apt is None:
        print(
            f"test tools: {', '.join(missing)} not installed and not installable here "
            f"(needs root and apt-get); their tests skip (and fail under CI). "
            f"To install: sudo sh -c '{command}'"
        )
        return 0
    print(f"test tools: installing {', '.join(missing)} ({command})")
    for step in (("update",), ("install", "-y", *missing)):
        done = apt_get(apt, *step)
        if done.returncode != 0:
            # Offline machines still run the other tests; CI fails on the skips instead.
            print(f"test tools: apt-get {step[0]} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return 0
    still = missing_packages()
    if still:
        print(f"test tools: still not found after installing: {', '.join(still)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
