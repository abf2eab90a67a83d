"""megatron_o1p: O1-Pruner (length-harmonizing fine-tuning) on megatron-core."""

__version__ = "0.1.0"
