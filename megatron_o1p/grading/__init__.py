"""Grading: final-answer extraction (`extract.py`), math-verify equivalence in a sandboxed
process pool (`equivalence.py`), and the `o1p grade` stage over rollout files (`grade.py`)."""
