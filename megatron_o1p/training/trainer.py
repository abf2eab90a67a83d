"""`o1p train`: O1-Pruner (eq. 11), SFT or DPO on megatron-core.

    python -m megatron_o1p train --load M --data D --save RUN ...             # one process
    torchrun --nproc-per-node 8 [--nnodes N --node-rank R --master-addr A] \
        -m megatron_o1p train --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 ...

The loop: resume (or load the converted model), then per step: this rank's micro-batches ->
megatron's forward/backward schedule with our loss -> optimizer step (megatron DDP and
optimizer; grad clipping; LR schedule) -> log -> checkpoint. Where it differs from the official
code: the reference log-probs are precomputed (`o1p ref-logprobs`) instead of running a frozen
second model every step; sequences over --seq-length are cut AND counted; the loss defaults to
per-token ratios with a per-sequence mean (`--ratio sequence` gives the official form).
"""

from __future__ import annotations

from pathlib import Path

import torch

from megatron_o1p.checkpoint import dist as dist_ckpt
from megatron_o1p.data.fingerprint import check_dataset_tokenizer
from megatron_o1p.errors import ConfigError, DataError
from megatron_o1p.models.hf_config import ModelArchitecture
from megatron_o1p.training import data as train_data
from megatron_o1p.training.checkpointing import load_training, save_training
from megatron_o1p.training.config import TrainConfig
from megatron_o1p.training.forward_step import LossConfig, make_forward_step
from megatron_o1p.training.output_layout import batch_first_output_layer
from megatron_o1p.training.reporting import TrainingReporter, reduce_reports


def _resume_source(cfg: TrainConfig) -> tuple[Path, bool]:
    """(checkpoint to read, whether it is a training run to resume). A --save folder that
    already holds a committed training checkpoint (its tracker names an iteration) wins, so
    rerunning a killed command resumes it; a save killed before its first commit restarts."""
    for candidate in (cfg.save, cfg.load):
        iteration = dist_ckpt.tracked_iteration(candidate)
        if iteration and (Path(candidate) / dist_ckpt.CHECKPOINT_META).is_file():
            return Path(candidate), True
    return Path(cfg.load), False


def _preflight(cfg: TrainConfig):
    source, resume = _resume_source(cfg)
    meta = dist_ckpt.read_checkpoint_meta(source)
    arch = ModelArchitecture.from_json(meta["architecture"])
    if cfg.seq_length > arch.max_position_embeddings:
        raise ConfigError(f"--seq-length {cfg.seq_length} exceeds the model's max positions "
                          f"({arch.max_position_embeddings}); lower it")  # fmt: skip
    tp = cfg.tensor_model_parallel_size
    if cfg.sequence_parallel and tp > 1 and cfg.seq_length % tp:
        raise ConfigError(f"--sequence-parallel needs --seq-length divisible by TP ({tp})")
    rows = train_data.load_rows(cfg.data, cfg.loss)
    check_dataset_tokenizer(cfg.data, source)
    id_columns = [c for c in ("prompt_ids", "response_ids", "chosen_ids", "rejected_ids")
                  if c in rows[0]]  # fmt: skip
    for index, row in enumerate(rows):
        top = max(max(row[c], default=0) for c in id_columns)
        if top >= arch.vocab_size:
            raise DataError(f"token id {top} >= the checkpoint's vocab size {arch.vocab_size}: "
                            "the data was tokenized with another tokenizer; rebuild it with the "
                            "model's tokenizer", path=str(cfg.data), row=index)  # fmt: skip
    if len(rows) < cfg.global_batch_size:
        raise DataError(f"{len(rows)} rows, fewer than --global-batch-size "
                        f"{cfg.global_batch_size}", path=str(cfg.data))  # fmt: skip
    return source, resume, meta, arch, rows


def _build(cfg: TrainConfig, arch, meta, state):
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer

    from megatron_o1p.models.builder import ModelOptions, build_gpt_chunks
    from megatron_o1p.models.specs import resolve_spec_name, transformer_engine_usable

    dtype = torch.bfloat16 if cfg.bf16 else torch.float32
    chunks = build_gpt_chunks(arch, state, ModelOptions(
        spec=resolve_spec_name(cfg.spec), padded_vocab_size=meta["padded_vocab_size"],
        params_dtype=dtype, seq_length=cfg.seq_length,
        recompute_activations=cfg.recompute_activations,
    ))  # fmt: skip
    batch_first_output_layer(chunks)  # no copies of the logits (training/output_layout.py)
    if cfg.freeze_layers is not None:
        _freeze_all_but_last(chunks, arch.num_layers - cfg.freeze_layers)
    # The distributed optimizer resumes only with TE's/apex's Adam (torch's fallback never
    # creates the `step` state it reloads), so use it where TE runs; else megatron's normal one.
    distributed_optimizer = transformer_engine_usable()
    ddp_config = DistributedDataParallelConfig(
        grad_reduce_in_fp32=True, use_distributed_optimizer=distributed_optimizer
    )
    ddp = [
        DistributedDataParallel(config=c.config, ddp_config=ddp_config, module=c,
                                disable_bucketing=i > 0)
        for i, c in enumerate(chunks)
    ]  # fmt: skip
    optimizer = get_megatron_optimizer(OptimizerConfig(
        optimizer="adam", lr=cfg.lr, min_lr=cfg.min_lr, weight_decay=cfg.weight_decay,
        adam_beta1=cfg.adam_beta1, adam_beta2=cfg.adam_beta2, clip_grad=cfg.clip_grad,
        bf16=cfg.bf16, params_dtype=dtype, use_distributed_optimizer=distributed_optimizer,
    ), ddp)  # fmt: skip
    return chunks, ddp, optimizer


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


def _scheduler(cfg: TrainConfig, optimizer, total_iters: int):
    from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler

    warmup = int(cfg.lr_warmup_fraction * total_iters)
    return OptimizerParamScheduler(
        optimizer, init_lr=0.0 if warmup else cfg.lr, max_lr=cfg.lr, min_lr=cfg.min_lr,
        lr_warmup_steps=warmup, lr_decay_steps=max(total_iters, 1),
        lr_decay_style=cfg.lr_decay_style, start_wd=cfg.weight_decay, end_wd=cfg.weight_decay,
        wd_incr_steps=max(total_iters, 1), wd_incr_style="constant",
    )  # fmt: skip


def _flops_per_token(arch: ModelArchitecture) -> float:
    per_layer = (
        arch.hidden_size
        * arch.kv_channels
        * (2 * arch.num_attention_heads + 2 * arch.num_query_groups)
    )
    per_layer += 3 * arch.hidden_size * arch.ffn_hidden_size
    params = arch.num_layers * per_layer + arch.vocab_size * arch.hidden_size
    return 6.0 * params  # forward + backward, dense matmuls


def train(cfg: TrainConfig) -> Path:
    """Run (or resume) a training job; returns the --save folder."""
    from megatron.core.distributed import finalize_model_grads
    from megatron.core.pipeline_parallel import get_forward_backward_func

    from megatron_o1p.distributed.initialize import ParallelConfig, initialize, print0

    source, resume, meta, arch, rows = _preflight(cfg)  # before any collective
    vpp = None
    if cfg.num_layers_per_virtual_pipeline_stage:
        vpp = arch.num_layers // (cfg.pipeline_model_parallel_size
                                  * cfg.num_layers_per_virtual_pipeline_stage)  # fmt: skip
    state = initialize(ParallelConfig(
        tensor_model_parallel_size=cfg.tensor_model_parallel_size,
        pipeline_model_parallel_size=cfg.pipeline_model_parallel_size,
        virtual_pipeline_model_parallel_size=vpp, sequence_parallel=cfg.sequence_parallel,
    ), seed=cfg.seed)  # fmt: skip
    micro_per_step = cfg.check_data_parallel(state.dp_size)
    examples = train_data.to_sequences(rows, cfg.loss, cfg.seq_length)
    batches = train_data.StepBatches(examples, cfg.global_batch_size, cfg.micro_batch_size,
                                     state.dp_rank, state.dp_size, cfg.seed)  # fmt: skip
    total_iters = cfg.train_iters or batches.steps_per_epoch * cfg.train_epochs
    chunks, ddp, optimizer = _build(cfg, arch, meta, state)
    scheduler = _scheduler(cfg, optimizer, total_iters)
    config = chunks[0].config
    config.no_sync_func = [c.no_sync for c in ddp] if len(ddp) > 1 else ddp[0].no_sync
    config.finalize_model_grads_func = finalize_model_grads
    config.grad_scale_func = optimizer.scale_loss

    run_meta = {
        key: meta[key]
        for key in ("architecture", "padded_vocab_size", "make_vocab_size_divisible_by")
        if key in meta
    }
    run_meta.update(spec=meta.get("spec", "local"), dtype="bfloat16" if cfg.bf16 else "float32",
                    train_config=cfg.to_json(), hf_side_dir=str(Path(source) / "hf"))  # fmt: skip
    if resume:
        iteration = load_training(source, ddp, optimizer, scheduler, state)
        print0(f"resumed {source} at iteration {iteration}/{total_iters}")
    else:
        dist_ckpt.load_into_model(chunks, source)
        iteration = 0
        print0(
            f"loaded {source}; training {total_iters} iterations, {micro_per_step} "
            f"micro-batches per step on each of {state.dp_size} data-parallel ranks"
        )

    forward_step = make_forward_step(LossConfig(
        loss=cfg.loss, vocab_size=arch.vocab_size, epsilon=cfg.epsilon,
        epsilon_high=cfg.epsilon_high, ratio=cfg.ratio, aggregation=cfg.loss_aggregation,
        dpo_beta=cfg.dpo_beta, logprob_impl=cfg.logprob_impl,
    ), state)  # fmt: skip
    reporter = TrainingReporter(total_iters, cfg.log_interval, cfg.tensorboard_dir,
                                _flops_per_token(arch))  # fmt: skip
    pad_multiple, fixed_length = train_data.padding_rule(
        cfg.tensor_model_parallel_size, cfg.pipeline_model_parallel_size > 1, cfg.seq_length
    )
    run_iters = 0
    for chunk in ddp:
        chunk.train()
    while iteration < total_iters:
        micro_batches = batches.micro_batches(iteration, pad_multiple, fixed_length)
        for chunk in ddp:
            chunk.zero_grad_buffer()
        optimizer.zero_grad()
        iterator = (iter(micro_batches) if len(ddp) == 1
                    else [iter(micro_batches) for _ in ddp])  # fmt: skip
        reports = get_forward_backward_func()(
            forward_step_func=forward_step, data_iterator=iterator,
            model=ddp if len(ddp) > 1 else ddp[0], num_microbatches=len(micro_batches),
            seq_length=micro_batches[0]["tokens"].shape[1],
            micro_batch_size=micro_batches[0]["tokens"].shape[0], forward_only=False,
        )  # fmt: skip
        _, grad_norm, _ = optimizer.step()
        lr = optimizer.param_groups[0]["lr"]  # the rate this step used
        scheduler.step(increment=1)
        iteration += 1
        run_iters += 1
        seqs = [s for r in batches.global_rows_of_step(iteration - 1) for s in examples[r]]
        truncated = sum(s.truncated for s in seqs) / len(seqs)
        tokens = sum(len(s.tokens) - 1 for s in seqs)
        reporter.step(iteration, reduce_reports(reports, state), lr, grad_norm, truncated, tokens)
        done = iteration == total_iters or (
            cfg.exit_after_iters and run_iters >= cfg.exit_after_iters
        )
        if done or (cfg.save_interval and iteration % cfg.save_interval == 0):
            save_training(Path(cfg.save), iteration, ddp, optimizer, scheduler, state, run_meta)
        if done:
            break
    reporter.close()
    return Path(cfg.save)
