"""`--help` of every command has examples and exit codes (issue 26 item 10), from dnsbalance/cli_help.py, and
every example is a command line the real parser accepts."""
from __future__ import annotations

import shlex

import pytest

from dnsbalance.cli import _parser
from dnsbalance.cli_help import COMMANDS, PROGRAM_EXAMPLES
from dnsbalance.manpage import _commands, escape, render

PARSER = _parser()
NAMES = list(_commands(PARSER))


def test_the_parser_has_every_command() -> None:
    assert {"serve", "check", "probe", "reload", "plan", "explain", "import-dnsbalance"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_command_help_has_examples_and_exit_codes(name: str) -> None:
    assert name in COMMANDS, f"add {name}'s examples and exit codes to dnsbalance/cli_help.py"
    text = _commands(PARSER)[name][1].format_help()
    assert "\nexamples:\n" in text and "\nexit status:\n" in text, text
    assert "\n  0    " in text and "\n  2    " in text  # success, and argparse's usage error
    assert all(len(line) <= 79 for line in text.split("examples:")[1].splitlines()), text  # fits a terminal
    codes = [code for code, _ in COMMANDS[name].exits]
    assert 0 in codes and len(codes) == len(set(codes))


@pytest.mark.parametrize(("name", "example"), [(name, example) for name in NAMES if name in COMMANDS
                                               for example, _ in COMMANDS[name].examples])
def test_every_example_is_accepted_by_the_parser(name: str, example: str) -> None:
    words = shlex.split(example)
    assert words[:2] == ["dnsbalance", name]
    try:
        parsed = PARSER.parse_args(words[1:])
    except SystemExit as exc:  # argparse rejected it: the example is wrong
        raise AssertionError(f"{example!r} is refused by the parser") from exc
    assert parsed.command == name


def test_the_top_level_help_has_examples() -> None:
    text = PARSER.format_help()
    for example, _ in PROGRAM_EXAMPLES:
        assert f"\n  {example}\n" in text
    for name in NAMES:
        assert name in text


def test_roff_escapes() -> None:
    assert escape("--listen") == "\\-\\-listen"
    assert escape(".hidden\n'quote") == "\\&.hidden\n\\&'quote"
    assert escape("a\\b") == "a\\eb"
    page = render(PARSER)
    assert page.startswith(".TH DNSBALANCE 8 ") and all(f'.SS "{escape(n)}"' in page for n in NAMES)
