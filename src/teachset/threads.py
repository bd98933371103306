"""Torch's threads, set in one place from the cores this process may use and the number of
processes working side by side: workers x threads = cores. More threads than cores (two
processes each using every core) makes every small step many times slower."""

from __future__ import annotations

import os

THREADS_ENV = "TEACHSET_THREADS"  # an explicit count per process (--threads) wins over the computed one, then OMP_NUM_THREADS


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int = 1) -> int:
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        explicit = os.environ.get(name, "")
        if explicit.isdigit() and int(explicit) > 0:
            return int(explicit)
    return max(1, cores() // max(1, workers))


def configure_threads(workers: int = 1) -> int:
    """Set torch's intra-op threads for one of `workers` processes sharing this machine; returns the count."""
    import torch

    threads = threads_per_worker(workers)
    torch.set_num_threads(threads)
    return threads
