"""Every `o1p` subcommand's flags: defined in one place, documented, and cheap to list.

`test_every_flag_is_defined_in_one_module` builds each subcommand's parser (convert's actions
too) and records which module added each option string: a `flag()` field counts as its
config's module, a `shared()` field as `config/common.py`, a plain `add_argument` as the
module that called it. One option string added from two modules fails: the same flag would
then have two definitions that can drift apart (the state this test was written against:
TP/PP sizes defined four times, `--spec` choices four times).

`test_help_imports_no_heavy_package` runs `o1p <cmd> --help` in a fresh interpreter and fails
if megatron, vLLM or torch (which imports torch.distributed) was imported.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys

import pytest

from megatron_o1p import cli

_HEAVY = ("torch", "megatron", "vllm", "transformers")


def _leaf_parsers(parser: argparse.ArgumentParser, name: str):
    """(name, parser) of each leaf: a command, or each action of a command with actions."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield name, parser
        return
    for sub in subs:
        for child_name, child in sub.choices.items():
            yield from _leaf_parsers(child, f"{name} {child_name}".strip())


def _command_parser(command: str) -> argparse.ArgumentParser:
    root = cli.build_parser(command)
    sub = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


@pytest.fixture(scope="module")
def parsers(monkeypatch_module):
    """Every leaf parser, with the module that added each of its actions."""
    original = argparse._ActionsContainer.add_argument

    def recording_add_argument(self, *args, **kwargs):
        action = original(self, *args, **kwargs)
        caller = sys._getframe(1).f_globals.get("__name__", "?")
        action.o1p_caller = caller
        return action

    monkeypatch_module.setattr(argparse._ActionsContainer, "add_argument", recording_add_argument)
    leaves = []
    for command in cli.COMMANDS:
        leaves += list(_leaf_parsers(_command_parser(command), command))
    return leaves


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _user_actions(parser: argparse.ArgumentParser):
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def test_every_command_is_walked(parsers):
    names = {name for name, _ in parsers}
    assert set(cli.COMMANDS) - {"convert"} <= names
    assert {"convert hf-to-mcore", "convert mcore-to-hf", "convert verify"} <= names


def test_every_flag_is_defined_in_one_module(parsers):
    defined_in = collections.defaultdict(set)
    for _, parser in parsers:
        for action in _user_actions(parser):
            module = getattr(action, "o1p_defined_in", None) or action.o1p_caller
            for option in action.option_strings:
                defined_in[option].add(module)
    twice = {opt: sorted(mods) for opt, mods in defined_in.items() if len(mods) > 1}
    assert not twice, f"flags defined in more than one module: {twice}"


def test_every_flag_has_help(parsers):
    missing = [
        f"{name}: {'/'.join(action.option_strings) or action.dest}"
        for name, parser in parsers
        for action in _user_actions(parser)
        if not (action.help or "").strip() and not isinstance(action, argparse._SubParsersAction)
    ]
    assert not missing, f"flags without help: {missing}"


@pytest.mark.parametrize(
    "argv",
    [[c, "--help"] for c in cli.COMMANDS if c != "convert"]
    + [["convert", a, "--help"] for a in ("hf-to-mcore", "mcore-to-hf", "verify")],
    ids=lambda argv: " ".join(argv[:-1]),
)
def test_help_imports_no_heavy_package(argv):
    probe = (
        "import sys\n"
        "from megatron_o1p.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {_HEAVY!r})\n"
        "print('HEAVY', heavy[:10])\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage: o1p" in proc.stdout, proc.stdout[-2000:]
    assert "HEAVY []" in proc.stdout, proc.stdout.splitlines()[-1]
