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

import dataclasses
import functools
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

from megatron_o1p.atomic import write_text
from megatron_o1p.demo import task as demo_task
from megatron_o1p.demo.runner import Runner, Stages
from megatron_o1p.demo.settings import SIZES, DemoRecipe, DemoSize
from megatron_o1p.errors import SetupError

# The task and the base model depend on these settings only: changing a pruning setting reruns
# everything after the base model, and never retrains it.
_BASE_SIZE_KEYS = ("task", "sft_traces", "base_iters", "global_batch", "test_per_level")
_BASE_RECIPE_KEYS = ("layers", "hidden", "seq_length", "base_lr", "micro_batch", "seed")


class ModelDirs(NamedTuple):
    """One model in both formats: an HF folder (vLLM samples from it) and a megatron one."""

    hf: Path
    mcore: Path


@dataclass(frozen=True)
class DemoContext:
    """What every stage of one demo run reads: how to run commands, the stage markers, the
    settings, and where each stage writes (`workdir/task`, `base`, `roundN`, `runs`, `eval`)."""

    workdir: Path
    size: DemoSize
    recipe: DemoRecipe
    runner: Runner
    stages: Stages
    shared: Path | None = None
    """Where the task and the base model live when not in `workdir` (an ablation variant
    reuses the demo's)."""
    train_base: bool = False
    """Train the base model even where the shipped one fits (`demo/shipped_base.py`)."""

    @property
    def settings(self) -> dict:
        """The marker settings of every stage after the base model: all of size and recipe
        but the number of rounds (a round does not depend on how many follow it, so raising
        `rounds` runs only the new rounds)."""
        recipe = {k: v for k, v in asdict(self.recipe).items() if k != "rounds"}
        return {"size": asdict(self.size), "recipe": recipe}

    @property
    def all_settings(self) -> dict:
        """The marker settings of the stages that read every round's model."""
        return self.settings | {"rounds": self.recipe.rounds}

    @property
    def base_settings(self) -> dict:
        """The marker settings of the task and the base model (`_BASE_*_KEYS` only)."""
        return {
            "size": {k: v for k, v in asdict(self.size).items() if k in _BASE_SIZE_KEYS},
            "recipe": {k: getattr(self.recipe, k) for k in _BASE_RECIPE_KEYS},
        }

    def stage(self, name: str, body, *, settings: dict | None = None, outputs=()) -> None:
        """Run stage `name` (skipped when done with the same settings; default: all);
        `outputs`: folders removed first when it last ran with other settings."""
        settings = self.settings if settings is None else settings
        self.stages.run(name, settings, body, outputs=outputs)

    @property
    def task_dir(self) -> Path:
        return (self.shared or self.workdir) / "task"

    @property
    def base(self) -> ModelDirs:
        """The long-thought base model, the first round's reference."""
        base = (self.shared or self.workdir) / "base"
        return ModelDirs(base / "hf", base / "mcore")

    @property
    def runs_dir(self) -> Path:
        return self.workdir / "runs"

    @property
    def eval_dir(self) -> Path:
        return self.workdir / "eval"

    def round_dir(self, number: int) -> Path:
        return self.workdir / f"round{number}"

    @property
    def test_files(self) -> dict[str, Path]:
        """Held-out problems by difficulty: `nK` = K terms."""
        levels = range(self.size.task.min_terms, self.size.task.max_terms + 1)
        return {f"n{k}": self.task_dir / f"test_n{k}.jsonl" for k in levels}

    @property
    def pruner_names(self) -> list[str]:
        """The O1-Pruner runs, one per round."""
        return ["o1-pruner"] + [f"o1-pruner-round{r}" for r in range(2, self.recipe.rounds + 1)]


@dataclass(frozen=True)
class PruneRound:
    """One O1-Pruner round: its number, its folder, the model it prunes and its output run."""

    number: int
    directory: Path
    reference: ModelDirs
    out: Path
    """`runs/<name>`: the pruned model (`mcore/`, `hf/`)."""
    tag: str
    """Appended to the names of its stages."""

    @property
    def rollouts(self) -> Path:
        return self.directory / "rollouts"

    @property
    def graded(self) -> Path:
        return self.directory / "graded"

    @property
    def data(self) -> Path:
        """The R_LH dataset; sft.parquet and dpo.parquet lie beside it."""
        return self.directory / "data" / "train.parquet"


def run_demo(
    workdir: Path,
    size: str = "full",
    log=print,
    train_base: bool = False,
    recipe: DemoRecipe | None = None,
) -> dict:
    """Run every stage in `workdir`; returns the comparison rows and paths of the outputs.
    `recipe`: the demo's own (`DemoRecipe()`) unless given."""
    demo_size, recipe = SIZES[size], recipe or DemoRecipe()
    workdir.mkdir(parents=True, exist_ok=True)
    # task, base; per round: (convert,) sample, grade, build, ref, train; analyze; 2 baselines;
    # evaluate, compare
    stages = Stages(workdir, log, total=6 * recipe.rounds + 6)
    runner = Runner(workdir, log)
    ctx = DemoContext(workdir, demo_size, recipe, runner, stages, train_base=train_base)
    prepare_base(ctx)
    reference = ctx.base
    for number in range(1, recipe.rounds + 1):
        reference = prune_round(ctx, number, reference)
    _train_baselines(ctx)
    models = {"baseline": ctx.base.hf}
    for name in ("sft-shortest", "dpo", *ctx.pruner_names):
        models[name] = ctx.runs_dir / name / "hf"
    evaluate = functools.partial(_evaluate_all, ctx, models)
    ctx.stage("evaluate", evaluate, settings=ctx.all_settings, outputs=[ctx.eval_dir])
    ctx.stage("compare", functools.partial(_compare, ctx, models), settings=ctx.all_settings)
    return {
        "disharmony": (ctx.round_dir(1) / "analysis" / "table.txt").read_text(),
        "compare": (workdir / "compare" / "table.txt").read_text(),
        "eval_dir": ctx.eval_dir,
        "pruner_runs": ctx.pruner_names,
        "task": demo_size.task,
        "stage_seconds": stages.times,
    }


def prepare_base(ctx: DemoContext) -> None:
    """The task files and the long-thought base model (cached: pruning settings never
    retrain it)."""
    ctx.stage("task", functools.partial(_make_task, ctx), settings=ctx.base_settings)
    ctx.stage(
        "base model (long-thought SFT)",
        functools.partial(_make_base, ctx),
        settings=ctx.base_settings | ({"trained_here": True} if ctx.train_base else {}),
    )


def _options(flags: dict) -> list:
    """{"--flag": value, ...} as the argument list `--flag value ...`, in order."""
    return [item for pair in flags.items() for item in pair]


# --------------------------------------------------------------------------- task, base model


def _make_task(ctx: DemoContext) -> None:
    """Training problems, held-out test problems per difficulty, and the long-thought SFT set."""
    size, seed = ctx.size, ctx.recipe.seed
    tokenizer = demo_task.build_tokenizer()
    train = demo_task.make_problems(size.train_problems, size.task, seed=seed + 1)
    demo_task.write_jsonl(train, ctx.task_dir / "train_problems.jsonl")
    test_files = ctx.test_files
    test = demo_task.make_problems(size.test_per_level * len(test_files), size.task, seed=99)
    for name, path in test_files.items():
        demo_task.write_jsonl([p for p in test if p["difficulty"] == name], path)
    sft = demo_task.make_problems(size.sft_traces, size.task, seed=seed + 2)
    rows = demo_task.sft_rows(sft, size.task, seed=seed + 3, tokenizer=tokenizer)
    _write_parquet(rows, ctx.task_dir / "long_thought_sft.parquet")


def _make_base(ctx: DemoContext) -> None:
    """The shipped base model where it was trained with these settings, else train one."""
    from megatron_o1p.demo.shipped_base import copy_shipped, shipped_base_for

    shipped = None if ctx.train_base else shipped_base_for(ctx.base_settings)
    if shipped is None:
        _train_base(ctx)
        return
    ctx.runner.log(f"    using the shipped base model ({shipped.name}/; --train-base retrains)")
    shutil.rmtree(ctx.base.mcore, ignore_errors=True)
    copy_shipped(shipped, ctx.base.hf)
    ctx.runner.o1p("convert", "hf-to-mcore", "--hf-dir", ctx.base.hf, "--out", ctx.base.mcore)


def _train_base(ctx: DemoContext) -> None:
    """A random Qwen2 -> megatron -> SFT on the long-thought traces -> HF and megatron."""
    recipe, base = ctx.recipe, ctx.base
    init_hf, init_mcore = ctx.workdir / "base" / "init_hf", ctx.workdir / "base" / "init_mcore"
    sft_run = ctx.workdir / "base" / "sft_run"
    for path in (init_hf, init_mcore, sft_run, base.hf, base.mcore):
        shutil.rmtree(path, ignore_errors=True)
    demo_task.build_base_model(
        init_hf, layers=recipe.layers, hidden=recipe.hidden, seed=recipe.seed
    )
    run = ctx.runner.o1p
    run("convert", "hf-to-mcore", "--hf-dir", init_hf, "--out", init_mcore)
    train_flags = {
        "--loss": "sft",
        "--load": init_mcore,
        "--save": sft_run,
        "--data": ctx.task_dir / "long_thought_sft.parquet",
        "--seq-length": recipe.seq_length,
        "--micro-batch-size": recipe.micro_batch,
        "--global-batch-size": ctx.size.global_batch,
        "--lr": recipe.base_lr,
        "--min-lr": recipe.base_lr / 30,
        "--lr-warmup-fraction": 0.03,
        "--weight-decay": 0.01,
        "--train-iters": ctx.size.base_iters,
        "--log-interval": 40,
        "--seed": recipe.seed,
    }
    run("train", *_options(train_flags))
    run("convert", "mcore-to-hf", "--mcore-dir", sft_run, "--out", base.hf)
    run("convert", "hf-to-mcore", "--hf-dir", base.hf, "--out", base.mcore)
    shutil.rmtree(init_mcore)


# --------------------------------------------------------------------------- pruning rounds


def prune_round(
    ctx: DemoContext, number: int, reference: ModelDirs, data: PruneRound | None = None
) -> ModelDirs:
    """One O1-Pruner round from `reference`: sample, grade, build the R_LH dataset, reference
    log-probs (`collect_round`), train at TP=2. Returns the pruned model, the next round's
    reference (whose megatron copy the next round converts from its HF folder, so its
    training starts fresh rather than resuming).

    `data`: a round another run collected, to train on instead (an ablation variant's first
    round trains on the demo's: the same samples of the same base model, since a variant
    changes training only)."""
    rnd = data or collect_round(ctx, number, reference)
    rnd = dataclasses.replace(rnd, out=ctx.runs_dir / ctx.pruner_names[number - 1])
    train = functools.partial(_train_pruner, ctx, rnd)
    ctx.stage(f"train o1-pruner{_round_tag(number)}, TP=2", train)
    return ModelDirs(rnd.out / "hf", rnd.out / "ref_mcore")


def collect_round(ctx: DemoContext, number: int, reference: ModelDirs) -> PruneRound:
    """A round's data: samples from its reference, graded, scored, with reference log-probs."""
    rnd = PruneRound(
        number=number,
        directory=ctx.round_dir(number),
        reference=reference,
        out=ctx.runs_dir / ctx.pruner_names[number - 1],
        tag=_round_tag(number),
    )
    if number > 1:
        convert = functools.partial(_reference_to_mcore, ctx, reference)
        ctx.stage(f"convert the reference{rnd.tag}", convert)
    ctx.stage(f"sample{rnd.tag}", functools.partial(_sample, ctx, rnd), outputs=[rnd.rollouts])
    ctx.stage(f"grade{rnd.tag}", functools.partial(_grade, ctx, rnd), outputs=[rnd.graded])
    if number == 1:
        ctx.stage("analyze (length disharmony)", functools.partial(_analyze, ctx, rnd))
    ctx.stage(f"build-dataset{rnd.tag}", functools.partial(_build_dataset, ctx, rnd))
    ctx.stage(f"ref-logprobs{rnd.tag}", functools.partial(_ref_logprobs, ctx, rnd))
    return rnd


def _round_tag(number: int) -> str:
    return f" (round {number})"


def _reference_to_mcore(ctx: DemoContext, reference: ModelDirs) -> None:
    shutil.rmtree(reference.mcore, ignore_errors=True)
    ctx.runner.o1p("convert", "hf-to-mcore", "--hf-dir", reference.hf, "--out", reference.mcore)


def _sample(ctx: DemoContext, rnd: PruneRound) -> None:
    recipe = ctx.recipe
    sample_flags = {
        "--model": rnd.reference.hf,
        "--problems": ctx.task_dir / "train_problems.jsonl",
        "--id-field": "id",
        "--out": rnd.rollouts,
        "--num-samples": ctx.size.num_samples,
        "--temperature": recipe.sample_temperature,
        "--top-p": 1.0,
        "--max-tokens": recipe.seq_length - 16,
        "--seed": recipe.seed + rnd.number,
        "--max-model-len": recipe.seq_length,
    }
    ctx.runner.o1p("sample", *_options(sample_flags), "--overwrite")


def _grade(ctx: DemoContext, rnd: PruneRound) -> None:
    from megatron_o1p.data.shards import read_shards

    ctx.runner.o1p("grade", rnd.rollouts, rnd.graded)
    if not any(read_shards(rnd.graded, columns=["correct"]).column("correct").to_pylist()):
        raise SetupError(
            f"the model {rnd.reference.hf} solved none of its samples, so there is nothing to "
            "prune towards; train the base model longer"
        )


def _analyze(ctx: DemoContext, rnd: PruneRound) -> None:
    analysis = rnd.directory / "analysis"
    table = ctx.runner.o1p("analyze", "--rollouts", rnd.graded, "--out", analysis)
    write_text(analysis / "table.txt", table)


def _build_dataset(ctx: DemoContext, rnd: PruneRound) -> None:
    shutil.rmtree(rnd.data.parent, ignore_errors=True)
    dataset_flags = {
        "--rollouts": rnd.graded,
        "--out": rnd.data,
        "--lambda": ctx.recipe.lam,
        "--rows-per-problem": "all",
        "--seed": ctx.recipe.seed,
    }
    ctx.runner.o1p("build-dataset", *_options(dataset_flags))


def _ref_logprobs(ctx: DemoContext, rnd: PruneRound) -> None:
    # the DPO baseline needs reference sums too (round 1 only: baselines prune once)
    datasets = [rnd.data] + ([rnd.data.parent / "dpo.parquet"] if rnd.number == 1 else [])
    for path in datasets:
        flags = {
            "--load": rnd.reference.mcore,
            "--data": path,
            "--seq-length": ctx.recipe.seq_length,
            "--micro-batch-size": ctx.recipe.micro_batch,
        }
        rollouts = ["--rollouts", rnd.rollouts] if path == rnd.data else []
        ctx.runner.o1p("ref-logprobs", *_options(flags), *rollouts)


def _train_pruner(ctx: DemoContext, rnd: PruneRound) -> None:
    recipe = ctx.recipe
    _train(
        ctx,
        rnd.out,
        loss="o1-pruner",
        load=rnd.reference.mcore,
        data=rnd.data,
        lr=recipe.o1p_lr,
        epochs=recipe.o1p_epochs,
        tensor_parallel=2,
        extra={"--ratio": recipe.o1p_ratio}
        | ({"--epsilon-high": recipe.o1p_epsilon_high} if recipe.o1p_epsilon_high else {}),
    )


# --------------------------------------------------------------------------- baselines, eval


def _train_baselines(ctx: DemoContext) -> None:
    """SFT on the 2 shortest correct samples and DPO, from round 1's data and the base model."""
    data = ctx.round_dir(1) / "data"
    recipe = ctx.recipe
    for name, loss, lr in (("sft-shortest", "sft", recipe.sft_lr), ("dpo", "dpo", recipe.dpo_lr)):
        train = functools.partial(
            _train,
            ctx,
            ctx.runs_dir / name,
            loss=loss,
            load=ctx.base.mcore,
            data=data / f"{loss}.parquet",
            lr=lr,
            epochs=recipe.baseline_epochs,
        )
        ctx.stage(f"train {name} (baseline)", train)


def _train(
    ctx: DemoContext,
    out: Path,
    *,
    loss: str,
    load: Path,
    data: Path,
    lr: float,
    epochs: int,
    tensor_parallel: int = 1,
    extra: dict | None = None,
) -> None:
    """`o1p train` from `load` into `out/mcore`, then `out/hf`. A DPO row is a pair, so
    half the rows per batch keep the sequences per step equal; a dataset smaller than a
    batch (the reduced `ci` size) trains on what there is."""
    import pyarrow.parquet as pq

    shutil.rmtree(out, ignore_errors=True)
    pairs = 2 if loss == "dpo" else 1
    rows = pq.ParquetFile(data).metadata.num_rows
    global_batch = min(ctx.size.global_batch // pairs, rows)
    micro_batch = min(ctx.recipe.micro_batch // pairs, global_batch)
    global_batch -= global_batch % micro_batch
    train_flags = {
        "--loss": loss,
        "--load": load,
        "--data": data,
        "--save": out / "mcore",
        "--tensor-model-parallel-size": tensor_parallel,
        "--micro-batch-size": micro_batch,
        "--global-batch-size": global_batch,
        "--seq-length": ctx.recipe.seq_length,
        "--lr": lr,
        "--min-lr": 0,
        "--lr-warmup-fraction": 0.1,
        "--train-epochs": epochs,
        "--log-interval": 10,
        "--seed": ctx.recipe.seed,
        **(extra or {}),
    }
    ctx.runner.o1p("train", *_options(train_flags), nproc=tensor_parallel)
    ctx.runner.o1p("convert", "mcore-to-hf", "--mcore-dir", out / "mcore", "--out", out / "hf")


def _evaluate_all(ctx: DemoContext, models: dict[str, Path]) -> None:
    """Every model greedy; the base and the last O1-Pruner model sampled (T=1) too."""
    for name, model in models.items():
        evaluate_model(ctx, model, ctx.eval_dir / name)
    if ctx.size.sampled_eval:
        for name in ("baseline", ctx.pruner_names[-1]):
            evaluate_model(ctx, models[name], ctx.eval_dir / f"{name}-T1", temperature=1.0)


def evaluate_model(ctx: DemoContext, model: Path, out: Path, temperature: float = 0.0) -> None:
    recipe = ctx.recipe
    args = ["evaluate", "--model", model, "--out", out, "--max-tokens", recipe.seq_length - 16]
    for name, path in ctx.test_files.items():
        args += ["--benchmark", f"{name}={path}"]
    if temperature:
        args += ["--temperature", temperature, "--num-samples", 1, "--seed", recipe.seed]
    ctx.runner.o1p(*args, "--max-model-len", recipe.seq_length, "--overwrite")


def _compare(ctx: DemoContext, models: dict[str, Path]) -> None:
    runs = [ctx.eval_dir / name for name in models if name != "baseline"]
    out = ctx.workdir / "compare"
    table = ctx.runner.o1p("compare", "--baseline", ctx.eval_dir / "baseline", *runs, "--out", out)
    write_text(out / "table.txt", table)


def _write_parquet(rows: list[dict], path: Path) -> None:
    import pyarrow as pa

    from megatron_o1p.data.shards import write_file_atomic

    write_file_atomic(pa.Table.from_pylist(rows), path)
