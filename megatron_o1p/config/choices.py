"""The fixed choices of flags, as plain constants (no torch, megatron or vLLM import), so that
`o1p <cmd> --help` and config validation stay fast. The modules that act on a choice import it
from here; nothing else spells these lists.

Tested by tests/unit/test_cli.py (the flags that offer these choices).
"""

LOSSES = ("o1-pruner", "sft", "dpo")
"""`--loss`: O1-Pruner's length-harmonizing loss (eq. 11), SFT (token-mean NLL), sigmoid DPO."""

RATIOS = ("token", "sequence")
"""`--ratio`: per-token ratios, or the official code's length-normalised sequence ratio."""

LOSS_AGGREGATIONS = ("seq-mean", "token-mean")
"""`--loss-aggregation`: mean over each sequence then over sequences, or over all tokens."""

LOGPROB_IMPLS = ("chunked", "native", "triton", "fused-head")
"""`--logprob-impl`: see `ops/logprobs.py`; the first three take the logits, fused-head the
hidden states and the output weight (`ops/logprobs_fused_head.py`)."""

SPEC_NAMES = ("auto", "te", "local")
"""`--spec`: Transformer Engine's layer spec, megatron's local one, or TE where it runs."""

LR_DECAY_STYLES = ("constant", "linear", "cosine")

EXTRACT_MODES = ("last", "first")
"""`--extract`: the last `\\boxed{}` after `</think>`, or the official O1-Pruner extractor (first
closed `boxed{` of the whole response; `grading/extract.py`)."""

SPEED_PROMPTS = ("normal", "fast")
"""`--speed-prompt`: "fast" appends the paper's fast-solving suffix."""

PRESETS = ("math", "gsm8k")
"""`--preset`: column mappings of known problem files (`data/problems.py`)."""

REWARDS = ("o1-pruner", "kimi", "l1", "dapo-overlong", "shorter-better", "alp")
"""`--reward`: R_LH (eq. 8-10) and the alternative length rewards of `rewards.py`."""

NORMALIZATIONS = ("zscore", "none")
"""`--normalize`: rewards are z-scored over the dataset (official) or used as they are."""
