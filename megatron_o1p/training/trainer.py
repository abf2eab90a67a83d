"""`o1p train`: O1-Pruner (eq. 11), SFT or DPO on megatron-core.

    python -m megatron_o1p train --load M --data D --save RUN ...             # one process
    torchrun --nproc-per-node 8 [--nnodes N --node-rank R --master-addr A] \
        -m megatron_o1p train --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 ...

`train()` is three phases: build (preflight of the data and checkpoint before any collective,
then process groups, model, megatron DDP, optimizer, LR schedule), resume (a run in --save, or
the converted weights of --load), and the loop. Each `train_step` is: this rank's micro-batches
-> megatron's forward/backward schedule with our loss (`training/forward_step.py`) -> optimizer
step (grad clipping; a skipped update does not advance the schedule) -> the step's report, which
stops the run on a non-finite loss or gradient norm. The loop then logs and checkpoints.

Where it differs from the official code: the reference log-probs are precomputed (`o1p
ref-logprobs`) instead of running a frozen second model every step; sequences over --seq-length
are cut AND counted; the loss defaults to per-token ratios with a per-sequence mean (`--ratio
sequence` gives the official form, and a warning as the first log line: `config/loss.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from megatron_o1p.checkpoint.layout import CHECKPOINT_META
from megatron_o1p.checkpoint.reader import tracked_iteration
from megatron_o1p.data.fingerprint import check_dataset_tokenizer
from megatron_o1p.errors import ConfigError, DataError, TrainingError
from megatron_o1p.models.loading import (
    Checkpoint,
    build_model,
    initialize_for,
    load_weights,
    read_checkpoint,
)
from megatron_o1p.ops.logprobs import HEAD_IMPLEMENTATION
from megatron_o1p.training import data as train_data
from megatron_o1p.training import moe_aux
from megatron_o1p.training.checkpointing import load_training, save_training
from megatron_o1p.training.config import TrainConfig
from megatron_o1p.training.forward_step import forward_backward, make_forward_step
from megatron_o1p.training.output_layout import batch_first_output_layer
from megatron_o1p.training.reporting import (
    StepReport,
    TrainingReporter,
    flops_per_token,
    reduce_reports,
)
from megatron_o1p.training.token_dataset import TokenDataset, open_dataset


@dataclass
class TrainingRun:
    """What the loop works on, built once by `_build` (this rank's share of it)."""

    cfg: TrainConfig
    checkpoint: Checkpoint
    """The source: --load, or the run in --save being resumed."""
    resume: bool
    state: object
    """This process's `distributed.initialize.ParallelState`."""
    examples: TokenDataset
    """Per dataset row: its sequence(s), read when a micro-batch needs them."""
    batches: train_data.StepBatches
    total_iters: int
    chunks: list
    """This rank's GPTModel chunk(s); `ddp` wraps them."""
    ddp: list
    optimizer: object
    scheduler: object
    forward_step: Callable
    micro_batches_per_step: int
    run_meta: dict
    """The `o1p_checkpoint.json` fields every save writes."""


def train(cfg: TrainConfig) -> Path:
    """Run (or resume) a training job; returns the --save folder."""
    _warn_about_settings(cfg)  # the first log line, before any work
    run = _build(cfg)  # preflight first: bad data or flags fail before any collective
    start = _resume_or_load(run)  # a run in --save, or --load's converted weights
    _loop(run, start)
    return cfg.save


def _loop(run: TrainingRun, iteration: int) -> None:
    """Steps from `iteration` to the end (or --exit-after-iters more): log, checkpoint."""
    cfg = run.cfg
    last = run.total_iters
    if cfg.exit_after_iters:
        last = min(last, iteration + cfg.exit_after_iters)
    arch = run.checkpoint.arch
    reporter = TrainingReporter(
        run.total_iters, cfg.log_interval, cfg.tensorboard_dir, flops_per_token(arch)
    )
    for chunk in run.ddp:
        chunk.train()
    try:
        while iteration < last:
            report = train_step(run, iteration)
            iteration += 1
            reporter.step(iteration, report)
            if iteration == last or (cfg.save_interval and iteration % cfg.save_interval == 0):
                _save(run, iteration)
    finally:
        reporter.close()  # TensorBoard keeps the steps before a divergence


def train_step(run: TrainingRun, iteration: int) -> StepReport:
    """Optimizer step `iteration` (0-based): batch -> forward/backward -> optimizer -> report.

    Raises:
        TrainingError: the loss or the gradient norm is not finite (the run diverged).
    """
    micro_batches = run.batches.micro_batches(iteration, *_batch_layout(run.cfg))
    reports = _forward_backward(run, micro_batches)
    update_successful, grad_norm, lr = _optimizer_step(run)
    report = _report(run, iteration, reports, lr, grad_norm, update_successful)
    _check_finite(iteration + 1, report)
    return report


# -- build ---------------------------------------------------------------------------------


def _warn_about_settings(cfg: TrainConfig) -> None:
    """Print (rank 0) what is known to go wrong with these settings: `--ratio sequence`."""
    from megatron_o1p.distributed.initialize import print0

    warning = cfg.loss.ratio_warning()
    if warning is not None:
        print0(warning)


def _build(cfg: TrainConfig) -> TrainingRun:
    """Preflight (no collective yet), then process groups, data order, model, optimizer."""
    checkpoint, resume, examples = _preflight(cfg)
    state = initialize_for(checkpoint, cfg.parallel, seed=cfg.seed)
    micro_per_step = cfg.check_data_parallel(state.dp_size)
    batches = train_data.StepBatches(
        examples,
        cfg.global_batch_size,
        cfg.micro_batch_size,
        state.dp_rank,
        state.dp_size,
        cfg.seed,
    )
    total_iters = cfg.train_iters or batches.steps_per_epoch * cfg.train_epochs
    chunks, ddp, optimizer = _build_model(cfg, checkpoint, state)
    arch = checkpoint.arch
    scheduler = cfg.optimizer.build_scheduler(optimizer, total_iters)
    _connect_megatron_hooks(chunks[0].config, ddp, optimizer)
    return TrainingRun(
        cfg=cfg,
        checkpoint=checkpoint,
        resume=resume,
        state=state,
        examples=examples,
        batches=batches,
        total_iters=total_iters,
        chunks=chunks,
        ddp=ddp,
        optimizer=optimizer,
        scheduler=scheduler,
        forward_step=make_forward_step(
            cfg.loss,
            state,
            vocab_size=checkpoint.arch.vocab_size,
            moe_aux_loss_coef=arch.router_aux_loss_coef if arch.is_moe else None,
        ),
        micro_batches_per_step=micro_per_step,
        run_meta=_run_meta(cfg, checkpoint),
    )


def _resume_source(cfg: TrainConfig) -> tuple[Path, bool]:
    """(checkpoint to read, whether it is a training run to resume). A --save folder that
    already holds a committed training checkpoint (its tracker names an iteration) wins, so
    rerunning a killed command resumes it; a save killed before its first commit restarts."""
    for candidate in (cfg.save, cfg.model.load):
        iteration = tracked_iteration(candidate)
        if iteration and (Path(candidate) / CHECKPOINT_META).is_file():
            return Path(candidate), True
    return Path(cfg.model.load), False


def _preflight(cfg: TrainConfig) -> tuple[Checkpoint, bool, TokenDataset]:
    """Check the checkpoint and the data against each other and the config; map the rows."""
    source, resume = _resume_source(cfg)
    checkpoint = read_checkpoint(source)
    arch = checkpoint.arch
    if cfg.model.seq_length > arch.max_position_embeddings:
        raise ConfigError(
            f"--seq-length {cfg.model.seq_length} exceeds the model's max positions "
            f"({arch.max_position_embeddings}); lower it"
        )
    if cfg.freeze_layers is not None and cfg.freeze_layers > arch.num_layers:
        raise ConfigError(
            f"--freeze-layers {cfg.freeze_layers} exceeds the model's {arch.num_layers} "
            "layers; give at most that many"
        )
    parallel = cfg.parallel
    if arch.is_moe and parallel.tensor_model_parallel_size > 1 and not parallel.sequence_parallel:
        # megatron's MoE layer refuses to train so (a ValueError deep in its forward)
        raise ConfigError(
            f"training a mixture of experts at --tensor-model-parallel-size "
            f"{parallel.tensor_model_parallel_size} needs --sequence-parallel; add it"
        )
    ep, etp = parallel.expert_model_parallel_size, parallel.expert_tensor_parallel_size
    tp = parallel.tensor_model_parallel_size
    if arch.is_moe and ep == 1 and etp != tp:
        # megatron reduces experts' gradients as dense weights at EP 1 (over data parallel
        # only): experts not split over TP would miss their TP peers' tokens
        raise ConfigError(
            f"--expert-tensor-parallel-size {etp} with --expert-model-parallel-size 1 must "
            f"equal --tensor-model-parallel-size ({tp}); drop it, or add expert parallelism"
        )
    arch.check_expert_parallel(ep, f"{source}: ", etp=etp)
    dataset = open_dataset(cfg.data, cfg.loss.loss, cfg.model.seq_length)
    check_dataset_tokenizer(cfg.data, source)
    dataset.check_token_ids(arch.vocab_size)
    if len(dataset) < cfg.global_batch_size:
        raise DataError(
            f"{len(dataset)} rows, fewer than --global-batch-size {cfg.global_batch_size}",
            path=str(cfg.data),
        )
    return checkpoint, resume, dataset


def _build_model(cfg: TrainConfig, checkpoint: Checkpoint, state):
    """(chunks, DDP-wrapped chunks, optimizer) with --load's architecture, random weights."""
    from megatron_o1p.models.specs import transformer_engine_usable

    chunks = build_model(checkpoint, cfg.model, state)
    # No copies of the logits, or no logits at all (training/output_layout.py).
    batch_first_output_layer(chunks, fused_head=cfg.loss.logprob_impl == HEAD_IMPLEMENTATION)
    if cfg.freeze_layers is not None:
        _freeze_all_but_last(chunks, checkpoint.arch.num_layers - cfg.freeze_layers)
    # The distributed optimizer resumes only with TE's/apex's Adam (torch's fallback never
    # creates the `step` state it reloads), so use it where TE runs; else megatron's normal one.
    distributed_optimizer = transformer_engine_usable()
    ddp = _wrap_ddp(chunks, distributed_optimizer)
    optimizer = cfg.optimizer.build_optimizer(
        ddp,
        bf16=cfg.model.bf16,
        params_dtype=cfg.model.torch_dtype(),
        distributed_optimizer=distributed_optimizer,
    )
    return chunks, ddp, optimizer


def _wrap_ddp(chunks: list, distributed_optimizer: bool) -> list:
    """megatron DDP around each chunk: fp32 gradient buffers, bucketed on the first chunk."""
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig

    ddp_config = DistributedDataParallelConfig(
        grad_reduce_in_fp32=True, use_distributed_optimizer=distributed_optimizer
    )
    return [
        DistributedDataParallel(
            config=chunk.config, ddp_config=ddp_config, module=chunk, disable_bucketing=i > 0
        )
        for i, chunk in enumerate(chunks)
    ]


def _freeze_all_but_last(chunks, first_trained_layer: int) -> None:
    """--freeze-layers N: only layers >= L - N, the final norm and the output layer train."""
    from megatron.core.transformer.transformer_layer import get_transformer_layer_offset

    for index, chunk in enumerate(chunks):
        offset = get_transformer_layer_offset(
            chunk.config, vp_stage=index if len(chunks) > 1 else None
        )
        for name, param in chunk.named_parameters():
            if name.startswith("decoder.layers."):
                param.requires_grad = int(name.split(".")[2]) + offset >= first_trained_layer
            elif name.startswith("embedding."):
                param.requires_grad = False


def _connect_megatron_hooks(config, ddp: list, optimizer) -> None:
    """What megatron's schedules call on the model config: gradient sync, reduction, scaling."""
    from megatron.core.distributed import finalize_model_grads

    config.no_sync_func = [c.no_sync for c in ddp] if len(ddp) > 1 else ddp[0].no_sync
    config.finalize_model_grads_func = finalize_model_grads
    config.grad_scale_func = optimizer.scale_loss


def _run_meta(cfg: TrainConfig, checkpoint: Checkpoint) -> dict:
    meta = checkpoint.meta
    run_meta = {
        key: meta[key]
        for key in ("architecture", "padded_vocab_size", "make_vocab_size_divisible_by")
        if key in meta
    }
    run_meta.update(
        spec=meta.get("spec", "local"),
        dtype=cfg.model.dtype_name,
        train_config=cfg.to_json(),
        hf_side_dir=str(checkpoint.path / "hf"),
    )
    return run_meta


# -- resume --------------------------------------------------------------------------------


def _resume_or_load(run: TrainingRun) -> int:
    """Restore the run being resumed, or load --load's weights; returns the next iteration."""
    from megatron_o1p.distributed.initialize import print0

    source, state = run.checkpoint.path, run.state
    if run.resume:
        iteration = load_training(source, run.ddp, run.optimizer, run.scheduler, state)
        print0(f"resumed {source} at iteration {iteration}/{run.total_iters}")
        return iteration
    load_weights(run.chunks, run.checkpoint)
    capacity = _batch_layout(run.cfg)[2]
    batching = (
        f"{run.micro_batches_per_step} micro-batches"
        if capacity is None
        else f"rows packed in micro-batches of <= {capacity} positions"
    )
    print0(
        f"loaded {source}; training {run.total_iters} iterations, {batching} per step on each "
        f"of {state.dp_size} data-parallel ranks"
    )
    return 0


# -- one step ------------------------------------------------------------------------------


def _batch_layout(cfg: TrainConfig) -> tuple[int, int | None, int | None]:
    """(pad multiple, fixed length, packed capacity or None) of the run's micro-batches."""
    parallel = cfg.parallel
    pipelined = parallel.pipeline_model_parallel_size > 1
    pad_multiple, fixed = train_data.padding_rule(
        parallel.tensor_model_parallel_size, pipelined, cfg.model.seq_length
    )
    if not cfg.model.pack_sequences:
        return pad_multiple, fixed, None
    per_row = 2 if cfg.loss.loss == "dpo" else 1
    capacity = train_data.pack_capacity(cfg.model.seq_length, cfg.micro_batch_size, per_row)
    # pipeline parallelism: every packed row the same (fixed) size
    return pad_multiple, (capacity if pipelined else None), capacity


def _forward_backward(run: TrainingRun, micro_batches: list[dict]) -> list[dict]:
    """Gradients of the step's loss in the DDP buffers; returns the per-micro-batch reports."""
    for chunk in run.ddp:
        chunk.zero_grad_buffer()
    run.optimizer.zero_grad()
    return forward_backward(run.forward_step, run.ddp, micro_batches)


def _optimizer_step(run: TrainingRun) -> tuple[bool, float | None, float]:
    """(update applied, global gradient norm, the learning rate this step used)."""
    update_successful, grad_norm, _ = run.optimizer.step()
    lr = run.optimizer.param_groups[0]["lr"]
    if update_successful:  # as megatron's train_step: a skipped update keeps the schedule
        run.scheduler.step(increment=1)
    return update_successful, grad_norm, lr


def _report(run: TrainingRun, iteration: int, reports, lr, grad_norm, update_successful):
    """The step's metrics, reduced over micro-batches and ranks (every rank gets them)."""
    # every rank's rows, from the offsets alone: no other rank's tokens are read
    sequences = run.examples.sequence_lengths(run.batches.global_rows_of_step(iteration))
    metrics = reduce_reports(reports, run.state)
    arch = run.checkpoint.arch
    if arch.is_moe:
        metrics.update(moe_aux.step_metrics(arch.router_aux_loss_coef, run.micro_batches_per_step))
    return StepReport(
        metrics=metrics,
        lr=lr,
        grad_norm=grad_norm,
        update_skipped=not update_successful,
        truncated_frac=sum(cut for _, cut in sequences) / len(sequences),
        tokens=sum(length - 1 for length, _ in sequences),
    )


def _check_finite(iteration: int, report: StepReport) -> None:
    """Stop on divergence. Every rank holds the same reduced loss and global norm, so every
    rank raises here, before any rank enters the next collective or a save."""
    values = {"loss": report.metrics.get("loss", 0.0), "gradient norm": report.grad_norm}
    for name, value in values.items():
        if value is not None and not math.isfinite(float(value)):
            raise TrainingError(
                f"iteration {iteration}: the {name} is {float(value)}: training diverged "
                "(this iteration is not saved; earlier checkpoints are kept); lower --lr or "
                "--clip-grad and train into a new --save folder"
            )


def _save(run: TrainingRun, iteration: int) -> None:
    save_training(
        run.cfg.save, iteration, run.ddp, run.optimizer, run.scheduler, run.state, run.run_meta
    )
