"""Training checkpoints: model, optimizer, LR scheduler, RNG and data position, with resume.

A run's --save folder uses the layout of `checkpoint/layout.py` (tracker file, iter_XXXXXXX/,
o1p_checkpoint.json, hf/), so `o1p convert mcore-to-hf` and `o1p convert verify` read it as they
read a conversion output. The data position is the iteration (training/data.py derives each
step's rows from it). RNG states are stored per (pipeline, tensor) rank and restored only at the
same layout; resuming at another TP/PP restores everything else. Saves are atomic (see
`saving.save_state`): the tracker file names the last complete checkpoint, and only it loads.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import torch

from megatron_o1p.atomic import TMP_MARK, atomic_dir
from megatron_o1p.checkpoint.layout import model_sharded_state
from megatron_o1p.checkpoint.reader import load_tensors, resolve_iteration_dir
from megatron_o1p.checkpoint.saving import save_state


def _rng_state() -> dict:
    from megatron.core import tensor_parallel

    state = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "tracker": tensor_parallel.get_cuda_rng_tracker().get_states(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    from megatron.core import tensor_parallel

    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    tensor_parallel.get_cuda_rng_tracker().set_states(state["tracker"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _sharded_training_state(chunks, optimizer, parallel, is_loading: bool) -> dict:
    from megatron.core.dist_checkpointing.mapping import ShardedObject

    model = model_sharded_state([getattr(c, "module", c) for c in chunks])
    rng = ShardedObject(
        "rng_state",
        _rng_state() if not is_loading else None,
        (parallel.pp_size, parallel.tp_size),
        (parallel.pp_rank, parallel.tp_rank),
        replica_id=parallel.dp_rank,
    )
    # The distributed optimizer's state is saved in the model's parameter space, so it reshards
    # across TP/PP/DP like the weights (megatron's default too; stated for 0.16-0.19 alike).
    opt_metadata = {"distrib_optim_sharding_type": "fully_sharded_model_space"}
    return {
        "model": model,
        "optimizer": optimizer.sharded_state_dict(
            model, is_loading=is_loading, metadata=opt_metadata
        ),
        "rng_state": rng,
    }


def save_training(run_dir: Path, iteration: int, chunks, optimizer, scheduler, parallel, meta):
    """Save everything needed to resume after `iteration` steps (all ranks call)."""
    state = _sharded_training_state(chunks, optimizer, parallel, is_loading=False)
    state["iteration"] = iteration
    state["scheduler"] = scheduler.state_dict()
    state["layout"] = [parallel.tp_size, parallel.pp_size]
    if torch.distributed.get_rank() == 0:
        _copy_hf_side_dir(meta.get("hf_side_dir"), run_dir)
    # save_state starts with a barrier, so hf/ is complete before any checkpoint is committed
    return save_state(state, run_dir, iteration=iteration, meta=meta)


def _copy_hf_side_dir(source: str | None, run_dir: Path) -> None:
    """Copy the source checkpoint's hf/ (config, tokenizer) into the run once, atomically: a
    crash mid-copy must not leave a partial tokenizer that later checks would trust."""
    target = run_dir / "hf"
    if target.exists() or not source or not Path(source).is_dir():
        return
    for stale in run_dir.glob(f".hf{TMP_MARK}*"):  # left by a run killed mid-copy
        shutil.rmtree(stale, ignore_errors=True)
    with atomic_dir(target) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)


def load_training(run_dir: Path, chunks, optimizer, scheduler, parallel) -> int:
    """Restore a run saved by `save_training`; returns the iteration to continue from."""
    from megatron.core import dist_checkpointing

    iteration_dir = resolve_iteration_dir(run_dir)
    common = dist_checkpointing.load_common_state_dict(str(iteration_dir))
    same_layout = list(common["layout"]) == [parallel.tp_size, parallel.pp_size]
    request = _sharded_training_state(chunks, optimizer, parallel, is_loading=True)
    if not same_layout:
        del request["rng_state"]  # RNG streams belong to (pp, tp) ranks of the saved layout
    loaded = load_tensors(iteration_dir, request)
    modules = [getattr(c, "module", c) for c in chunks]
    models = loaded["model"] if len(modules) > 1 else {"model0": loaded["model"]}
    for i, module in enumerate(modules):
        module.load_state_dict(models[f"model{i}"], strict=False)
    optimizer.load_state_dict(loaded["optimizer"])
    scheduler.load_state_dict(common["scheduler"])
    if same_layout:
        _set_rng_state(loaded["rng_state"])
    return int(common["iteration"])
