"""LossConfig: which loss `o1p train` optimises and its hyper-parameters (eq. 11, SFT, DPO).

Tested by tests/unit/test_losses.py and tests/distributed/test_pipeline_loss.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from megatron_o1p.config.choices import LOGPROB_IMPLS, LOSS_AGGREGATIONS, LOSSES, RATIOS
from megatron_o1p.config.flags import Flags, flag, require

SEQUENCE_RATIO_WARNING = (
    "warning: --ratio sequence (the official code's length-normalised ratio) clips only the "
    "geometric mean of the token ratios, so the few uncertain decision tokens move far past the "
    "clip; in the demo's ablation round 1 collapsed into blind shortening (greedy outputs "
    "identical to the DPO baseline's: n5 accuracy 14.4%, n6 2.4%, Avg AES -1.71; clip fraction "
    "0.21 at the last step). Use the default --ratio token --loss-aggregation seq-mean unless "
    "you are reproducing the official code"
)
"""The first line `o1p train --loss o1-pruner --ratio sequence` prints (README, loss section)."""


@dataclass(frozen=True)
class LossConfig(Flags):
    loss: str = flag(
        "o1-pruner",
        "o1-pruner (eq. 11, needs `o1p ref-logprobs`), sft (token-mean NLL) or dpo (sigmoid)",
        choices=LOSSES,
    )
    epsilon: float = flag(0.2, "PPO clip range: ratios are clipped to [1 - eps, 1 + eps_high]")
    epsilon_high: float | None = flag(None, "upper clip range (clip-higher); None = --epsilon")
    ratio: str = flag(
        "token",
        "token: per-token ratios (safe); sequence: the official code's length-normalised "
        "sequence ratio (for parity runs: it collapsed the demo into blind shortening)",
        choices=RATIOS,
    )
    loss_aggregation: str = flag(
        "seq-mean",
        "seq-mean: mean over each response, then over responses; token-mean: over all tokens",
        choices=LOSS_AGGREGATIONS,
    )
    dpo_beta: float = flag(0.1, "DPO temperature beta")
    logprob_impl: str = flag(
        "chunked",
        "token log-prob kernel (ops/logprobs.py): chunked, native or triton on the "
        "vocab-parallel logits; fused-head from the hidden states and the output weight, "
        "without the logits",
        choices=LOGPROB_IMPLS,
    )

    def __post_init__(self) -> None:
        require(self.loss in LOSSES, f"--loss {self.loss!r}: choose one of {', '.join(LOSSES)}")
        require(self.ratio in RATIOS, f"--ratio {self.ratio!r}: choose one of {RATIOS}")
        require(
            self.loss_aggregation in LOSS_AGGREGATIONS,
            f"--loss-aggregation {self.loss_aggregation!r}: choose one of {LOSS_AGGREGATIONS}",
        )
        require(
            self.logprob_impl in LOGPROB_IMPLS,
            f"--logprob-impl {self.logprob_impl!r}: choose one of {LOGPROB_IMPLS}",
        )
        require(0 < self.epsilon < 1, f"--epsilon must be in (0, 1), got {self.epsilon}")
        require(
            self.epsilon_high is None or self.epsilon_high > 0,
            f"--epsilon-high must be > 0, got {self.epsilon_high}",
        )
        require(self.dpo_beta > 0, f"--dpo-beta must be > 0, got {self.dpo_beta}")

    def ratio_warning(self) -> str | None:
        """The one-line warning for the official sequence ratio, or None for a safe setting.

        Only `--loss o1-pruner` uses the ratio; SFT and DPO never warn.
        """
        if self.loss == "o1-pruner" and self.ratio == "sequence":
            return SEQUENCE_RATIO_WARNING
        return None
