"""Torch threads of a run: a default that does not oversubscribe the cores, and a one-line
notice when the requested threads exceed the cores that are free.

Two multi-threaded processes on 2 cores slowed a run about 20x in our measurement: threads that
wait for a core spin instead of computing. So a process that shares the cores with others
(``benchmark --jobs N``) uses one thread, and a single run at most :data:`MAX_DEFAULT_THREADS`.
"""

from __future__ import annotations

import os

__all__ = ["MAX_DEFAULT_THREADS", "available_cores", "default_threads", "oversubscription"]

MAX_DEFAULT_THREADS = 4
"""Threads of a single run by default: small PINN networks gain little beyond four."""


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity; ``os.cpu_count()`` elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads(processes: int = 1) -> int:
    """Torch threads per process when ``--threads`` is not given.

    Args:
        processes: how many processes share the cores (``benchmark --jobs``).

    Returns:
        1 when several processes share the cores; otherwise ``$OMP_NUM_THREADS`` when it is
        set, else ``min(available cores, MAX_DEFAULT_THREADS)``.
    """
    if processes > 1:
        return 1
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return min(available_cores(), MAX_DEFAULT_THREADS)


def free_cores() -> float:
    """Available cores minus the 1-minute load average (not below 0; all cores where the load
    average is unknown)."""
    cores = available_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return float(cores)
    return max(0.0, cores - load)


def oversubscription(threads: int, processes: int = 1) -> str | None:
    """A one-line notice when ``threads * processes`` exceeds the free cores, else ``None``."""
    wanted = threads * processes
    free = free_cores()
    if wanted <= max(1.0, free):
        return None
    who = f"{processes} processes x {threads} threads" if processes > 1 else f"{threads} threads"
    return (
        f"{who} but only {free:.1f} of {available_cores()} cores are free (load average); "
        "expect a slowdown, or pass --threads 1"
    )
