"""demo/pipeline.py wiring, with every `o1p` subprocess faked: the stages run in order, each
command is the one a user would type, a rerun skips every stage, and the stage markers keep
the keys that earlier versions wrote (else a rerun after an upgrade would redo everything)."""

import io
import json
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from megatron_o1p.demo import pipeline
from megatron_o1p.demo import task as demo_task
from megatron_o1p.demo.runner import Runner, Stages, fingerprint
from megatron_o1p.errors import SetupError


class _FakeO1p:
    """Stands in for `subprocess.Popen` of `o1p ...`: writes what later stages read."""

    def __init__(self, cmd, **_):
        args = cmd[cmd.index("megatron_o1p") + 1 :]
        self.args, lines = args, [f"o1p {args[0]}: done\n"]
        for flag in ("--out", "--save"):
            if args[0] in ("convert", "train") and flag in args:
                Path(args[args.index(flag) + 1]).mkdir(parents=True, exist_ok=True)
        if args[0] == "grade":
            Path(args[2]).mkdir(parents=True)
            pq.write_table(
                pa.table({"correct": [True, False]}), Path(args[2]) / "part-00000.parquet"
            )
        if args[0] == "build-dataset":
            out = Path(args[args.index("--out") + 1])
            out.parent.mkdir(parents=True)
            for name in (out.name, "sft.parquet", "dpo.parquet"):
                pq.write_table(pa.table({"x": list(range(40))}), out.with_name(name))
        if args[0] in ("analyze", "compare"):
            Path(args[args.index("--out") + 1]).mkdir(parents=True, exist_ok=True)
            lines.append(f"{args[0]} table\n")
        self.stdout = io.StringIO("".join(lines))

    def wait(self):
        return 0


@pytest.fixture
def fake_o1p(monkeypatch):
    commands = []

    def popen(cmd, **kwargs):
        proc = _FakeO1p(cmd, **kwargs)
        commands.append(proc.args)
        return proc

    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(
        demo_task, "build_base_model", lambda out_dir, **_: Path(out_dir).mkdir(parents=True)
    )
    return commands


def test_every_stage_runs_once_then_a_rerun_skips_them(tmp_path, fake_o1p):
    log = []
    result = pipeline.run_demo(tmp_path, size="ci", log=log.append)
    stages = [line for line in log if line.startswith("[")]
    assert len(stages) == 17 and stages[0] == "[1/17] task" and stages[-1] == "[17/17] compare"
    names = [" ".join(a[:2]) if a[0] == "convert" else a[0] for a in fake_o1p]
    assert names[:4] == [
        "convert hf-to-mcore",
        "train",
        "convert mcore-to-hf",
        "convert hf-to-mcore",
    ]
    assert names.count("sample") == 2 and names.count("evaluate") == 5 and names[-1] == "compare"
    assert result["pruner_runs"] == ["o1-pruner", "o1-pruner-round2"]
    assert result["compare"] == "o1p compare: done\ncompare table\n"
    assert (tmp_path / "task" / "test_n3.jsonl").is_file()

    rerun = []
    pipeline.run_demo(tmp_path, size="ci", log=rerun.append)
    assert sum("done earlier, skipped" in line for line in rerun) == 17


def test_marker_keys_are_unchanged():
    ctx = pipeline.DemoContext(
        Path("w"), pipeline.SIZES["ci"], pipeline.DemoRecipe(), runner=None, stages=None
    )
    # changed once, on purpose, when the recipe gained o1p_ratio and o1p_epsilon_high (the
    # ablation's knobs): a cached workdir reruns its pruning stages, never the base model
    assert fingerprint(ctx.settings) == "5c6f7c6ff07ce312"
    assert fingerprint(ctx.base_settings) == "95a1ca17a687bf3f"


def test_stages_rerun_on_other_settings_and_runner_reports_failures(tmp_path, monkeypatch):
    ran = []
    for settings in ({"a": 1}, {"a": 1}, {"a": 2}):
        Stages(tmp_path, log=lambda line: None).run("s", settings, lambda: ran.append(1))
    assert len(ran) == 2
    assert json.loads((tmp_path / ".stages" / "s.json").read_text())["settings"] == {"a": 2}

    class Failing(_FakeO1p):
        def wait(self):
            return 3

    monkeypatch.setattr(subprocess, "Popen", Failing)
    with pytest.raises(SetupError, match=r"demo stage failed \(exit 3\): o1p evaluate --x 1"):
        Runner(tmp_path, log=lambda line: None).o1p("evaluate", "--x", 1)
