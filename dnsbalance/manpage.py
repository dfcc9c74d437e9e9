"""The man page dnsbalance(8), written in roff from the command line's own parser (cli.py) and its long help
(cli_help.py): every command, option, example and exit code, as `--help` gives them.

    python -m dnsbalance.manpage > dnsbalance.8      (tools/build-manpage; the deploy kit installs it)
"""
from __future__ import annotations

import argparse
import sys

from dnsbalance import __version__
from dnsbalance.cli_help import ABOUT, COMMANDS, COMMON_EXITS, ENVIRONMENT, FILES, PROGRAM_EXAMPLES, SEE_ALSO, SUMMARY, exits


def escape(text: str) -> str:
    """Text as roff prints it: backslashes and hyphens kept, no line taken for a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.split("\n"))


def _option(action: argparse.Action) -> str:
    """`\\fB\\-\\-listen\\fR \\fIHOST:PORT\\fR`, `\\fIclient\\fR`, `{rebuild,show}`."""
    if not action.option_strings:
        if action.choices:
            return "\\fB" + escape("{" + ",".join(map(str, action.choices)) + "}") + "\\fR"
        return f"\\fI{escape(str(action.metavar or action.dest))}\\fR"
    names = ", ".join(f"\\fB{escape(o)}\\fR" for o in action.option_strings)
    if action.nargs == 0:
        return names
    if action.choices and not action.metavar:
        return f"{names} {escape('{' + ','.join(map(str, action.choices)) + '}')}"
    return f"{names} \\fI{escape(str(action.metavar or action.dest.upper()))}\\fR"


def _help(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    if "%(" in text:
        text = text % {**vars(action), "prog": prog}
    return escape(text)


def _options(parser: argparse.ArgumentParser) -> list[str]:
    lines = []
    for action in parser._actions:  # argparse keeps no public list of a parser's arguments
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        lines += [".TP", _option(action), _help(action, parser.prog)]
    return lines


def _examples(rows: tuple[tuple[str, str], ...]) -> list[str]:
    lines = []
    for command, what in rows:
        lines += [".TP", f"\\fB{escape(command)}\\fR", escape(what)]
    return lines


def _codes(rows: list[tuple[int, str]] | tuple[tuple[int, str], ...]) -> list[str]:
    lines = []
    for code, meaning in rows:
        lines += [".TP", f"\\fB{code}\\fR", escape(meaning)]
    return lines


def _commands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """Every subcommand: its one-line help and its parser, in the order of `dnsbalance --help`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            return {name: (helps.get(name, ""), sub) for name, sub in action.choices.items()}
    return {}


def render(parser: argparse.ArgumentParser) -> str:
    commands = _commands(parser)
    out = [f'.TH DNSBALANCE 8 "" "dnsbalance {escape(__version__)}" "System Administration"',
           ".SH NAME", f"dnsbalance \\- {escape(SUMMARY)}",
           ".SH SYNOPSIS", ".B dnsbalance", "[\\fB\\-\\-config\\fR \\fIDIR\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
           ".SH DESCRIPTION", escape(ABOUT),
           ".PP", "Commands: " + ", ".join(f"\\fB{escape(name)}\\fR" for name in commands) + ".",
           ".SH OPTIONS", *_options(parser),
           ".SH COMMANDS"]
    for name, (one_line, sub) in commands.items():
        usage = " ".join(sub.format_usage().removeprefix("usage: ").split())
        out += [f'.SS "{escape(name)}"', escape(one_line[:1].upper() + one_line[1:]) + ".",
                ".PP", escape(usage)]  # filled by roff: argparse's own breaks follow the terminal's width
        found = COMMANDS.get(name)
        if found is not None and found.about:
            out += [".PP", escape(found.about)]
        out += [".PP", "Options:", ".RS", *_options(sub), ".RE"]
        if found is not None:
            out += [".PP", "Examples:", ".RS", *_examples(found.examples), ".RE",
                    ".PP", "Exit status:", ".RS", *_codes(exits(found)), ".RE"]
    out += [".SH EXAMPLES", *_examples(PROGRAM_EXAMPLES),
            ".SH EXIT STATUS", "Each command lists its own above; every command shares these:", *_codes(COMMON_EXITS),
            ".SH ENVIRONMENT",
            *[line for name, what in ENVIRONMENT for line in (".TP", f"\\fB{escape(name)}\\fR", escape(what))],
            ".SH FILES", *[line for path, what in FILES for line in (".TP", f"\\fI{escape(path)}\\fR", escape(what))],
            ".SH SEE ALSO", escape(SEE_ALSO)]
    return "\n".join(out) + "\n"


def main() -> int:
    from dnsbalance.cli import _parser  # the parser `dnsbalance` itself runs

    sys.stdout.write(render(_parser()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
