"""LossConfig: which loss `o1p train` optimises and its hyper-parameters (eq. 11, SFT, DPO)."""

from __future__ import annotations

from dataclasses import dataclass

from megatron_o1p.config.choices import LOGPROB_IMPLS, LOSS_AGGREGATIONS, LOSSES, RATIOS
from megatron_o1p.config.flags import Flags, flag, require


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
        "sequence ratio",
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
