"""Evaluation: accuracy and length of a model on benchmarks (`evaluate.py`, `o1p evaluate`: the
sample and grade stages' code per benchmark; its metrics in `metrics.py`, summary.json in
`summary.py`, the per-benchmark results files in `results.py`), the Accuracy-Efficiency Score
of O1-Pruner Table 2 (`aes.py`, pure math), and the comparison of evaluated runs against a
baseline (`compare.py`, `o1p compare`)."""
