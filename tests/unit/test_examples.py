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
