"""The problem collector the configuration readers share, and its typed value readers.

Each reader reports what is wrong with its file and line and returns a usable value anyway (the model's default
when the file's value is missing or wrong), so one pass finds every problem instead of stopping at the first.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, NamedTuple, Protocol, TypeVar

from dnsbalance.configuration.names import parse_address
from dnsbalance.configuration.problems import Problem, Severity
from dnsbalance.configuration.reading import Refused, read_file
from dnsbalance.configuration.suggest import did_you_mean
from dnsbalance.configuration.yamlpos import PosDict, PosList, YamlSyntaxError, parse_yaml

D = TypeVar("D")  # a reader's fallback: the model's default, or None where the caller decides


class Addresses(NamedTuple):
    """A host's addresses by family, each in the file's order without repeats: A and AAAA answers use them apart."""

    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]

    def all(self) -> tuple[str, ...]:
        return self.ipv4 + self.ipv6


def kind(value: Any) -> str:
    """How a message names what the file holds instead of what was expected."""
    if value is None:
        return "nothing"
    return {PosDict: "a mapping", PosList: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


NAME_LIKE = re.compile(r"[A-Za-z0-9_@][A-Za-z0-9_.-]*\Z")  # what every configuration key looks like
SHOWN = 60  # characters of a file's value a message quotes at most


def brief(value: Any) -> str:
    """A value as a message shows it: scalars quoted (escapes visible) and cut short, collections by kind
    only. Never the whole value: an alias can make a small file's list a billion items long."""
    if isinstance(value, (PosDict, PosList, dict, list, tuple, set)):
        return kind(value)
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "a number too large"
    text = repr(value) if not isinstance(value, str) else repr(value[: SHOWN + 1])
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def url_ok(text: str) -> bool:
    return text.startswith(("http://", "https://", "rsync://")) and len(text) > len("http://")


class FileSource(Protocol):
    """Where the readers take a file's bytes from: a folder read once (reading.ReadFiles), or the disk."""

    def read(self, path: Path) -> bytes: ...


class DirectReads:
    def read(self, path: Path) -> bytes:
        return read_file(path)


class Checker:
    """Collects problems; each check returns a usable value, the fallback it was given, or None."""

    def __init__(self, files: FileSource | None = None) -> None:
        self.problems: list[Problem] = []
        self.files: FileSource = files or DirectReads()

    def error(self, path: Path, line: int, message: str) -> None:
        self.problems.append(Problem(path, line, message))

    def warning(self, path: Path, line: int, message: str) -> None:
        self.problems.append(Problem(path, line, message, Severity.WARNING))

    def has_errors(self) -> bool:
        return any(p.severity is Severity.ERROR for p in self.problems)

    def read(self, path: Path, required: bool) -> Any:
        """The file's YAML; None after reporting why there is none."""
        try:
            raw = parse_yaml(self.files.read(path))
        except FileNotFoundError:
            if required:
                self.error(path, 1, "file is missing")
            return None
        except Refused as exc:
            self.error(path, 1, exc.message)
            return None
        except YamlSyntaxError as exc:
            self.error(path, exc.line, exc.detail)
            return None
        except OSError as exc:
            self.error(path, 1, f"cannot read: {exc.strerror or exc}")
            return None
        if isinstance(raw, PosDict) and raw and not any(isinstance(k, str) and NAME_LIKE.match(k) for k in raw):
            # e.g. a symlink to /etc/shadow: its lines parse as keys, which messages must not echo
            self.error(path, 1, "not a dnsbalance configuration file (no key looks like a name); "
                                "its content is not shown")
            return None
        return raw

    def mapping(self, value: Any, path: Path, line: int, what: str) -> PosDict | None:
        if isinstance(value, PosDict):
            for key, dup_line in value.duplicates:
                self.error(path, dup_line, f"{what}: duplicate key {brief(key)}")
            return value
        self.error(path, line, f"{what} must be a mapping, got {kind(value)}")
        return None

    def section(self, top: PosDict, key: str, path: Path) -> PosDict | None:
        """An optional sub-mapping such as `health:`; None when absent or not a mapping."""
        return self.mapping(top[key], path, top.line_of(key), key) if key in top else None

    def known_keys(self, mapping: PosDict, allowed: tuple[str, ...], path: Path, what: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.error(path, mapping.line_of(key), f"{what}: unknown key {brief(key)}"
                           f"{did_you_mean(str(key), allowed)} (expected one of: {', '.join(allowed)})")

    def integer(self, mapping: PosDict, key: str, path: Path, what: str, low: int, high: int,
                default: D) -> int | D:
        if key not in mapping:
            return default
        value = mapping[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.error(path, mapping.line_of(key),
                       f"{what}: {key} must be an integer {low}..{high}, got {brief(value)}")
            return default
        return value

    def number(self, mapping: PosDict, key: str, path: Path, what: str, low: float, high: float,
               default: D) -> float | D:
        if key not in mapping:
            return default
        value = mapping[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            self.error(path, mapping.line_of(key),
                       f"{what}: {key} must be a number {low:g}..{high:g}, got {brief(value)}")
            return default
        return float(value)

    def string(self, mapping: PosDict, key: str, path: Path, what: str, default: D,
               valid: Callable[[str], bool] = lambda s: bool(s), expect: str = "a non-empty string") -> str | D:
        if key not in mapping:
            return default
        value = mapping[key]
        if not isinstance(value, str) or not valid(value):
            self.error(path, mapping.line_of(key), f"{what}: {key} must be {expect}, got {brief(value)}")
            return default
        return value

    def boolean(self, mapping: PosDict, key: str, path: Path, what: str, default: D) -> bool | D:
        if key not in mapping:
            return default
        value = mapping[key]
        if not isinstance(value, bool):
            self.error(path, mapping.line_of(key), f"{what}: {key} must be true or false, got {brief(value)}")
            return default
        return value

    def addresses(self, value: Any, path: Path, line: int, what: str) -> Addresses:
        if not isinstance(value, PosList):
            value = PosList([value]) if isinstance(value, str) else None
            if value is None:
                self.error(path, line, f"{what}: addresses must be a list of IP addresses")
                return Addresses((), ())
            value.line, value.item_lines = line, [line]
        ipv4: list[str] = []
        ipv6: list[str] = []
        for index, item in enumerate(value):
            address = parse_address(item) if isinstance(item, str) else None
            if address is None:
                self.error(path, value.line_of(index), f"{what}: {brief(item)} is not an IPv4 or IPv6 address")
            elif address.version == 4:
                ipv4.append(str(address))
            else:
                ipv6.append(str(address))
        return Addresses(tuple(dict.fromkeys(ipv4)), tuple(dict.fromkeys(ipv6)))
