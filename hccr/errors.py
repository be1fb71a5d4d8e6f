"""User-facing errors and the skip-or-stop policy for bad input.

A :class:`HccrError` is a mistake the user can fix (a missing file, a corrupt record, a bad option):
the CLI prints its message on one line and exits non-zero, with no traceback.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field


class HccrError(Exception):
    """An error caused by the user's input; its message is one actionable line."""


@dataclass
class Problem:
    """One bad sample or file: where it is and what was wrong."""

    path: str
    message: str
    where: str = ""  # e.g. "record at offset 1234"

    def __str__(self) -> str:
        loc = f"{self.path}: {self.where}: " if self.where else f"{self.path}: "
        return loc + self.message


@dataclass
class ErrorPolicy:
    """Decides what happens to bad input: ``skip`` (count it, warn, go on) or ``stop`` (raise).

    Skipped problems are kept (for the store manifest) and printed one line each, up to
    ``max_printed`` lines, so a corrupt dataset does not flood the terminal.
    """

    mode: str = "skip"
    max_printed: int = 20
    quiet: bool = False
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mode not in ("skip", "stop"):
            raise HccrError(f"--on-error must be 'skip' or 'stop', not {self.mode!r}")

    def report(self, problem: Problem) -> None:
        if self.mode == "stop":
            raise HccrError(f"{problem} (stopped: --on-error stop)")
        self.problems.append(problem)
        if not self.quiet and len(self.problems) <= self.max_printed:
            print(f"warning: {problem} (skipped)", file=sys.stderr)
            if len(self.problems) == self.max_printed:
                print("warning: further problems are counted in the manifest, not printed", file=sys.stderr)
