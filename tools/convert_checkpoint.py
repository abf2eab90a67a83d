#!/usr/bin/env python
"""HF <-> Megatron checkpoint conversion; the same as `o1p convert ...`.

    python tools/convert_checkpoint.py hf-to-mcore --hf-dir H --out M
    python tools/convert_checkpoint.py mcore-to-hf --mcore-dir M --out H
    torchrun --nproc-per-node 4 tools/convert_checkpoint.py verify --hf-dir H --mcore-dir M \
        --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2
"""

import sys

from megatron_o1p.cli import main

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))
