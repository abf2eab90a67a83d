"""Training logs: megatron-style console lines on rank 0, TensorBoard scalars, GPU stats."""

from __future__ import annotations

import time

import torch
import torch.distributed as dist

from megatron_o1p.errors import SetupError


def reduce_reports(reports: list[dict], parallel) -> dict[str, float]:
    """Sum [sum, count] reports over micro-batches, then over data-parallel ranks; the last
    pipeline stage holds them, so they are also summed over the pipeline group. Returns means."""
    names = sorted(reports[0]) if reports else []
    names_box = [names]
    dist.broadcast_object_list(names_box, src=dist.get_world_size() - 1)
    names = names_box[0]
    totals = torch.zeros(len(names), 2, dtype=torch.float64)
    for report in reports:
        for i, name in enumerate(names):
            totals[i] += report[name].double().cpu()
    if torch.cuda.is_available():
        totals = totals.cuda()
    dist.all_reduce(totals, group=parallel.dp_group)
    dist.all_reduce(totals, group=parallel.pp_group)
    totals = totals.cpu()
    out = {name: (totals[i, 0] / totals[i, 1].clamp(min=1)).item() for i, name in enumerate(names)}
    out["tokens"] = totals[names.index("loss"), 1].item() if "loss" in names else 0.0
    return out


class TrainingReporter:
    """Prints one line per --log-interval and writes TensorBoard scalars (rank 0 only)."""

    def __init__(
        self, total_iters: int, log_interval: int, tensorboard_dir=None, flops_per_token=0
    ):
        self.total_iters, self.log_interval = total_iters, log_interval
        self.flops_per_token = flops_per_token
        self.rank0 = dist.get_rank() == 0
        self.writer = None
        if tensorboard_dir is not None and self.rank0:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise SetupError("--tensorboard-dir needs the `tensorboard` package; "
                                 "pip install tensorboard") from err  # fmt: skip
            self.writer = SummaryWriter(str(tensorboard_dir))
        self.gpu = _GpuStats()
        self._start = time.perf_counter()
        self._window_start, self._window_iters, self._window_tokens = self._start, 0, 0.0

    def step(self, iteration: int, metrics: dict, lr: float, grad_norm, truncated_frac: float,
             sequences_tokens: int) -> None:  # fmt: skip
        self._window_iters += 1
        self._window_tokens += sequences_tokens
        scalars = {**metrics, "optim/lr": lr, "data/truncated_frac": truncated_frac}
        if grad_norm is not None:
            scalars["optim/grad_norm"] = float(grad_norm)
        if self.writer is not None:
            for name, value in scalars.items():
                self.writer.add_scalar(name, value, iteration)
        if iteration % self.log_interval and iteration != self.total_iters:
            return
        now = time.perf_counter()
        per_iter = (now - self._window_start) / max(self._window_iters, 1)
        tokens_per_s = self._window_tokens / max(now - self._window_start, 1e-9)
        eta = per_iter * (self.total_iters - iteration)
        parts = [
            f" iteration {iteration:>6}/{self.total_iters}",
            f"elapsed time per iteration (ms): {per_iter * 1e3:.1f}",
            f"learning rate: {lr:.3E}",
            f"loss: {metrics.get('loss', float('nan')):.6E}",
        ]
        if grad_norm is not None:
            parts.append(f"grad norm: {float(grad_norm):.3f}")
        for key, label in (
            ("loss/clip_frac", "clip frac"),
            ("loss/ratio_mean", "ratio"),
            ("loss/approx_kl", "approx kl"),
            ("dpo/reward_accuracy", "dpo acc"),
        ):
            if key in metrics:
                parts.append(f"{label}: {metrics[key]:.4f}")  # fmt: skip
        parts.append(f"tokens/s: {tokens_per_s:.1f}")
        if self.flops_per_token and torch.cuda.is_available():
            peak = self.gpu.peak_flops() * dist.get_world_size()
            if peak:
                parts.append(f"MFU: {100 * tokens_per_s * self.flops_per_token / peak:.1f}%")
        parts.append(f"truncated: {truncated_frac:.3f}")
        parts += self.gpu.describe()
        parts.append(f"ETA: {_hms(eta)}")
        if self.rank0:
            print(" | ".join(parts), flush=True)
        if self.writer is not None:
            self.writer.add_scalar("perf/tokens_per_s", tokens_per_s, iteration)
            self.writer.flush()
        self._window_start, self._window_iters, self._window_tokens = now, 0, 0.0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _hms(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class _GpuStats:
    """GPU memory and utilisation through nvidia-ml-py, when it and a driver are present."""

    _BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12}

    def __init__(self):
        self.handle = None
        if not torch.cuda.is_available():
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
            self.nvml = pynvml
        except Exception:  # no nvidia-ml-py, or no driver library: skip the stats
            self.handle = None

    def describe(self) -> list[str]:
        if not torch.cuda.is_available():
            return []
        parts = [f"mem (GiB): {torch.cuda.max_memory_allocated() / 2**30:.1f}"]
        if self.handle is not None:
            util = self.nvml.nvmlDeviceGetUtilizationRates(self.handle)
            parts.append(f"gpu util: {util.gpu}%")
        return parts

    def peak_flops(self) -> float:
        name = torch.cuda.get_device_name()
        return next((v for k, v in self._BF16_PEAK.items() if k in name), 0.0)
