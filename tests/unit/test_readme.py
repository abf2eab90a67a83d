"""Every `o1p` command the README shows uses flags that exist, and its required part parses.

Commands are read from ```bash blocks (continuation lines joined) and from inline code spans
that start with `o1p ` or `torchrun ... -m megatron_o1p`. For each one, every `--flag` must be
an option of that subcommand (convert: of its action). For block commands, the line with its
`[optional ...]` groups removed must parse: the required flags are all there.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from megatron_o1p import cli

README = Path(__file__).resolve().parents[2] / "README.md"
_LAUNCHER = re.compile(r"^(?:torchrun\b.*?-m megatron_o1p|o1p|python -m megatron_o1p)\s+(.*)$")


def _block_commands(text: str) -> list[str]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("  #")[0].strip()
            if _LAUNCHER.match(line):
                commands.append(line)
    return commands


def _inline_commands(text: str) -> list[str]:
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return [s for s in spans if _LAUNCHER.match(s) and len(s.split()) > 2]


def _parser_for(words: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The leaf parser of `words` (command, and convert's action) and the words after it."""
    command = words[0]
    root = cli.build_parser(command)
    parser = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    parser = parser.choices[command]
    rest = words[1:]
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if subs:
        parser, rest = subs[0].choices[rest[0]], rest[1:]
    return parser, rest


def _words(command: str) -> list[str]:
    return _LAUNCHER.match(command).group(1).split()


def _without_optional_groups(text: str) -> str:
    previous = None
    while previous != text:  # innermost first: `[--problem-field [NAME=]F ...]`
        previous, text = text, re.sub(r"\[[^\[\]]*\]", "", text)
    return text


COMMANDS = sorted(set(_block_commands(README.read_text()) + _inline_commands(README.read_text())))
BLOCKS = sorted(set(_block_commands(README.read_text())))


def test_the_readme_shows_commands():
    assert len(BLOCKS) >= 10 and len(COMMANDS) > len(BLOCKS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_shown_exists(command):
    words = _words(command)
    if words[0].startswith("<"):  # `o1p <cmd> --help`: a placeholder
        return
    if words[0] not in cli.COMMANDS:
        pytest.fail(f"README shows an unknown command: {command}")
    parser, _ = _parser_for(words)
    flags = {w.split("=")[0].strip("[]") for w in words if w.lstrip("[").startswith("--")}
    unknown = sorted(f for f in flags if f not in parser._option_string_actions)
    assert not unknown, f"README: {unknown} not flags of `{' '.join(words[:2])}`: {command}"


@pytest.mark.parametrize("command", BLOCKS)
def test_the_required_part_parses(command):
    words = shlex.split(_without_optional_groups(_LAUNCHER.match(command).group(1)))
    words = [w.split("|")[0] for w in words]  # `normal|fast` -> one choice
    parser, rest = _parser_for(words)
    parser.exit_on_error = False
    try:
        parser.parse_args(rest)
    except (argparse.ArgumentError, SystemExit) as err:
        pytest.fail(f"README command does not parse ({err}): {command}")
