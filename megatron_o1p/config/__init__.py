"""Configs that compose: one small dataclass per component, each owning its flags, help and
validation (`flags.py`). Commands (`megatron_o1p/commands/`) add the flags of the configs they
need and build them from the parsed namespace; stage functions take configs, never argparse.

    choices.py    the fixed choices of flags (torch-free constants)
    flags.py      `flag(...)` fields, the `Flags` mixin (add_arguments / from_args), `require`
    parallel.py   ParallelConfig: TP, PP, virtual pipeline, sequence parallel; derived sizes
    model.py      ModelConfig: checkpoint to load, layer spec, dtype, sequence length

Stage configs that compose these live beside their stage (`training/config.py` TrainConfig, ...).
Nothing here imports torch, megatron-core or vLLM, so `o1p <cmd> --help` stays fast.
"""
