"""demo/pipeline.py wiring, with every `o1p` subprocess faked: the stages run in order, each
command is the one a user would type, a rerun skips every stage, and the stage markers keep
the keys that earlier versions wrote (else a rerun after an upgrade would redo everything)."""

import json
import subprocess
from pathlib import Path

import pytest

from megatron_o1p.demo import pipeline
from megatron_o1p.demo.runner import Runner, Stages, fingerprint
from megatron_o1p.errors import SetupError
from tests.unit.demo.fake_o1p import FakeO1p


def test_every_stage_runs_once_then_a_rerun_skips_them(tmp_path, fake_o1p):
    log = []
    result = pipeline.run_demo(tmp_path, size="ci", log=log.append)
    rounds = pipeline.DemoRecipe().rounds
    total = 6 * rounds + 6  # task, base; per round (convert,) sample, grade, build, ref, train;
    # analyze; 2 baselines; evaluate, compare
    stages = [line for line in log if line.startswith("[")]
    assert len(stages) == total and stages[0] == f"[1/{total}] task"
    assert stages[-1] == f"[{total}/{total}] compare"
    names = [" ".join(a[:2]) if a[0] == "convert" else a[0] for a in fake_o1p]
    # the base model: init -> megatron, SFT, -> HF, -> megatron again (a fresh reference)
    assert names[:4] == [
        "convert hf-to-mcore",
        "train",
        "convert mcore-to-hf",
        "convert hf-to-mcore",
    ]
    assert names.count("sample") == rounds and names[-1] == "compare"
    assert names.count("evaluate") == 3 + rounds  # baseline, SFT, DPO and every round
    # round 2 samples the model round 1 trained, converted to megatron before its ref-logprobs
    round2 = names.index("sample", names.index("sample") + 1)
    assert names[round2 - 1] == "convert hf-to-mcore"
    assert fake_o1p[round2 - 1][3] == str(tmp_path / "runs" / "o1-pruner" / "hf")
    assert result["pruner_runs"] == ["o1-pruner"] + [
        f"o1-pruner-round{r}" for r in range(2, rounds + 1)
    ]
    assert result["compare"] == "o1p compare: done\ncompare table\n"
    assert (tmp_path / "task" / "test_n3.jsonl").is_file()

    rerun = []
    pipeline.run_demo(tmp_path, size="ci", log=rerun.append)
    assert sum("done earlier, skipped" in line for line in rerun) == total


def test_one_more_round_runs_only_that_round_and_the_comparison(tmp_path, fake_o1p):
    two, three = (pipeline.DemoRecipe(rounds=n) for n in (2, 3))
    pipeline.run_demo(tmp_path, size="ci", log=lambda line: None, recipe=two)
    fake_o1p.clear()
    log = []
    pipeline.run_demo(tmp_path, size="ci", log=log.append, recipe=three)
    ran = [line.split("] ", 1)[1] for line in log if line.startswith("[") and "skipped" not in line]
    assert ran == [
        "convert the reference (round 3)",
        "sample (round 3)",
        "grade (round 3)",
        "build-dataset (round 3)",
        "ref-logprobs (round 3)",
        "train o1-pruner (round 3), TP=2",
        "evaluate",
        "compare",
    ]


def test_marker_keys_are_unchanged():
    ctx = pipeline.DemoContext(
        Path("w"), pipeline.SIZES["ci"], pipeline.DemoRecipe(), runner=None, stages=None
    )
    # changed on purpose twice: when the recipe gained o1p_ratio and o1p_epsilon_high (the
    # ablation's knobs), and when `rounds` left the rounds' settings (a round does not depend
    # on how many follow); a cached workdir reruns its pruning stages, never the base model
    assert fingerprint(ctx.settings) == "f6e3082dd860bcbd"
    assert fingerprint(ctx.base_settings) == "95a1ca17a687bf3f"


def test_stages_rerun_on_other_settings_and_runner_reports_failures(tmp_path, monkeypatch):
    ran = []
    for settings in ({"a": 1}, {"a": 1}, {"a": 2}):
        Stages(tmp_path, log=lambda line: None).run("s", settings, lambda: ran.append(1))
    assert len(ran) == 2
    assert json.loads((tmp_path / ".stages" / "s.json").read_text())["settings"] == {"a": 2}

    class Failing(FakeO1p):
        def wait(self):
            return 3

    monkeypatch.setattr(subprocess, "Popen", Failing)
    with pytest.raises(SetupError, match=r"demo stage failed \(exit 3\): o1p evaluate --x 1"):
        Runner(tmp_path, log=lambda line: None).o1p("evaluate", "--x", 1)


def test_a_stage_resumes_its_outputs_under_the_same_settings_and_clears_them_under_others(
    tmp_path,
):
    out = tmp_path / "rollouts"
    seen = []

    def sample(fail=False):
        seen.append(sorted(p.name for p in out.glob("*")))
        out.mkdir(exist_ok=True)
        (out / f"shard{len(seen)}").touch()
        if fail:
            raise KeyboardInterrupt  # killed half-way: the marker says started, not done

    stages = Stages(tmp_path, log=lambda line: None)
    with pytest.raises(KeyboardInterrupt):
        stages.run("sample", {"lr": 1}, lambda: sample(fail=True), outputs=[out])
    stages.run("sample", {"lr": 1}, sample, outputs=[out])  # resumes what is there
    stages.run("sample", {"lr": 1}, sample, outputs=[out])  # done: skipped
    stages.run("sample", {"lr": 2}, sample, outputs=[out])  # another model: starts clean
    assert seen == [[], ["shard1"], []]
    assert json.loads((tmp_path / ".stages" / "sample.json").read_text())["done"] is True
