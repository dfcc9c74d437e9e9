"""Files in the state folder, written so that a reader never sees half of one."""
from __future__ import annotations

from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """Write beside the target, then rename over it: a crash mid-write leaves the previous file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
