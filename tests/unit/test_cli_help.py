"""The `ekko` command line: every command explains itself, usage errors have their own exit code."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from service import __version__
from service.cli import build_parser, main
from service.cli.common import COMMON_ENV, EXIT_CONFIG, EXIT_USAGE
from service.config import ENVIRONMENT


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)command parser, with the words that reach it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


ALL = list(commands(build_parser()))
# Leaf commands that print a result: all but `run`, which serves.
REPORTING = [
    path
    for path, p in ALL
    if path not in {(), ("run",)} and not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)
]


def test_the_command_tree_is_what_the_readme_lists() -> None:
    paths = {" ".join(path) for path, _ in ALL}
    assert {"run", "sync verify", "sync repair", "migrate", "db backup", "db reset", "status"} <= paths


@pytest.mark.parametrize("path", [path for path, _ in ALL], ids=lambda p: " ".join(p) or "ekko")
def test_every_help_describes_the_command_its_options_and_its_environment(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*path, "--help"]) == 0
    text = capsys.readouterr().out
    parser = dict(ALL)[path]
    assert parser.description and parser.description.split()[0] in text  # a description, printed
    assert "environment variables" in text and "exit status" in text
    wanted = ENVIRONMENT if path in {(), ("run",)} else [n for n in COMMON_ENV if n in (parser.epilog or "")]
    assert "NATS_URL" in wanted
    for name in wanted:
        assert name in text, f"`ekko {' '.join(path)} --help` does not mention {name}"
    for action in parser._actions:  # every option has its own line of help
        if action.option_strings and action.dest != "help":
            assert action.help, f"{action.option_strings} of `ekko {' '.join(path)}` has no help"


def test_run_help_names_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in ENVIRONMENT)
    assert "Serve the ekko.* subjects" in text


@pytest.mark.parametrize("path", REPORTING, ids=" ".join)
def test_every_reporting_command_takes_json(path: tuple[str, ...]) -> None:
    args = build_parser().parse_args([*path, "--json"])
    assert args.json is True


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"ekko {__version__}"


@pytest.mark.parametrize(
    "argv",
    [[], ["nope"], ["sync"], ["sync", "verify", "--bogus"], ["db", "reset", "extra"], ["status", "--timeout", "x"]],
)
def test_a_usage_error_exits_64_not_the_configuration_code(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == EXIT_USAGE != EXIT_CONFIG
    assert "usage: ekko" in capsys.readouterr().err


def test_bad_configuration_keeps_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EKKO_LOG_FORMAT", "xml")
    assert main(["sync", "verify"]) == EXIT_CONFIG == 2
    assert "EKKO_LOG_FORMAT" in capsys.readouterr().err
