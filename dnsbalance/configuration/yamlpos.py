"""YAML loading that remembers where every key and list item came from.

Validation reports `file:line: message`, so mappings and lists carry the line of each key or item.
Duplicate keys, which PyYAML silently lets the last one win, are reported instead.

A configuration file is small: one too big (reading.py), nested too deep or expanding too far through aliases
(a "billion laughs") is refused with the line where the limit was passed, before any object is made from it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dnsbalance.configuration.reading import MAX_FILE_BYTES, Refused, read_file
from dnsbalance.configuration.yaml_words import plain_words

__all__ = ["MAX_FILE_BYTES", "PosDict", "PosList", "YamlSyntaxError", "load_yaml", "parse_yaml"]

MAX_DEPTH = 64  # nested mappings and lists; the configuration needs 4
DEPTH_PROBLEM = f"nested more than {MAX_DEPTH} levels deep"
MAX_NODES = 1_000_000  # values in a file, every alias counted as the values it stands for


class PosDict(dict):
    """A mapping with the 1-based line of itself (`line`) and of each key (`key_lines`)."""

    def __init__(self, *args: Any, line: int = 1) -> None:
        super().__init__(*args)
        self.line = line
        self.key_lines: dict[Any, int] = {}
        self.duplicates: list[tuple[Any, int]] = []

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class PosList(list):
    """A list with the 1-based line of itself and of each item."""

    def __init__(self, *args: Any, line: int = 1) -> None:
        super().__init__(*args)
        self.line = line
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


# libyaml's parser where PyYAML was built with it (the PyPI wheels are): several times faster on big
# configurations; both report the same marks.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> PosDict:
    loader.flatten_mapping(node)
    result = PosDict(line=node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark) from None
        line = key_node.start_mark.line + 1
        if key in result:
            result.duplicates.append((key, line))
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> PosList:
    result = PosList((loader.construct_object(child, deep=True) for child in node.value),
                     line=node.start_mark.line + 1)
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


class YamlSyntaxError(Exception):
    def __init__(self, line: int, detail: str) -> None:
        super().__init__(detail)
        self.line = line
        self.detail = detail


def _check_shape(text: str) -> None:
    """Depth and expanded size from the parser's events, which libyaml produces without recursion: the
    composer that follows recurses (a list nested 30,000 deep overflows the C stack) and an alias bomb
    costs nothing to load but everything to walk or print."""
    depth = 0
    nodes = 0
    sizes: dict[str, int] = {}  # anchor -> nodes it stands for
    open_anchors: list[tuple[str | None, int]] = []  # per open collection: its anchor, nodes before it
    for event in yaml.parse(text, Loader=_Base):
        kind = type(event)
        if kind is yaml.ScalarEvent:
            nodes += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif kind is yaml.SequenceStartEvent or kind is yaml.MappingStartEvent:
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlSyntaxError(event.start_mark.line + 1, DEPTH_PROBLEM)
            open_anchors.append((event.anchor, nodes))
            nodes += 1
        elif kind is yaml.SequenceEndEvent or kind is yaml.MappingEndEvent:
            depth -= 1
            anchor, before = open_anchors.pop()
            if anchor is not None:
                sizes[anchor] = nodes - before
        elif kind is yaml.AliasEvent:
            nodes += sizes.get(event.anchor, 1)  # an unknown anchor is the composer's error to report
        else:
            continue
        if nodes > MAX_NODES:
            raise YamlSyntaxError(event.start_mark.line + 1,
                                  f"more than {MAX_NODES:,} values (aliases counted expanded); refusing the file")


def load_yaml(path: Path) -> Any:
    """Read and parse one file (see reading.py for what is read); raise YamlSyntaxError with the line of
    the fault, or OSError when the file cannot be read."""
    try:
        data = read_file(path)
    except Refused as exc:
        raise YamlSyntaxError(1, exc.message) from None
    return parse_yaml(data)


def parse_yaml(data: bytes) -> Any:
    """Parse one file's content; raise YamlSyntaxError with the line of the fault."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlSyntaxError(1, f"not UTF-8 text ({exc.reason})") from None
    try:
        _check_shape(text)
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        if exc.problem and "nesting depth" in exc.problem:
            # libyaml (0.2.5 as PyYAML 6.0.4 ships it) stops at its own depth limit before the parser has
            # emitted our 65th level: one limit, one wording, whichever counter trips first
            raise YamlSyntaxError(line, DEPTH_PROBLEM) from None
        if mark is not None and _tab_at(text, mark.line, mark.column):  # libyaml does not name the character
            raise YamlSyntaxError(line, "YAML syntax error: a tab character in the indentation (column "
                                        f"{mark.column + 1}); YAML indents with spaces only") from None
        worded = plain_words(text, exc)
        if worded is not None:
            raise YamlSyntaxError(worded[0], f"YAML syntax error: {worded[1]}") from None
        detail = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise YamlSyntaxError(line, f"YAML syntax error: {detail}") from None
    except yaml.YAMLError as exc:  # the reader's errors quote the offending character: name its position only
        mark = getattr(exc, "position", None)
        raise YamlSyntaxError(1, "YAML syntax error: not YAML text" +
                              (f" (character {mark})" if mark is not None else "")) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise YamlSyntaxError(1, f"YAML value error: {str(exc)[:80]}") from None


def _tab_at(text: str, line: int, column: int) -> bool:
    """The parser stopped at a tab, or on a line indented with one: the usual cause of a YAML error that
    libyaml words as "found character that cannot start any token"."""
    rows = text.split("\n", line + 1)
    row = rows[line] if line < len(rows) else ""
    return row[column:column + 1] == "\t" or "\t" in row[: len(row) - len(row.lstrip())]
