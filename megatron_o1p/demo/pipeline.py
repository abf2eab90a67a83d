"""The embedded demo: the whole O1-Pruner pipeline on a tiny long-thought model (CPU, minutes).

    o1p demo [--workdir runs/demo] [--size full|ci]

Every stage is the real `o1p` command a user would run, as a subprocess, writing files the
next stage reads (see the README's pipeline table):

 1. task         synthetic addition problems and long-thought SFT traces (`demo/task.py`)
 2. base model   random tiny Qwen2 -> `o1p convert hf-to-mcore` -> `o1p train --loss sft`
                 -> `o1p convert mcore-to-hf`: the "long-thought" reference model (cached)
 3. sample       `o1p sample`, K samples per training problem (vLLM)
 4. grade        `o1p grade`; `o1p analyze` prints the length-disharmony table (paper Table 1)
 5. dataset      `o1p build-dataset` (R_LH, plus the SFT and DPO baseline files)
 6. ref          `o1p ref-logprobs` for the O1-Pruner and DPO datasets
 7. train        `torchrun --nproc-per-node 2 ... o1p train --loss o1-pruner` (TP=2), and the
                 SFT-on-2-shortest and DPO baselines, each converted back to HF
 8. evaluate     `o1p evaluate` greedy on a held-out test set split by difficulty (d2..d5)
                 and sampled (T=1) for the base and O1-Pruner models
 9. compare      `o1p compare`: the paper's Table 2 (Acc, Length, AES) per difficulty

A stage whose output is complete is skipped on a rerun (its marker file records the settings
it ran with), so a second `o1p demo` skips the base model's training, and a demo killed
half-way resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from megatron_o1p.demo import task as demo_task
from megatron_o1p.errors import SetupError


@dataclass(frozen=True)
class DemoSize:
    """Everything that scales the demo's cost. `full` is the README's demo; `ci` only checks
    that every stage runs and writes its files."""

    sft_traces: int = 40000
    base_iters: int = 800
    train_problems: int = 384
    num_samples: int = 8
    test_per_level: int = 250
    sampled_eval: bool = True
    task: demo_task.TaskConfig = field(default_factory=demo_task.TaskConfig)
    global_batch: int = 48


SIZES = {
    "full": DemoSize(),
    # 2-3 terms, so that a base model trained for seconds already solves some of its samples
    # (the SFT and DPO baselines need correct samples to exist).
    "ci": DemoSize(
        sft_traces=2560,
        base_iters=80,
        train_problems=48,
        num_samples=4,
        test_per_level=8,
        sampled_eval=False,
        task=demo_task.TaskConfig(min_terms=2, max_terms=3, careless_from_term=2),
        global_batch=32,
    ),
}


@dataclass(frozen=True)
class DemoRecipe:
    """Hyper-parameters of the demo's runs (the model and task are tiny; see the README)."""

    layers: int = 4
    hidden: int = 128
    seq_length: int = 256
    base_lr: float = 3e-3
    sample_temperature: float = 1.0
    lam: float = 2.0
    o1p_lr: float = 5e-5
    o1p_epochs: int = 2
    sft_lr: float = 1e-4
    dpo_lr: float = 5e-5
    baseline_epochs: int = 2
    rounds: int = 2
    """O1-Pruner rounds: each re-samples from the last pruned model, which becomes the new
    reference (one round moves each token's probability by at most the clip range)."""
    micro_batch: int = 16
    seed: int = 0


class Runner:
    """Runs `o1p` commands as subprocesses, logging everything, echoing progress lines."""

    def __init__(self, workdir: Path, log=print):
        self.workdir = workdir
        self.log = log
        self.log_path = workdir / "demo.log"

    def o1p(self, *args, nproc: int = 1) -> str:
        if nproc > 1:
            head = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
            cmd = head + ["--nproc-per-node", str(nproc), "-m", "megatron_o1p", *args]
        else:
            cmd = [sys.executable, "-m", "megatron_o1p", *args]
        cmd = [str(c) for c in cmd]
        shown = " ".join(cmd).replace(sys.executable + " -m torch.distributed.run", "torchrun")
        shown = shown.replace(sys.executable + " -m megatron_o1p", "o1p")
        self.log(f"  $ {shown}")
        threads = (
            "1"
            if nproc > 1
            else os.environ.get("OMP_NUM_THREADS", str(min(2, os.cpu_count() or 1)))
        )
        env = dict(
            os.environ,
            OMP_NUM_THREADS=threads,
            HF_HUB_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            PYTHONWARNINGS="ignore",
        )
        out_lines = []
        with self.log_path.open("a") as log_file:
            log_file.write(f"\n$ {shown}\n")
            log_file.flush()
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log_file, text=True, env=env, bufsize=1
            )
            for line in proc.stdout:
                log_file.write(line)
                out_lines.append(line)
                if _is_progress(line):
                    self.log("    " + line.rstrip())
            code = proc.wait()
        if code:
            raise SetupError(
                f"demo stage failed (exit {code}): {shown}; see {self.log_path} for its output"
            )
        return "".join(out_lines)


def _is_progress(line: str) -> bool:
    text = line.strip()
    return text.startswith(("iteration", "o1p ", "|", "step-0", "truncated")) or "PASS" in text


def _fingerprint(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Stages:
    """Stage bookkeeping: a stage is done when its marker holds the same settings."""

    def __init__(self, workdir: Path, log):
        self.workdir, self.log = workdir, log
        self.count, self.total = 0, 0
        self.times: dict[str, float] = {}

    def run(self, name: str, settings: dict, body) -> None:
        self.count += 1
        marker = self.workdir / ".stages" / f"{name}.json"
        key = _fingerprint(settings)
        if marker.is_file() and json.loads(marker.read_text()).get("key") == key:
            self.log(f"[{self.count}/{self.total}] {name}: done earlier, skipped")
            return
        self.log(f"[{self.count}/{self.total}] {name}")
        start = time.perf_counter()
        body()
        seconds = time.perf_counter() - start
        self.times[name] = seconds
        marker.parent.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "settings": settings, "seconds": seconds}))
        tmp.replace(marker)
        self.log(f"    {name}: {seconds:.0f} s")


def run_demo(workdir: Path, size: str = "full", log=print) -> dict:
    """Run every stage in `workdir`; returns the comparison rows and paths of the outputs."""
    sz, rc = SIZES[size], DemoRecipe()
    workdir.mkdir(parents=True, exist_ok=True)
    run = Runner(workdir, log)
    stages = Stages(workdir, log)
    stages.total = 2 + 5 * rc.rounds + 1 + 2 + 2
    names = ("task", "base", "runs", "eval", *(f"round{r}" for r in range(1, rc.rounds + 1)))
    w = {name: workdir / name for name in names}
    settings = {"size": asdict(sz), "recipe": asdict(rc)}
    # the task and the base model depend on these only: changing a pruning setting reruns
    # everything after the base model, and never retrains it
    base_keys = ("layers", "hidden", "seq_length", "base_lr", "micro_batch", "seed")
    base_settings = {
        "size": {k: v for k, v in asdict(sz).items() if k in ("task", "sft_traces", "base_iters",
                                                                "global_batch", "test_per_level")},
        "recipe": {k: getattr(rc, k) for k in base_keys},
    }  # fmt: skip
    base_hf, base_mcore = w["base"] / "hf", w["base"] / "mcore"
    levels = range(sz.task.min_terms, sz.task.max_terms + 1)
    test_files = {f"n{k}": w["task"] / f"test_n{k}.jsonl" for k in levels}

    def make_task():
        tok = demo_task.build_tokenizer()
        train = demo_task.make_problems(sz.train_problems, sz.task, seed=rc.seed + 1)
        demo_task.write_jsonl(train, w["task"] / "train_problems.jsonl")
        test = demo_task.make_problems(sz.test_per_level * len(test_files), sz.task, seed=99)
        for name, path in test_files.items():
            demo_task.write_jsonl([p for p in test if p["difficulty"] == name], path)
        sft = demo_task.make_problems(sz.sft_traces, sz.task, seed=rc.seed + 2)
        rows = demo_task.sft_rows(sft, sz.task, seed=rc.seed + 3, tokenizer=tok)
        _write_parquet(rows, w["task"] / "long_thought_sft.parquet")

    stages.run("task", base_settings, make_task)

    def train_base():
        init_hf, init_mcore = w["base"] / "init_hf", w["base"] / "init_mcore"
        for path in (init_hf, init_mcore, w["base"] / "sft_run", base_hf, base_mcore):
            shutil.rmtree(path, ignore_errors=True)
        demo_task.build_base_model(init_hf, layers=rc.layers, hidden=rc.hidden, seed=rc.seed)
        run.o1p("convert", "hf-to-mcore", "--hf-dir", init_hf, "--out", init_mcore)
        run.o1p(
            "train", "--loss", "sft", "--load", init_mcore, "--save", w["base"] / "sft_run",
            "--data", w["task"] / "long_thought_sft.parquet", "--seq-length", rc.seq_length,
            "--micro-batch-size", rc.micro_batch, "--global-batch-size", sz.global_batch,
            "--lr", rc.base_lr, "--min-lr", rc.base_lr / 30, "--lr-warmup-fraction", 0.03,
            "--weight-decay", 0.01, "--train-iters", sz.base_iters, "--log-interval", 40,
            "--seed", rc.seed,
        )  # fmt: skip
        run.o1p("convert", "mcore-to-hf", "--mcore-dir", w["base"] / "sft_run", "--out", base_hf)
        run.o1p("convert", "hf-to-mcore", "--hf-dir", base_hf, "--out", base_mcore)
        shutil.rmtree(init_mcore)

    stages.run("base model (long-thought SFT)", base_settings, train_base)

    reference = (base_hf, base_mcore)
    for rnd in range(1, rc.rounds + 1):
        reference = _prune_round(run, stages, settings, w, sz, rc, rnd, reference)

    def baseline(name: str, loss: str, path: Path, lr: float):
        _train(run, w["runs"] / name, loss, base_mcore, path, lr, rc.baseline_epochs, sz, rc)

    data1 = w["round1"] / "data"
    stages.run(
        "train sft-shortest (baseline)",
        settings,
        lambda: baseline("sft-shortest", "sft", data1 / "sft.parquet", rc.sft_lr),
    )
    stages.run("train dpo (baseline)", settings,
               lambda: baseline("dpo", "dpo", data1 / "dpo.parquet", rc.dpo_lr))  # fmt: skip

    models = {"baseline": base_hf}
    for name in ("sft-shortest", "dpo", *_pruner_names(rc)):
        models[name] = w["runs"] / name / "hf"
    benchmarks = [f"{name}={path}" for name, path in test_files.items()]

    def evaluate():
        for name, model in models.items():
            _evaluate(run, model, benchmarks, w["eval"] / name, rc)
        if sz.sampled_eval:
            for name in ("baseline", _pruner_names(rc)[-1]):
                _evaluate(run, models[name], benchmarks, w["eval"] / f"{name}-T1", rc, T=1.0)

    stages.run("evaluate", settings, evaluate)

    def compare():
        runs = [w["eval"] / n for n in models if n != "baseline"]
        out = run.o1p(
            "compare", "--baseline", w["eval"] / "baseline", *runs, "--out", workdir / "compare"
        )
        (workdir / "compare" / "table.txt").write_text(out)

    stages.run("compare", settings, compare)
    return {
        "disharmony": (w["round1"] / "analysis" / "table.txt").read_text(),
        "compare": (workdir / "compare" / "table.txt").read_text(),
        "eval_dir": w["eval"],
        "pruner_runs": _pruner_names(rc),
        "stage_seconds": stages.times,
    }


def _pruner_names(rc: DemoRecipe) -> list[str]:
    return ["o1-pruner"] + [f"o1-pruner-round{r}" for r in range(2, rc.rounds + 1)]


def _prune_round(run, stages, settings, w, sz, rc, rnd: int, reference) -> tuple[Path, Path]:
    """One O1-Pruner round from `reference` (HF dir, megatron dir): sample, grade, build the
    R_LH dataset, reference log-probs, train at TP=2. Returns the pruned model as the next
    round's reference (re-converted, so the next run starts fresh rather than resuming)."""
    ref_hf, ref_mcore = reference
    rd = w[f"round{rnd}"]
    rollouts, graded, data = rd / "rollouts", rd / "graded", rd / "data" / "train.parquet"
    tag = f" (round {rnd})" if rc.rounds > 1 else ""

    stages.run(f"sample{tag}", settings, lambda: run.o1p(
        "sample", "--model", ref_hf, "--problems", w["task"] / "train_problems.jsonl",
        "--id-field", "id", "--out", rollouts, "--num-samples", sz.num_samples,
        "--temperature", rc.sample_temperature, "--top-p", 1.0, "--max-tokens",
        rc.seq_length - 16, "--seed", rc.seed + rnd, "--max-model-len", rc.seq_length,
        "--overwrite",
    ))  # fmt: skip

    def grade():
        from megatron_o1p.data.shards import read_shards

        run.o1p("grade", rollouts, graded)
        if not any(read_shards(graded, columns=["correct"]).column("correct").to_pylist()):
            raise SetupError(
                f"the model {ref_hf} solved none of its samples, so there is nothing to prune "
                "towards; train the base model longer"
            )

    stages.run(f"grade{tag}", settings, grade)
    if rnd == 1:

        def analyze():
            out = run.o1p("analyze", "--rollouts", graded, "--out", rd / "analysis")
            (rd / "analysis" / "table.txt").write_text(out)

        stages.run("analyze (length disharmony)", settings, analyze)

    def build():
        shutil.rmtree(data.parent, ignore_errors=True)
        run.o1p(
            "build-dataset", "--rollouts", graded, "--out", data, "--lambda", rc.lam,
            "--rows-per-problem", "all", "--seed", rc.seed,
        )  # fmt: skip

    stages.run(f"build-dataset{tag}", settings, build)

    def ref_logprobs():
        # the DPO baseline needs reference sums too (round 1 only: baselines prune once)
        for path in (data, *([data.parent / "dpo.parquet"] if rnd == 1 else [])):
            run.o1p(
                "ref-logprobs", "--load", ref_mcore, "--data", path,
                "--seq-length", rc.seq_length, "--micro-batch-size", rc.micro_batch,
                *(["--rollouts", rollouts] if path == data else []),
            )  # fmt: skip

    stages.run(f"ref-logprobs{tag}", settings, ref_logprobs)
    out = w["runs"] / _pruner_names(rc)[rnd - 1]

    def train():
        _train(run, out, "o1-pruner", ref_mcore, data, rc.o1p_lr, rc.o1p_epochs, sz, rc, tp=2)
        if rnd < rc.rounds:
            run.o1p("convert", "hf-to-mcore", "--hf-dir", out / "hf", "--out", out / "ref_mcore")

    stages.run(f"train o1-pruner{tag}, TP=2", settings, train)
    return out / "hf", out / "ref_mcore"


def _train(run, out: Path, loss, load, data, lr, epochs, sz, rc, tp: int = 1) -> None:
    """`o1p train` from `load` into `out/mcore`, then `out/hf`. A DPO row is a pair, so
    half the rows per batch keep the sequences per step equal; a dataset smaller than a
    batch (the reduced `ci` size) trains on what there is."""
    import pyarrow.parquet as pq

    shutil.rmtree(out, ignore_errors=True)
    pairs = 2 if loss == "dpo" else 1
    rows = pq.ParquetFile(data).metadata.num_rows
    global_batch = min(sz.global_batch // pairs, rows)
    micro_batch = min(rc.micro_batch // pairs, global_batch)
    global_batch -= global_batch % micro_batch
    run.o1p(
        "train", "--loss", loss, "--load", load, "--data", data, "--save", out / "mcore",
        "--tensor-model-parallel-size", tp, "--micro-batch-size", micro_batch,
        "--global-batch-size", global_batch, "--seq-length", rc.seq_length,
        "--lr", lr, "--min-lr", 0, "--lr-warmup-fraction", 0.1, "--train-epochs", epochs,
        "--log-interval", 10, "--seed", rc.seed, nproc=tp,
    )  # fmt: skip
    run.o1p("convert", "mcore-to-hf", "--mcore-dir", out / "mcore", "--out", out / "hf")


def _evaluate(run: Runner, model: Path, benchmarks, out: Path, rc: DemoRecipe, T: float = 0.0):
    args = ["evaluate", "--model", model, "--out", out, "--max-tokens", rc.seq_length - 16]
    for bench in benchmarks:
        args += ["--benchmark", bench]
    if T:
        args += ["--temperature", T, "--num-samples", 1, "--seed", rc.seed]
    run.o1p(*args, "--max-model-len", rc.seq_length, "--overwrite")


def _write_parquet(rows: list[dict], path: Path) -> None:
    import pyarrow as pa

    from megatron_o1p.data.shards import write_file_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomic(pa.Table.from_pylist(rows), path)
