"""A conversion that dies half-way leaves nothing that looks like a checkpoint, and the error
raised inside torch's checkpoint writer reaches the user as our own one-line error."""

import subprocess
import sys
import textwrap

from tests.helpers.run import _env

SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from megatron_o1p.checkpoint.convert import HfToMcoreConfig, hf_to_mcore
    from megatron_o1p.errors import CheckpointError

    hf_dir, out = Path(sys.argv[1]), Path(sys.argv[2])

    class DiesHalfWay:
        count = 0

        def reset(self, total):
            assert total > 9

        def update(self, n):
            self.count += n
            if self.count == 9:
                raise CheckpointError("simulated failure after 9 parameters")

    try:
        hf_to_mcore(HfToMcoreConfig(hf_dir=hf_dir, out=out, spec="local"), progress=DiesHalfWay())
    except CheckpointError as err:
        print("raised:", err)
        sys.exit(3)
    print("no error")
""")


def test_interrupted_conversion_leaves_no_output(tiny_qwen2, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_qwen2), str(tmp_path / "m")],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr[-3000:]
    assert "raised: simulated failure after 9 parameters" in proc.stdout
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temp folder
