"""Evaluation: accuracy and length of a model on benchmarks (`evaluate.py`, `o1p evaluate`),
the Accuracy-Efficiency Score of O1-Pruner Table 2 (`aes.py`, pure math), and the comparison of
evaluated runs against a baseline (`compare.py`, `o1p compare`)."""
