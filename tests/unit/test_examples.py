"""The launch recipes in examples/ parse as bash and spell out the paper's hyper-parameters."""

import subprocess
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".sh", ".sbatch"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_script_parses(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0


def test_paper_settings_are_visible():
    marco = (EXAMPLES / "pipeline_marco7b.sh").read_text()
    qwq = (EXAMPLES / "freeze_qwq32b.sh").read_text()
    assert "K=${K:-16}" in marco and "LAMBDA=${LAMBDA:-2}" in marco and "LR=${LR:-2e-7}" in marco
    assert "--num-samples 12" in qwq and "--lambda 5" in qwq and "--lr 2e-6" in qwq
    assert "--freeze-layers 48" in qwq and "--global-batch-size 32" in qwq


def test_qwen3_8b_recipe_spells_out_its_layout_and_thinking():
    script = (EXAMPLES / "qwen3_8b_one_node.sh").read_text()
    assert "THINKING=${THINKING:---enable-thinking}" in script and '"$THINKING"' in script
    assert "--tensor-model-parallel-size 2 --sequence-parallel --recompute-activations" in script
    assert "K=${K:-16}" in script and "SEQ=${SEQ:-8704}" in script
    assert "--temperature 0.5 --top-p 0.8" in script  # the paper's sampling settings


def _o1p_calls(script: Path):
    """(subcommand words, flags) of every `o1p ...` / `-m megatron_o1p ...` call in a script."""
    import re
    import shlex

    text = script.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split(" #")[0]
        match = re.search(r"(?:^|\s)(?:o1p|-m megatron_o1p|\"\$\{RUN\[@\]\}\")\s+(.*)", line)
        if not match or line.lstrip().startswith("#"):
            continue
        words = shlex.split(match.group(1).split(" &")[0].split(";")[0], posix=True)
        command = words[:2] if words[0] == "convert" else words[:1]
        yield command, [w.split("=")[0] for w in words if w.startswith("--")]


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_every_o1p_flag_in_the_examples_exists(script):
    """A renamed flag fails here rather than in someone's 8-GPU job."""
    import argparse

    from megatron_o1p import cli

    for command, flags in _o1p_calls(script):
        parser = cli.build_parser(command[0])
        for name in command:
            sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            parser = sub.choices[name]
        known = {s for a in parser._actions for s in a.option_strings}
        unknown = sorted(set(flags) - known)
        assert not unknown, f"{script.name}: o1p {' '.join(command)} has no {unknown}"


def test_qwen3_moe_recipe_spells_out_its_expert_layout():
    script = (EXAMPLES / "qwen3_30b_a3b.sh").read_text()
    assert "EP=${EP:-16}" in script and script.count('--expert-model-parallel-size "$EP"') == 3
    assert "--tensor-model-parallel-size 2 --sequence-parallel" in script  # MoE trains with SP
    assert "K=${K:-16}" in script and "--temperature 0.5 --top-p 0.8" in script
