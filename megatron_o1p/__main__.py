"""`python -m megatron_o1p` and `torchrun ... -m megatron_o1p` == `o1p`."""

import sys

from megatron_o1p.cli import main

if __name__ == "__main__":
    sys.exit(main())
