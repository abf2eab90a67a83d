"""Data between stages: problem loaders (`problems.py`), prompt building (`prompts.py`), on-disk
row schemas (`records.py`), atomic resumable parquet shards (`shards.py`) and the
length-harmonizing dataset stage (`build_dataset.py`)."""
