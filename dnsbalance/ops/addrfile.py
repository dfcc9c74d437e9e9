"""DNS Balance `addr` files: read the Ruby `$addr_db` literal and write the dnsbalance configuration layout.

    $addr_db = {
      "default"      => { "cdn" => [ [[192,0,2,1], 0], [[192,0,2,2], 30], ], },
      "AS"           => { ... },       # continent codes             -> continent/AS.yaml
      "JPN"          => { ... },       # ISO 3166 alpha-3 countries  -> country/JP.yaml
      "AS2500"       => { ... },       # an AS (GeoIP ASN database)  -> asn/AS2500.yaml
      "10.1.0.0/16"  => { ... },       # a network address namespace -> network/net-10-1-0-0-16.yaml
    }

Priorities keep their numbers (weight = 10000 - priority in both). Each address becomes a mirror named
after it (m-192-0-2-1), defined once in mirrors.yaml; operators then add its `url:` to have it probed.
Names that are the zone's name servers (ns, ns1, dns2, ... or those named) become `nameservers:` with glue.
What DNS Balance did differently is said in warnings that point at the Ruby file's lines.
"""
from __future__ import annotations

import ipaddress
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnsbalance.configuration.model import DRAINED
from dnsbalance.configuration.names import is_dns_name, normalise_name, relative_to
from dnsbalance.files import Refused, read_file
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
        if kind == "word" and value == "nil":  # the generators of addr files leave nil keys behind
            self.index += 1
            return None, line
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


NAMESERVER = re.compile(r"(ns|dns)\d*")  # the usual names of a zone's own name servers
PLACEHOLDER_NS = "192.0.2.53"
DEFAULT_OUT = Path("dnsbalance-import")  # never the live ./config unless the operator says so


class OutputNotEmpty(Exception):
    pass


@dataclass
class Imported:
    files: dict[str, str]  # relative path -> YAML text
    warnings: list[tuple[int, str]] = field(default_factory=list)  # (line in the addr file, message)


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


ASN_NAMESPACE = re.compile(r"AS(\d{1,10})")


def _namespace_file(namespace: str, line: int) -> tuple[str, str]:
    """(relative file, kind) of one namespace: default, continent, country, asn or network."""
    if namespace == "default":
        return "default.yaml", "default"
    if namespace.upper() in CONTINENTS:
        return f"continent/{namespace.upper()}.yaml", "continent"
    match = ASN_NAMESPACE.fullmatch(namespace)
    if match and 0 < int(match.group(1)) <= 0xFFFFFFFF:
        return f"asn/AS{int(match.group(1))}.yaml", "asn"
    if re.fullmatch(r"[0-9.]+(/\d+)?|[0-9A-Fa-f:.]+(/\d+)?", namespace) and any(c.isdigit() for c in namespace):
        try:
            network = ipaddress.ip_network(namespace)
        except ValueError:
            raise ImportProblem(line, f"'{namespace}' is not a network address namespace: DNS Balance's are "
                                      "ADDRESS/LENGTH with the host bits clear, such as 10.1.0.0/16") from None
        name = "net-" + re.sub(r"[^0-9A-Za-z]+", "-", str(network)).strip("-")
        return f"network/{name}.yaml", "network"
    found = country(namespace)
    if found is not None and len(namespace) in (2, 3):
        return f"country/{found.alpha2}.yaml", "country"
    raise ImportProblem(line, f"'{namespace}' is neither default, a continent code, a country code, an AS "
                              "(AS2500) nor a network address (10.1.0.0/16); custom namespaces of DNS Balance's "
                              "$namespace_db are not imported")


def _wider(kind: str) -> str:
    return {"default": "no table: such clients get no answer for it unless another table lists it",
            "continent": "the default table",
            "country": "the continent's table, else the default table"}.get(
                kind, "the country's, continent's or default table")


def _mirror_name(address: str) -> str:
    return "m-" + address.replace(".", "-").replace(":", "-")


def convert(db: Any, zone: str, nameservers: list[str] | None = None, asn_database: str | None = None) -> Imported:
    """The configuration files of one addr database. `nameservers`: owner names (relative or absolute) that
    are the zone's name servers; None: the names that look like one (ns, ns1, dns2). `asn_database`: the
    ASN .mmdb that AS namespaces need; without it they are left out with a warning."""
    zone = normalise_name(zone)
    pairs, line = db
    if not isinstance(pairs, list) or (pairs and not isinstance(pairs[0], tuple)):
        raise ImportProblem(line, "$addr_db must be a hash of namespaces")
    named = {_relative(normalise_name(n), zone) for n in nameservers} if nameservers is not None else None
    warnings: list[tuple[int, str]] = []
    mirrors: dict[str, str] = {}
    files: dict[str, list[str]] = {}
    sources: dict[str, tuple[str, int]] = {}
    glue: dict[str, list[str]] = {}
    for (namespace, ns_line), (hosts, hosts_line) in pairs:
        if namespace is None:
            warnings.append((ns_line, "namespace nil (left by the addr file's generator) matches no client in DNS "
                                      "Balance either; left out"))
            continue
        path, kind = _namespace_file(str(namespace), ns_line)
        if path in sources:
            first, first_line = sources[path]
            raise ImportProblem(ns_line, f"namespace '{namespace}' is the same table as '{first}' (line "
                                         f"{first_line}): {path}")
        sources[path] = (str(namespace), ns_line)
        if not isinstance(hosts, list):
            raise ImportProblem(hosts_line, f"namespace '{namespace}' must map host names to lists")
        if kind == "asn" and asn_database is None:
            warnings.append((ns_line, f"namespace '{namespace}' is an AS table; it is left out because AS tables "
                                      "need an ASN database: import again with --asn-database FILE.mmdb"))
            continue
        lines = [f"# imported from DNS Balance namespace \"{namespace}\""]
        if kind == "network":
            lines.append(f"networks: [{ipaddress.ip_network(str(namespace))}]")
        seen: set[str] = set()
        listed = 0
        for (host, host_line), (entries, entries_line) in hosts:
            owner = _relative(normalise_name(str(host)), zone)
            if owner != "@" and not is_dns_name(owner):
                raise ImportProblem(host_line, f"'{host}' is not a valid DNS name")
            if owner in seen:
                raise ImportProblem(host_line, f"'{host}' names '{owner}' a second time in '{namespace}'")
            seen.add(owner)
            if not isinstance(entries, list):
                raise ImportProblem(entries_line, f"'{host}' must map to a list of [[a, b, c, d], priority]")
            parsed = []
            for entry, entry_line in entries:
                if not isinstance(entry, list) or len(entry) != 2:
                    raise ImportProblem(entry_line, "an entry must be [[a, b, c, d], priority]")
                address = _address(entry[0])
                priority, priority_line = entry[1]
                if not isinstance(priority, int) or not 0 <= priority <= DRAINED:
                    raise ImportProblem(priority_line, f"priority {priority!r} is outside 0..{DRAINED}")
                parsed.append((address, priority))
            is_ns = owner in named if named is not None else bool(NAMESERVER.fullmatch(owner))
            if is_ns:
                found = glue.setdefault(owner, [])
                found += [a for a, _ in parsed if a not in found]
                continue
            if not parsed:
                warnings.append((host_line, f"namespace '{namespace}': '{host}' lists no address; DNS Balance "
                                            f"answered NXDOMAIN there; left out, so dnsbalance answers from "
                                            f"{_wider(kind)}"))
                continue
            if owner == "localhost" or any(ipaddress.ip_address(a).is_loopback for a, _ in parsed):
                warnings.append((host_line, f"namespace '{namespace}': '{host}' answers a loopback address, as "
                                            "DNS Balance did; imported as it is"))
            lines.append(f"{owner if owner != '@' else repr('@')}:")
            for address, priority in parsed:
                mirrors[_mirror_name(address)] = address
                lines.append(f"  {_mirror_name(address)}: {priority}")
            listed += 1
        if listed:
            files[path] = lines
        elif path != "default.yaml":
            warnings.append((ns_line, f"namespace '{namespace}' has no name left to serve: no {path} written"))
    if "default.yaml" not in files:
        files["default.yaml"] = ["# DNS Balance's addr file had no usable default namespace", "{}"]
    out = {"mirrors.yaml": "# imported from a DNS Balance addr file; add `url:` to a mirror to have it probed\n"
                           "mirrors:\n" + "".join(f"  {m}: {{addresses: [{a}]}}\n" for m, a in mirrors.items())}
    out.update({path: "\n".join(lines) + "\n" for path, lines in files.items()})
    out["dnsbalance.yaml"] = _settings(zone, glue, nameservers, asn_database, warnings)
    return Imported(out, warnings)


def _relative(name: str, zone: str) -> str:
    return relative_to(name, zone) or name


def _settings(zone: str, glue: dict[str, list[str]], named: list[str] | None, asn_database: str | None,
              warnings: list[tuple[int, str]]) -> str:
    text = "# written by import-dnsbalance\n" f"zone: {zone}\n" "nameservers:\n"
    missing = [n for n in named or () if _relative(normalise_name(n), zone) not in glue]
    if missing:
        raise ImportProblem(1, f"--nameserver {', '.join(missing)}: no such name in the addr file")
    if glue:
        for owner, addresses in glue.items():
            fqdn = zone if owner == "@" else f"{owner}.{zone}"
            text += f"  {fqdn}: [{', '.join(_yaml_address(a) for a in addresses)}]\n"
    else:
        text += f"  ns1.{zone}: [{PLACEHOLDER_NS}]  # PLACEHOLDER: set your name servers' real names and addresses\n"
        warnings.append((1, f"no name server found in the addr file (names such as ns, ns1 or dns, or given with "
                            f"--nameserver): wrote the placeholder ns1.{zone} with glue {PLACEHOLDER_NS}; set the "
                            "real ones in dnsbalance.yaml before serving"))
    text += f"soa: {{rname: hostmaster.{zone}}}\n"
    if asn_database is not None:
        text += f"geoip:\n  asn_database: {asn_database}\n"
    return text


def _yaml_address(address: str) -> str:
    return f'"{address}"' if ":" in address else address


def import_addr_file(path: Path, zone: str, out: Path, replace: bool = False, nameservers: list[str] | None = None,
                     asn_database: str | None = None) -> tuple[list[Path], list[tuple[int, str]]]:
    """Write the configuration folder `out`; (files written, warnings). `out` must be missing or empty
    unless `replace`, which swaps the whole folder for the imported one (no stale tables stay)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not replace:
        raise OutputNotEmpty(f"{out} is not empty; choose another --out, or add --replace to replace the whole "
                             "folder")
    try:  # a regular file of at most MAX_FILE_BYTES (a FIFO or /dev/zero named by mistake is refused unopened)
        text = read_file(path).decode("utf-8", errors="replace")
    except Refused as exc:
        raise ImportProblem(1, exc.message) from None
    except OSError as exc:
        raise ImportProblem(1, f"cannot read: {exc.strerror}") from None
    imported = convert(parse_addr_db(text), zone, nameservers, asn_database)
    staging = out.parent / f".{out.name}.importing"
    if staging.exists():
        shutil.rmtree(staging)
    written = []
    for relative, content in imported.files.items():
        target = staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        written.append(out / relative)
    if out.is_dir() and not out.is_symlink():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()
    staging.rename(out)
    return written, imported.warnings
