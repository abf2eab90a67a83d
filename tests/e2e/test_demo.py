"""`o1p demo --size ci`: every stage of the pipeline runs and writes its files, and a rerun
skips them all. (Whether the tiny run is *good* is measured by the full demo, not here.)"""

from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest

from tests.helpers.run import run_o1p

pytestmark = pytest.mark.slow


def test_demo_ci_size_runs_every_stage_and_resumes(tmp_path):
    workdir = tmp_path / "demo"
    proc = run_o1p("demo", "--size", "ci", "--workdir", workdir, timeout=1500)
    out = proc.stdout

    # every stage's output, as the next stage reads it
    assert (workdir / "task" / "train_problems.jsonl").is_file()
    assert (workdir / "base" / "hf" / "model.safetensors").is_file()
    assert (workdir / "base" / "mcore" / "o1p_checkpoint.json").is_file()
    for rnd in ("round1", "round2"):  # round 2 samples from round 1's pruned model
        assert list((workdir / rnd / "rollouts").glob("part-*.parquet"))
        graded = pq.read_table(next((workdir / rnd / "graded").glob("part-*.parquet")))
        assert "correct" in graded.column_names
        train = pq.read_table(workdir / rnd / "data" / "train.parquet")
        assert {"advantage", "ref_logprobs"} <= set(train.column_names)
    assert (workdir / "round1" / "analysis" / "summary.csv").is_file()
    dpo = pq.read_table(workdir / "round1" / "data" / "dpo.parquet")
    assert "ref_chosen_logprob" in dpo.column_names
    methods = ["baseline", "sft-shortest", "dpo", "o1-pruner", "o1-pruner-round2"]
    for run in methods[1:]:
        assert (workdir / "runs" / run / "hf" / "model.safetensors").is_file(), run
        tracker = workdir / "runs" / run / "mcore" / "latest_checkpointed_iteration.txt"
        assert int(tracker.read_text()) > 0
    for name in methods:
        summary = json.loads((workdir / "eval" / name / "summary.json").read_text())
        assert summary["benchmarks"], name
    assert (workdir / "compare" / "compare.csv").is_file()

    # the printed Table 2: one row per method, accuracy/length/AES cells are numbers
    table = out.split("Greedy evaluation on the held-out test set")[1]
    rows = [ln for ln in table.splitlines() if ln.startswith("|") and "---" not in ln]
    assert [ln.split("|")[1].strip() for ln in rows[1:]] == methods, out
    for line in rows[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")[1:]]
        assert cells and all(re.fullmatch(r"-?[0-9.]+%?|nan|-", c) for c in cells), line
    assert "demo: all stages ran" in out

    stages = len(re.findall(r"^\[\d+/\d+\] ", out, flags=re.M))
    rerun = run_o1p("demo", "--size", "ci", "--workdir", workdir, timeout=600)
    assert rerun.stdout.count("done earlier, skipped") == stages, rerun.stdout
