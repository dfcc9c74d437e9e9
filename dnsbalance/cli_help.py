"""The long help of every command: what it is for, examples and exit codes. One source for `--help` (argparse
epilogs, cli.py) and the man page dnsbalance(8) (manpage.py), so the two never disagree."""
from __future__ import annotations

import argparse
import textwrap
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CommandHelp:
    examples: tuple[tuple[str, str], ...]  # (command line, what it does)
    exits: tuple[tuple[int, str], ...]  # (exit code, what it means)
    about: str = ""  # a paragraph under the one-line help, when one line is not enough


PROGRAM = "dnsbalance"
SUMMARY = "GeoIP-aware authoritative DNS load balancer"
ABOUT = ("dnsbalance is the authoritative DNS server of one delegated zone: it answers each client with mirror "
         "addresses from its network's, AS's, country's or continent's table, drawn at random in proportion to "
         "their weights, leaving out the mirrors its health checks find down or stale. Every command reads the "
         "configuration folder (--config DIR, before or after the command).")
# Exit codes every command shares: argparse's usage errors, and a reader that went away (`dnsbalance stats | head`)
COMMON_EXITS = ((2, "a usage error: an unknown option or a missing argument (argparse)"),
                (141, "the reader of the output went away (SIGPIPE), as a shell reports it"))
PROGRAM_EXAMPLES = (
    ("dnsbalance serve", "answer for the zone of ./config (the example listens on 127.0.0.1)"),
    ("dnsbalance check --config /etc/dnsbalance", "every problem of a configuration, with file:line"),
    ("dnsbalance plan; dnsbalance reload", "see what an edit changes for clients, then apply it"),
    ("dnsbalance explain 133.11.0.1 deb", "which table and mirrors a client gets, and why"),
    ("dnsbalance COMMAND --help", "a command's options, examples and exit codes"),
)
FILES = (
    ("./config, /etc/dnsbalance", "the configuration folder: dnsbalance.yaml, mirrors.yaml, default.yaml, "
                                  "continent/, country/, network/, asn/"),
    ("state_dir (dnsbalance.yaml)", "health state, events, drains, counters, the table in service, the pid file "
                                    "and lock; by default /var/lib/dnsbalance for /etc/dnsbalance, else the "
                                    "configuration folder's name with -state beside it"),
)
ENVIRONMENT = (
    ("DNSBALANCE_CONFIG", "the configuration folder when --config is not given (before ./config and "
                          "/etc/dnsbalance)"),
    ("DNSBALANCE_NATIVE", "0, off, no or false: answer UDP with the Python fast path even where the native one "
                          "is built"),
)
SEE_ALSO = "dig(1), systemctl(1); docs/operations.md and docs/configuration.md in the source"

COMMANDS: dict[str, CommandHelp] = {
    "serve": CommandHelp(
        about="Loads the configuration (refusing to start on any error), takes the state folder's lock, listens "
              "on every address of `listen` (or --listen), probes the mirrors every health.interval seconds and "
              "serves the status page and /metrics on `status` (or --status). SIGHUP reloads, SIGTERM stops.",
        examples=(("dnsbalance serve", "the example zone of ./config"),
                  ("dnsbalance serve --listen 0.0.0.0:53 --listen [::]:53 --workers 2",
                   "production: port 53 on every address, two answering processes"),
                  ("dnsbalance serve --status off", "no status page or /metrics")),
        exits=((0, "stopped by SIGTERM or SIGINT"),
               (1, "not started: configuration errors, another instance holds the state folder, a port in use, "
                   "a DNSSEC key missing"),
               (2, "a bad --listen, --status or --workers value"))),
    "check": CommandHelp(
        about="Reads every file of the configuration folder and reports every problem at once, each with its "
              "file and line; warnings do not fail the check. The systemd unit runs it before each start.",
        examples=(("dnsbalance check", "the configuration in ./config"),
                  ("dnsbalance check --config /etc/dnsbalance", "the deployed configuration")),
        exits=((0, "no errors (there may be warnings)"),
               (1, "at least one error; the last line counts errors and warnings"))),
    "probe": CommandHelp(
        about="Runs one health cycle now, from this host, against every mirror and relay with a url, and prints "
              "a verdict per target. The running server is not changed. Fits a monitoring plugin slot "
              "(Nagios, Icinga): one summary line first.",
        examples=(("dnsbalance probe", "every mirror's verdict, as a table"),
                  ("dnsbalance probe --config /etc/dnsbalance", "the deployed configuration's mirrors")),
        exits=((0, "ok"), (1, "warning: a mirror or relay service fails"),
               (2, "critical: a name left with no usable entry, or every probe failed"),
               (3, "unknown: no verdict possible (configuration errors)"))),
    "status": CommandHelp(
        about="Asks the running server (found through the state folder) for its verdict, as probe judges one.",
        examples=(("dnsbalance status", "the running server's verdict, one line first"),
                  ("dnsbalance status --json", "the verdict and the instance, as JSON")),
        exits=((0, "ok"), (1, "warning"), (2, "critical"), (3, "unknown: no running server or no answer"))),
    "stats": CommandHelp(
        about="Queries by country and continent, distinct clients, and each mirror's observed share of first "
              "answers against its configured share, from the counters every serving process saves.",
        examples=(("dnsbalance stats", "the counts since the last reset"),
                  ("dnsbalance stats --reset", "start every count afresh")),
        exits=((0, "printed (or reset)"), (1, "configuration errors"))),
    "reload": CommandHelp(
        about="Checks the configuration, sends SIGHUP to the server that holds the state folder and waits for "
              "its outcome. A configuration with errors is refused and the running one stays.",
        examples=(("dnsbalance reload", "apply ./config to the running server"),
                  ("dnsbalance reload --config /etc/dnsbalance --timeout 60", "wait up to a minute")),
        exits=((0, "applied"), (1, "refused: errors here or in the server's own check; it keeps its configuration"),
               (3, "no running dnsbalance holds the state folder, or it cannot be signalled"),
               (4, "signalled, but no outcome within --timeout"))),
    "import-dnsbalance": CommandHelp(
        about="Converts a DNS Balance addr file (Ruby hash of namespaces, names and `[address, priority]` "
              "pairs) into a configuration folder, keeping the priorities' meaning.",
        examples=(("dnsbalance import-dnsbalance addr --zone cdn.debian.or.jp --out imported",
                   "write ./imported and check it"),
                  ("dnsbalance import-dnsbalance addr --zone cdn.debian.or.jp --out new --replace",
                   "convert again over an earlier import")),
        exits=((0, "written, and the written configuration checks"),
               (1, "the addr file cannot be read, --out is not empty, or the result has errors"))),
    "events": CommandHelp(
        about="The event logs of the state folder, oldest first: every up/down change of a mirror (per archive) "
              "or relay service, with its reason; and the operators' actions: drains and undrains (who, why, "
              "until when), reloads (applied or refused, by whom, configuration digest and table generation), "
              "configurations put in service.",
        examples=(("dnsbalance events --since 6h", "the last six hours"),
                  ("dnsbalance events --mirror jaist", "one mirror, every archive, and its drains")),
        exits=((0, "printed (also when there is no event)"), (1, "configuration errors"))),
    "drain": CommandHelp(
        about="Takes a mirror or relay out of every answer now (A/AAAA, apt's SRV sets, STUN/TURN SRV), in every "
              "table, without an edit or a reload: kept in the state folder (drains.json), applied by the running "
              "server within about a second (every worker), through etcd to every name server when cluster: is "
              "set. It lasts until `dnsbalance undrain`, or --for. Without MIRROR: the drains in force.",
        examples=(("dnsbalance drain jp3 --for 2h --reason 'kernel upgrade'", "out for two hours, with why"),
                  ("dnsbalance drain", "the drains in force, by whom, why, until when")),
        exits=((0, "drained (and in service, when a server runs)"),
               (1, "not drained: the state folder or etcd could not be written, or no configuration to read"),
               (2, "no such mirror or relay (with a \"did you mean\"), or a bad --for"),
               (4, "the running server did not apply it within --timeout; the drain stays"))),
    "undrain": CommandHelp(
        about="Puts a mirror or relay drained by `dnsbalance drain` back in the answers (as its health allows).",
        examples=(("dnsbalance undrain jp3", "jp3 answered again"),),
        exits=((0, "undrained, or it was not drained"), (1, "the state folder or etcd could not be written"),
               (2, "no such mirror or relay"), (4, "the running server did not apply it within --timeout"))),
    "plan": CommandHelp(
        about="What applying the configuration on disk would change for clients (names, regions, shares), "
              "against the configuration the server has in service, with the server's health.",
        examples=(("dnsbalance plan", "./config against the running server's"),
                  ("dnsbalance plan --config new --against /etc/dnsbalance", "two folders")),
        exits=((0, "no change for clients"), (1, "errors: no plan (reload would refuse it)"),
               (2, "changes: `dnsbalance reload` applies them"))),
    "geoip": CommandHelp(
        about="show: the GeoIP database this configuration uses. rebuild: the built-in database from Tor's "
              "geoip files (Debian package tor-geoipdb) into the state folder, used from the next reload.",
        examples=(("dnsbalance geoip show", "the database in use, its type and date"),
                  ("dnsbalance geoip rebuild", "rebuild from /usr/share/tor")),
        exits=((0, "shown, or rebuilt"), (1, "configuration errors, or not rebuilt (the database in use stays)"))),
    "dnssec": CommandHelp(
        about="keygen: a new signing key in the key folder (never over one). ds: the DS lines to give the "
              "parent zone. status: the keys and the signing state the server last wrote. rollover start|switch|"
              "finish: a key rollover's steps (a next key published, then signing, then the old key removed), "
              "each reloading the running server; a step before its RFC 7583 wait is refused unless --force. "
              "With `cluster:` the keys live in etcd: keygen refuses when the cluster has a key, every step "
              "changes etcd first and every name server follows; fetch: the cluster's keys into this server's "
              "key folder (--force sets a key the cluster lacks aside).",
        examples=(("dnsbalance dnssec keygen", "make the zone's key"),
                  ("dnsbalance dnssec ds", "the DS records for the parent zone"),
                  ("dnsbalance dnssec status", "key tags, earliest signature expiry"),
                  ("dnsbalance dnssec rollover start", "publish a next key beside the signing one"),
                  ("dnsbalance dnssec fetch", "copy the cluster's keys from etcd into the key folder")),
        exits=((0, "done"), (1, "no key, a key already there (keygen; in the cluster), a rollover step refused or "
                                "too early, etcd unreachable (with `cluster:`), dnsbalance.yaml unreadable, or the "
                                "running server refused the step's reload"),
               (2, "rollover without a step, or a step without rollover"),
               (4, "rollover: the running server showed no outcome of the step's reload in time"))),
    "explain": CommandHelp(
        about="The table a client gets for a name (network, AS, country, continent or default), its entries with "
              "weights, shares and health, and why the others were passed over.",
        examples=(("dnsbalance explain 133.11.0.1 deb", "a Japanese client, deb.ZONE"),
                  ("dnsbalance explain 2001:db8::1 deb.cdn.example.org", "an absolute name")),
        exits=((0, "explained"), (1, "configuration errors"), (2, "CLIENT is not an IP address"))),
}


def exits(found: CommandHelp) -> list[tuple[int, str]]:
    """A command's exit codes with the shared ones, by code; argparse's usage error told beside a 2 of its own."""
    rows = dict(found.exits)
    for code, meaning in COMMON_EXITS:
        rows[code] = f"{rows[code]}; also {meaning}" if code in rows else meaning
    return sorted(rows.items())


def _examples(rows: tuple[tuple[str, str], ...]) -> list[str]:
    return [line for command, what in rows
            for line in (f"  {command}", *textwrap.wrap(what, 79, initial_indent=" " * 6, subsequent_indent=" " * 6))]


def epilog(name: str) -> str | None:
    """Examples and exit codes under a command's --help (None: a command without long help)."""
    found = COMMANDS.get(name)
    if found is None:
        return None
    codes = [line for code, meaning in exits(found)
             for line in textwrap.wrap(meaning, 79, initial_indent=f"  {code:<5}", subsequent_indent=" " * 7)]
    return "\n".join(["examples:", *_examples(found.examples), "", "exit status:", *codes])


def command_help(name: str, help: str) -> dict[str, Any]:
    """The keywords of `add_parser` for a command: its description, its epilog, kept as written."""
    found = COMMANDS.get(name)
    description = textwrap.fill(found.about if found and found.about else help[:1].upper() + help[1:] + ".", 79)
    return {"description": description, "epilog": epilog(name),
            "formatter_class": argparse.RawDescriptionHelpFormatter}


def program_help() -> dict[str, Any]:
    """The keywords of the top-level ArgumentParser."""
    return {"description": f"{SUMMARY}.\n\n{textwrap.fill(ABOUT, 79)}",
            "epilog": "\n".join(["examples:", *_examples(PROGRAM_EXAMPLES)]) +
            "\n\nEach command's --help has its examples and exit codes; man dnsbalance has them all.",
            "formatter_class": argparse.RawDescriptionHelpFormatter}
