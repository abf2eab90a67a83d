"""Process memory: let freed tensors go back to the OS, and read/reset the peak RSS (Linux).

Tested by tests/e2e/test_convert_cli.py (conversion peak memory); measured by
benchmarks/convert_memory.py.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_MMAP_THRESHOLD = -3


def release_freed_tensors_to_os(threshold_bytes: int = 1 << 20) -> None:
    """Make glibc serve allocations above `threshold_bytes` with mmap, so freeing returns them.

    NOTE: glibc raises its mmap threshold to the size of the last freed mmapped block (up to
    32 MiB), after which layer-sized tensors come from the heap and freed ones stay in the
    process: streaming a 24-layer conversion then grew RSS by one layer per layer (measured with
    benchmarks/convert_memory.py). A fixed threshold keeps the peak at what is alive.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, threshold_bytes)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


def _status_mib(key: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def rss_mib() -> float:
    """Current resident set size in MiB."""
    return _status_mib("VmRSS")


def peak_rss_mib() -> float:
    """Peak resident set size (VmHWM) in MiB since start or the last `reset_peak_rss`."""
    return _status_mib("VmHWM")


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
