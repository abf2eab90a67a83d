"""Rollouts: the vLLM engine and sampling parameters (`vllm_engine.py`) and the `o1p sample`
stage that writes K samples per problem as resumable parquet shards (`sample.py`)."""
