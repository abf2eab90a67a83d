"""Training logs: megatron-style console lines on rank 0, TensorBoard scalars, GPU stats."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from megatron_o1p.errors import SetupError

_LOGGED_METRICS = (
    ("loss/clip_frac", "clip frac"),
    ("loss/ratio_mean", "ratio"),
    ("loss/approx_kl", "approx kl"),
    ("dpo/reward_accuracy", "dpo acc"),
    ("moe/aux_loss", "aux loss"),
)
"""Report keys shown on the console line (TensorBoard gets every key), with their labels."""


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


@dataclass(frozen=True)
class StepReport:
    """What one optimizer step reports; the same on every rank."""

    metrics: dict[str, float]
    """`reduce_reports` means (`loss`, `loss/clip_frac`, ...) and the loss's `tokens`."""
    lr: float
    """The learning rate the step used."""
    grad_norm: float | None
    """Global L2 norm of the gradients before clipping; None (or 0.0) where megatron does not
    compute it: a skipped update, or --clip-grad 0."""
    update_skipped: bool
    """megatron's optimizer skipped the update (a non-finite gradient under loss scaling)."""
    truncated_frac: float
    """Fraction of the step's sequences cut at --seq-length."""
    tokens: int
    """Input tokens of the step's sequences, over all data-parallel ranks."""


def flops_per_token(arch) -> float:
    """Dense-matmul FLOPs per trained token (forward + backward) of a `ModelArchitecture`."""
    per_layer = (
        arch.hidden_size
        * arch.kv_channels
        * (2 * arch.num_attention_heads + 2 * arch.num_query_groups)
    )
    per_layer += 3 * arch.hidden_size * arch.ffn_hidden_size
    params = arch.num_layers * per_layer + arch.vocab_size * arch.hidden_size
    return 6.0 * params


class TrainingReporter:
    """Prints one line per --log-interval and writes TensorBoard scalars (rank 0 only)."""

    def __init__(
        self, total_iters: int, log_interval: int, tensorboard_dir=None, flops_per_token=0
    ):
        self.total_iters, self.log_interval = total_iters, log_interval
        self.flops_per_token = flops_per_token
        self.rank0 = dist.get_rank() == 0
        self.writer = None
        if tensorboard_dir is not None:  # every rank checks: all stop, none waits on rank 0
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise SetupError(
                    "--tensorboard-dir needs the `tensorboard` package; pip install tensorboard"
                ) from err
            if self.rank0:
                self.writer = SummaryWriter(str(tensorboard_dir))
        self.gpu = _GpuStats()
        self.skipped_updates = 0
        """Updates megatron skipped in this run so far."""
        self._start = time.perf_counter()
        self._window_start, self._window_iters, self._window_tokens = self._start, 0, 0.0
        self._window_skipped = 0

    def step(self, iteration: int, report: StepReport) -> None:
        """Record step `iteration` (1-based): TensorBoard always, a console line per interval."""
        self._window_iters += 1
        self._window_tokens += report.tokens
        if report.update_skipped:
            self.skipped_updates += 1
            self._window_skipped += 1
        self._write_scalars(iteration, report)
        if iteration % self.log_interval and iteration != self.total_iters:
            return
        now = time.perf_counter()
        elapsed = now - self._window_start
        tokens_per_s = self._window_tokens / max(elapsed, 1e-9)
        line = self._log_line(iteration, report, elapsed / max(self._window_iters, 1), tokens_per_s)
        if self.rank0:
            print(line, flush=True)
        if self.writer is not None:
            self.writer.add_scalar("perf/tokens_per_s", tokens_per_s, iteration)
            self.writer.flush()
        self._window_start, self._window_iters, self._window_tokens = now, 0, 0.0
        self._window_skipped = 0

    def _write_scalars(self, iteration: int, report: StepReport) -> None:
        if self.writer is None:
            return
        scalars = {
            **report.metrics,
            "optim/lr": report.lr,
            "data/truncated_frac": report.truncated_frac,
            "optim/skipped_updates": self.skipped_updates,
        }
        if report.grad_norm is not None:
            scalars["optim/grad_norm"] = float(report.grad_norm)
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, iteration)

    def _log_line(self, iteration, report: StepReport, per_iter: float, tokens_per_s: float):
        """Megatron's console line: ` iteration N/T | elapsed time ... | ETA: h:mm:ss`."""
        metrics = report.metrics
        parts = [
            f" iteration {iteration:>6}/{self.total_iters}",
            f"elapsed time per iteration (ms): {per_iter * 1e3:.1f}",
            f"learning rate: {report.lr:.3E}",
            f"loss: {metrics.get('loss', float('nan')):.6E}",
        ]
        if report.grad_norm is not None:
            parts.append(f"grad norm: {float(report.grad_norm):.3f}")
        if self._window_skipped:
            parts.append(f"skipped updates: {self._window_skipped}")
        for key, label in _LOGGED_METRICS:
            if key in metrics:
                parts.append(f"{label}: {metrics[key]:.4f}")
        parts.append(f"tokens/s: {tokens_per_s:.1f}")
        if self.flops_per_token and torch.cuda.is_available():
            peak = self.gpu.peak_flops() * dist.get_world_size()
            if peak:
                parts.append(f"MFU: {100 * tokens_per_s * self.flops_per_token / peak:.1f}%")
        parts.append(f"truncated: {report.truncated_frac:.3f}")
        parts += self.gpu.describe()
        parts.append(f"ETA: {_hms(per_iter * (self.total_iters - iteration))}")
        return " | ".join(parts)

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
