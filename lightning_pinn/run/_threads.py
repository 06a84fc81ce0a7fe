"""Torch threads of a run: a default that does not oversubscribe the cores, and a one-line
notice when the requested threads exceed the cores that are free.

Two multi-threaded processes on 2 cores slowed a run about 20x in our measurement: threads that
wait for a core spin instead of computing. So a process that shares the cores with others
(``benchmark --jobs N``) uses one thread, and a single run at most :data:`MAX_DEFAULT_THREADS`.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

__all__ = [
    "MAX_DEFAULT_THREADS",
    "ThreadGovernor",
    "available_cores",
    "default_threads",
    "oversubscription",
    "runnable_threads",
]

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
    # One thread per process already: the only remedy left is fewer processes.
    fix = "pass --threads 1" if threads > 1 else f"pass --jobs {max(1, int(free))}"
    return (
        f"{who} but only {free:.1f} of {available_cores()} cores are free (load average); "
        f"expect a slowdown, or {fix}"
    )


def runnable_threads() -> float | None:
    """Threads runnable on the machine right now (``procs_running`` of ``/proc/stat``, Linux),
    else the 1-minute load average; ``None`` where neither is known."""
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("procs_running"):
                    return float(line.split()[1])
    except OSError:
        pass
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


class ThreadGovernor(Callback):
    """Lowers torch's threads while other work shares the cores, and raises them back after.

    For a run whose thread count was not given (``run`` without ``--threads``). Every
    ``every`` training steps it samples the runnable threads of the machine, counts this
    run's own threads as runnable (OpenMP threads that wait for a core spin), and takes the
    median of the last ``window`` samples as the other work. It then uses
    ``max(1, min(threads, round(cores - others)))`` threads (``torch.set_num_threads`` takes
    effect at once). Two default runs started together on 2 cores otherwise spin against each
    other (4.25x slower each, measured; docs/cli.md).

    Args:
        threads: the most threads to use (the run's default).
        every: steps between samples.
        window: samples in the median.
        cores: the cores this process may use (default :func:`available_cores`).
        sample: the probe of runnable threads (default :func:`runnable_threads`; tests).
    """

    def __init__(
        self,
        threads: int,
        every: int = 10,
        window: int = 3,
        cores: int | None = None,
        sample: Callable[[], float | None] = runnable_threads,
    ) -> None:
        self.threads = max(1, int(threads))
        self.every = max(1, int(every))
        self.window = max(1, int(window))
        self.cores = cores if cores is not None else available_cores()
        self.sample = sample
        self.others: list[float] = []
        self.changes: list[tuple[int, int]] = []  # (step, threads) at each change

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        step = trainer.global_step
        if step % self.every != 0:
            return
        running = self.sample()
        if running is None:
            return
        own = torch.get_num_threads()
        self.others = [*self.others, max(0.0, running - own)][-self.window :]
        others = statistics.median(self.others)
        want = max(1, min(self.threads, int(self.cores - others + 0.5)))
        if want != own:
            torch.set_num_threads(want)
            self.changes.append((step, want))

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        torch.set_num_threads(self.threads)
