"""libyaml's syntax errors in an operator's words: which line, what the indentation or punctuation there does,
what to write instead. Pure: the text and the parser's error in, (line, words) out; None for an error whose
wording is left as libyaml gives it."""
from __future__ import annotations

import re

import yaml


def _rows(text: str) -> list[str]:
    return text.split("\n")


def _indent(row: str) -> int:
    return len(row) - len(row.lstrip(" "))


def _shown(row: str) -> str:
    """A line as a message quotes it: stripped, cut short."""
    row = row.strip()
    return repr(row if len(row) <= 40 else row[:37] + "...")


def _spaces(count: int) -> str:
    return f"{count} space{'' if count == 1 else 's'}"


def _previous(rows: list[str], line: int) -> int | None:
    """The nearest line above `line` (0-based) with content, not a comment."""
    for index in range(min(line, len(rows)) - 1, -1, -1):
        stripped = rows[index].strip()
        if stripped and not stripped.startswith("#"):
            return index
    return None


def _key_and_value(row: str) -> tuple[str, str] | None:
    """'  tokyo: 20  # x' -> ('tokyo', '20'); None when the line is no `key:`."""
    found = re.match(r"\s*(?:-\s+)?([^:#]+?):(?:\s+(.*?))?\s*(?:#.*)?$", row)
    return (found.group(1), found.group(2) or "") if found else None


def plain_words(text: str, exc: yaml.MarkedYAMLError) -> tuple[int, str] | None:
    mark, context = exc.problem_mark, exc.context_mark
    if mark is None:
        return None
    rows = _rows(text)
    line = mark.line
    row = rows[line] if line < len(rows) else ""
    problem, around = exc.problem or "", exc.context or ""
    if "mapping values are not allowed" in problem:
        before = row[:mark.column]
        if re.search(r"\S:\s", before) or re.match(r"\s*[^\s:]+:\s*\S", before):
            return line + 1, (f"a value holds ': ' (line {line + 1}, column {mark.column + 1}): put the value in "
                              "quotes or remove the second ':'")
        above = _previous(rows, line)
        if above is not None:
            parent = _key_and_value(rows[above])
            if parent is None:
                return above + 1, (f"line {above + 1} {_shown(rows[above])} has no ':' after its key, so line "
                                   f"{line + 1} cannot be indented under it: write {_shown(rows[above].strip() + ':')}")
            if parent[1] and _indent(row) > _indent(rows[above]):
                return line + 1, (f"line {line + 1} {_shown(row)} is indented more than line {above + 1} "
                                  f"{_shown(rows[above])}, which already has a value: indent it like line "
                                  f"{above + 1} ({_spaces(_indent(rows[above]))}) to make it a sibling")
        return line + 1, f"line {line + 1} {_shown(row)}: a 'key: value' where none can start (check the indentation " \
                         "of this line and the one above)"
    if "expected key" in problem and "block mapping" in around and context is not None:
        if row.lstrip().startswith("-"):
            return line + 1, (f"line {line + 1} {_shown(row)} is a list item inside a mapping (keys from line "
                              f"{context.line + 1}): a list goes under a key, 'key:' then its items indented")
        above = _previous(rows, line)
        others = f"line {context.line + 1} has {_spaces(context.column)}"
        if above is not None and above != context.line:
            others = f"line {above + 1} has {_spaces(_indent(rows[above]))}, {others}"
        return line + 1, (f"line {line + 1} {_shown(row)} is indented {_spaces(_indent(row))}, which lines up with "
                          f"no key above it ({others}): the keys of one mapping line up in the same column")
    if "expected '-' indicator" in problem and context is not None:
        return line + 1, (f"line {line + 1} {_shown(row)} is not a list item ('- ...'), but the list that started on "
                          f"line {context.line + 1} goes on: begin it with '- ', or indent it less to end the list")
    if "flow sequence" in around or "flow mapping" in around:
        opened = "[" if "sequence" in around else "{"
        start = context.line + 1 if context is not None else line + 1
        return start, (f"the '{opened}' on line {start} is never closed (line {line + 1} is reached without its "
                       f"'{']' if opened == '[' else '}'}'), or a ',' is missing between two of its items")
    if "quoted scalar" in around and "end of stream" in problem:
        start = context.line + 1 if context is not None else line + 1
        return start, f"the quote opened on line {start} is never closed"
    if "undefined alias" in problem:
        name = re.match(r"\*?([^\s,\]}]+)", row[mark.column:].lstrip("*"))
        alias = name.group(1) if name else "?"
        return line + 1, f"'*{alias}' refers to an anchor '&{alias}' that is not defined above it"
    return None
