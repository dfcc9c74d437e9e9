"""DNS Balance `addr` files: read the Ruby `$addr_db` literal and write the dnsbalance configuration layout.

    $addr_db = {
      "default" => { "cdn" => [ [[192,0,2,1], 0], [[192,0,2,2], 30], ], },
      "AS"      => { ... },            # continent codes
      "JPN"     => { ... },            # ISO 3166 alpha-3 country codes
    }

Priorities keep their numbers (weight = 10000 - priority in both). Each address becomes a mirror named
after it (m-192-0-2-1), defined once in mirrors.yaml; operators then add its `url:` to have it probed.
"""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

from dnsbalance.configuration.model import DRAINED
from dnsbalance.configuration.names import is_dns_name, normalise_name
from dnsbalance.geo.countries import CONTINENTS, country

TOKEN = re.compile(r"""\s+|\#[^\n]*|(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<int>-?\d+)"""
                   r"""|(?P<op>=>|[\[\]{},=])|(?P<word>\$?[A-Za-z_][A-Za-z0-9_]*)""")


class ImportProblem(Exception):
    def __init__(self, line: int, detail: str) -> None:
        super().__init__(detail)
        self.line = line
        self.detail = detail


def _tokens(text: str) -> list[tuple[str, Any, int]]:
    found = []
    position, line = 0, 1
    while position < len(text):
        match = TOKEN.match(text, position)
        if match is None:
            raise ImportProblem(line, f"unexpected {text[position]!r}")
        if match.group("str") is not None:
            found.append(("str", match.group("str")[1:-1], line))
        elif match.group("int") is not None:
            found.append(("int", int(match.group("int")), line))
        elif match.group("op") is not None:
            found.append((match.group("op"), None, line))
        elif match.group("word") is not None:
            found.append(("word", match.group("word"), line))
        line += match.group(0).count("\n")
        position = match.end()
    return found


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any, int]]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self) -> tuple[str, Any, int]:
        return self.tokens[self.index] if self.index < len(self.tokens) else ("end", None, self.tokens[-1][2]
                                                                                if self.tokens else 1)

    def take(self, kind: str) -> tuple[str, Any, int]:
        token = self.peek()
        if token[0] != kind:
            found = token[1] if token[1] is not None else token[0]
            raise ImportProblem(token[2], f"expected {kind!r}, found {found!r}")
        self.index += 1
        return token

    def value(self) -> Any:
        kind, value, line = self.peek()
        if kind in ("str", "int"):
            self.index += 1
            return value, line
        if kind == "[":
            self.index += 1
            items = []
            while self.peek()[0] != "]":
                items.append(self.value())
                if self.peek()[0] == ",":
                    self.index += 1
            self.take("]")
            return items, line
        if kind == "{":
            self.index += 1
            pairs = []
            while self.peek()[0] != "}":
                key = self.value()
                self.take("=>")
                pairs.append((key, self.value()))
                if self.peek()[0] == ",":
                    self.index += 1
            self.take("}")
            return pairs, line
        raise ImportProblem(line, f"unexpected {value if value is not None else kind!r}")


def parse_addr_db(text: str) -> Any:
    """The `$addr_db` literal as nested (value, line) pairs."""
    parser = _Parser(_tokens(text))
    kind, value, line = parser.peek()
    if kind == "word" and value == "$addr_db":
        parser.index += 1
        parser.take("=")
    db = parser.value()
    if parser.peek()[0] != "end":
        raise ImportProblem(parser.peek()[2], "unexpected text after the $addr_db literal")
    return db


def _address(node: Any) -> str:
    value, line = node
    if isinstance(value, list) and len(value) == 4 and all(isinstance(v, int) and 0 <= v <= 255 for v, _ in value):
        return ".".join(str(v) for v, _ in value)
    if isinstance(value, str):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            pass
    raise ImportProblem(line, "an address must be [a, b, c, d] or an address string")


def _region_file(namespace: str, line: int) -> str:
    if namespace == "default":
        return "default.yaml"
    if namespace.upper() in CONTINENTS:
        return f"continent/{namespace.upper()}.yaml"
    found = country(namespace)
    if found is not None:
        return f"country/{found.alpha2}.yaml"
    raise ImportProblem(line, f"'{namespace}' is neither default, a continent code nor a country code")


def convert(db: Any, zone: str) -> dict[str, str]:
    """Relative path -> YAML text for mirrors.yaml and every table."""
    zone = normalise_name(zone)
    pairs, line = db
    if not isinstance(pairs, list) or (pairs and not isinstance(pairs[0], tuple)):
        raise ImportProblem(line, "$addr_db must be a hash of namespaces")
    mirrors: dict[str, str] = {}
    files: dict[str, list[str]] = {}
    for (namespace, ns_line), (hosts, hosts_line) in pairs:
        path = _region_file(str(namespace), ns_line)
        lines = files.setdefault(path, [f"# imported from DNS Balance namespace \"{namespace}\""])
        if not isinstance(hosts, list):
            raise ImportProblem(hosts_line, f"namespace '{namespace}' must map host names to lists")
        seen: set[str] = set()
        for (host, host_line), (entries, _) in hosts:
            name = normalise_name(str(host))
            owner = "@" if name == zone else name[: -len(zone) - 1] if name.endswith("." + zone) else name
            if owner != "@" and not is_dns_name(owner):
                raise ImportProblem(host_line, f"'{host}' is not a valid DNS name")
            if owner in seen:
                raise ImportProblem(host_line, f"'{host}' names '{owner}' a second time in '{namespace}'")
            seen.add(owner)
            lines.append(f"{owner if owner != '@' else repr('@')}:")
            for entry, entry_line in entries:
                if not isinstance(entry, list) or len(entry) != 2:
                    raise ImportProblem(entry_line, "an entry must be [[a, b, c, d], priority]")
                address = _address(entry[0])
                priority, priority_line = entry[1]
                if not isinstance(priority, int) or not 0 <= priority <= DRAINED:
                    raise ImportProblem(priority_line, f"priority {priority!r} is outside 0..{DRAINED}")
                mirror = "m-" + address.replace(".", "-").replace(":", "-")
                mirrors[mirror] = address
                lines.append(f"  {mirror}: {priority}")
    out = {"mirrors.yaml": "# imported from a DNS Balance addr file; add `url:` to a mirror to have it probed\n"
                           "mirrors:\n" + "".join(f"  {m}: {{addresses: [{a}]}}\n" for m, a in mirrors.items())}
    out.update({path: "\n".join(lines) + "\n" for path, lines in files.items()})
    return out


def import_addr_file(path: Path, zone: str, out: Path) -> list[Path]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ImportProblem(1, f"cannot read: {exc.strerror}") from None
    files = convert(parse_addr_db(text), zone)
    written = []
    for relative, content in files.items():
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        written.append(target)
    settings = out / "dnsbalance.yaml"
    if not settings.exists():
        settings.write_text(
            f"# written by import-dnsbalance: set your name servers' real names and addresses\nzone: {zone}\n"
            f"nameservers:\n  ns1.{zone}: [192.0.2.53]\nsoa: {{rname: hostmaster.{zone}}}\n", encoding="utf-8")
        written.append(settings)
    return written
