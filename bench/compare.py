"""Which figures of bench/results.json got worse than the committed ones.

`make bench` runs this last: it reads the file as committed (`git show HEAD:...`) and as
the run left it, and prints every figure that moved the wrong way by more than
TOLERANCE, or says none did. Which way is worse follows from the figure's name: a time,
a size or a share of overhead should go down, a rate or a ratio up. Figures whose name
says neither, and the bare-stack baselines (what a figure is compared with, not a figure
of the project), are not judged. It never fails the run: a benchmark on a shared machine
is noisy, and the reader decides.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"
# A figure moved by less than this share of its committed value is noise.
TOLERANCE = 0.10

# Names whose suffix alone would mislead: guesses an attacker gets are better fewer, and
# the rate a flood was offered at is the bench's input, not a result.
LOWER_IS_BETTER_NAMES = ("guesses_per_hour", "bound_first_hour")
NOT_JUDGED_NAMES = ("baseline", "guesses_per_second")
LOWER_IS_BETTER_SUFFIXES = (
    "_ms",
    "_us",
    "_s",
    "_mib",
    "_mib_max",
    "_mib_grpc_only_max",
    "_s_max",
    "_bytes",
    "_per_instance",
    "_max_over_mean",
)
HIGHER_IS_BETTER_SUFFIXES = ("_ratio", "_per_second", "_per_s")


@dataclass(frozen=True)
class Change:
    name: str
    committed: float
    now: float

    @property
    def share(self) -> float:
        """How far it moved, as a share of the committed value."""
        return abs(self.now - self.committed) / abs(self.committed) if self.committed else 0.0

    def line(self) -> str:
        return f"{self.name}: {self.committed:g} -> {self.now:g} ({self.share:+.0%} worse)"


def lower_is_better(name: str) -> bool | None:
    """True when a lower value is better, False when higher is, None: not judged."""
    if any(part in name for part in NOT_JUDGED_NAMES):
        return None
    if any(part in name for part in LOWER_IS_BETTER_NAMES):
        return True
    if name.endswith(HIGHER_IS_BETTER_SUFFIXES):
        return False
    if name.endswith(LOWER_IS_BETTER_SUFFIXES):
        return True
    return None


def worse(
    committed: dict[str, float], now: dict[str, float], tolerance: float = TOLERANCE
) -> list[Change]:
    """The figures present in both that moved the wrong way by more than `tolerance`."""
    found = []
    for name in sorted(committed.keys() & now.keys()):
        lower = lower_is_better(name)
        before, after = committed[name], now[name]
        numbers = isinstance(before, int | float) and isinstance(after, int | float)
        if lower is None or not numbers:
            continue
        change = Change(name, float(before), float(after))
        moved_wrong = after > before if lower else after < before
        if moved_wrong and change.share > tolerance:
            found.append(change)
    return found


def committed_results(path: Path = RESULTS) -> dict[str, float]:
    """The file as the last commit has it ({} when it has none)."""
    relative = path.relative_to(path.parents[1]).as_posix()
    shown = subprocess.run(
        ["git", "show", f"HEAD:{relative}"],
        cwd=path.parents[1],
        capture_output=True,
        text=True,
        check=False,
    )
    return json.loads(shown.stdout) if shown.returncode == 0 else {}


def main() -> int:
    now = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    changes = worse(committed_results(), now)
    if not changes:
        print(f"no figure got worse than committed by more than {TOLERANCE:.0%}")
        return 0
    print(f"figures worse than committed by more than {TOLERANCE:.0%}:")
    for change in changes:
        print(f"  {change.line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
