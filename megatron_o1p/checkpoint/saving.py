"""Save training state as a torch_dist checkpoint, atomically (layout in `checkpoint/layout.py`).

Every rank writes its shards with megatron's `dist_checkpointing.save` into
`.iter_XXXXXXX.tmp`; once all have finished, rank 0 renames it to `iter_XXXXXXX`, then
replaces `o1p_checkpoint.json` and, last, the tracker file (each through `megatron_o1p/atomic.py`:
temporary name, fsync, rename, fsync of the folder). The tracker is the commit point: a crash
at any moment before it is replaced leaves it naming the previous complete checkpoint, which is
what loads. `tests/distributed/test_train.py` SIGKILLs a real run inside each window, held there
by the fault points of `megatron_o1p/testing/faults.py`.

The temporary folder has a fixed name (not `atomic.atomic_dir`'s per-process one) because every
rank writes into it; stale `.iter_*.tmp` folders of crashed saves are removed by the next save.
Reading back is `checkpoint/reader.py`.

Tested by tests/distributed/test_train.py (kills inside each window, bitwise resume) and
tests/distributed/test_tp_checkpoint.py (save at one TP, load at another).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from megatron_o1p.checkpoint.layout import (
    FORMAT_VERSION,
    iteration_folder_name,
    model_sharded_state,
    sharding_metadata,
    write_checkpoint_meta,
    write_tracker,
)
from megatron_o1p.testing.faults import fault_point


def save_state(state: dict, ckpt_dir: str | Path, *, iteration: int, meta: dict) -> Path:
    """Save a (sharded) state dict and commit it as `iteration` (all ranks call).

    Args:
        state: megatron sharded state dict (model, optimizer, ...) of this rank.
        ckpt_dir: the checkpoint folder (a run's --save).
        iteration: training iteration the state is after.
        meta: `o1p_checkpoint.json` content; format version, iteration and sharding metadata
            are added.

    Returns:
        The committed `iter_XXXXXXX` folder.
    """
    import torch.distributed as dist
    from megatron.core import dist_checkpointing

    ckpt_dir = Path(ckpt_dir)
    name = iteration_folder_name(iteration)
    tmp, final = ckpt_dir / f".{name}.tmp", ckpt_dir / name
    if dist.get_rank() == 0:
        _fresh_temporary_folder(ckpt_dir, tmp)
    dist.barrier()
    dist_checkpointing.save(state, str(tmp))
    dist.barrier()
    if dist.get_rank() == 0:
        _write_common_pt(tmp)
        fault_point("save.written", iteration=iteration)
        _rename_into_place(tmp, final)
        write_checkpoint_meta(ckpt_dir, _training_meta(meta, iteration))
        fault_point("save.renamed", iteration=iteration)
        write_tracker(ckpt_dir, iteration)
    dist.barrier()
    return final


def save_model(model_chunks: list, ckpt_dir: str | Path, *, iteration: int, meta: dict) -> Path:
    """Save only the model weights of this rank's chunks (see `save_state`)."""
    return save_state(model_sharded_state(model_chunks), ckpt_dir, iteration=iteration, meta=meta)


def _training_meta(meta: dict, iteration: int) -> dict:
    return {
        **meta,
        "format_version": FORMAT_VERSION,
        "iteration": iteration,
        "sharding_metadata": sharding_metadata(),
    }


def _fresh_temporary_folder(ckpt_dir: Path, tmp: Path) -> None:
    """Create `tmp` empty, removing what crashed saves left (rank 0, before any rank writes)."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for stale in ckpt_dir.glob(".iter_*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir()


def _write_common_pt(iteration_dir: Path) -> None:
    """Make sure `common.pt` exists, so megatron-core 0.16 and 0.19 both load the save."""
    from megatron.core import dist_checkpointing

    if not (iteration_dir / "common.pt").exists():
        # megatron-core >= 0.19 keeps the common state inside the DCP files ("common_state");
        # 0.16.1 can only load it from common.pt. Write both so either version loads it.
        common = dist_checkpointing.load_common_state_dict(str(iteration_dir))
        torch.save(common, iteration_dir / "common.pt")


def _rename_into_place(tmp: Path, final: Path) -> None:
    """Rename the written `tmp` to `final`; a `final` left by a crash after its rename (so not
    the tracked one) is moved aside first, never half deleted in place."""
    if final.exists():
        old = final.with_name(f".{final.name}.old.tmp")
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
    else:
        tmp.rename(final)
