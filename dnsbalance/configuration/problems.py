"""Configuration problems: collected, never raised one at a time, each with file and line."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path


class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"


def shown_path(path: Path | str) -> str:
    """A file name as a message prints it: as it is when printable, else quoted with its escapes visible,
    so a name holding a newline or a terminal escape can neither forge a line nor drive the terminal."""
    text = str(path)
    return text if text.isprintable() else ascii(text)


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        tag = "" if self.severity is Severity.ERROR else "warning: "
        return f"{shown_path(self.path)}:{self.line}: {tag}{self.message}"


class ConfigError(Exception):
    """A configuration with at least one error; `problems` lists all of them, warnings included."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.severity is Severity.ERROR]
        super().__init__(f"{len(errors)} configuration error(s):\n" + "\n".join(str(p) for p in problems))
