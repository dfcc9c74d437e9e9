"""The configuration in service, copied into the state folder whenever another one is adopted, so that
`dnsbalance plan` can compare the files on disk with what the server serves, even after they were edited.

One JSON file, written atomically: the folder it was read from, the digest the table seed is made of (the
one `serving.json` names) and every file's content as it was digested.
"""
from __future__ import annotations

import base64
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from dnsbalance.configuration.load import check_config
from dnsbalance.configuration.model import Config
from dnsbalance.configuration.problems import Severity
from dnsbalance.statefiles import write_atomically

log = logging.getLogger(__name__)

_saved: dict[Path, str] = {}  # state file -> digest last written by this process: a cycle rewrites nothing


@dataclass(frozen=True)
class ServedCopy:
    directory: Path  # the configuration folder it was read from (its relative paths point there)
    digest: str
    files: Mapping[str, bytes]  # relative path -> content


def save(path: Path, directory: Path, digest: str, files: Mapping[str, bytes]) -> None:
    """Write the copy unless this process already wrote this digest there; a failure is logged."""
    if not files or _saved.get(path) == digest:
        return
    entries: dict[str, dict[str, str]] = {}
    for name, data in sorted(files.items()):
        try:
            entries[name] = {"text": data.decode("utf-8")}
        except UnicodeDecodeError:  # a stray file the configuration does not read: kept exactly anyway
            entries[name] = {"base64": base64.b64encode(data).decode("ascii")}
    text = json.dumps({"directory": str(directory.resolve()), "digest": digest, "files": entries}, indent=1)
    _saved[path] = digest  # a failure too: said once per configuration, not at every cycle
    try:
        write_atomically(path, text + "\n")
    except OSError as exc:
        log.warning("cannot write %s (`dnsbalance plan` reads it): %s", path, exc)


def read(path: Path) -> ServedCopy:
    """The copy, or ValueError (OSError when it cannot be read) saying why not."""
    raw: Any = json.loads(path.read_text(encoding="utf-8"))
    try:
        files = {}
        for name, entry in raw["files"].items():
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise ValueError(f"file name {name!r} leaves the folder")
            files[name] = entry["text"].encode("utf-8") if "text" in entry else base64.b64decode(entry["base64"])
        return ServedCopy(Path(raw["directory"]), str(raw["digest"]), files)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"{path}: not a copy of a configuration ({exc})") from None


def materialise(copy: ServedCopy, target: Path) -> None:
    """Write the copy's files under `target` (a fresh folder), as they were in the configuration folder."""
    for name, data in copy.files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def load_copy(path: Path) -> tuple[Config, ServedCopy]:
    """The configuration in service, read back from its copy (relative paths pointing into the folder it
    came from); ValueError or OSError saying why it cannot be."""
    copy = read(path)
    with tempfile.TemporaryDirectory(prefix="dnsbalance-served-") as scratch:
        materialise(copy, Path(scratch))
        config, problems = check_config(Path(scratch), paths_from=copy.directory)
    if config is None:
        errors = "; ".join(p.message for p in problems if p.severity is Severity.ERROR)
        raise ValueError(f"{path}: the copy of the configuration in service does not load: {errors}")
    return config, copy
