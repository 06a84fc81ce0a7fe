"""glibc ``malloc`` settings that stop CPU training from page-faulting on every step.

A PINN step on a CPU allocates and frees the same few hundred KB-to-MB buffers (activations,
their derivatives, the double-backward graph) over and over. glibc serves such sizes with
``mmap`` or trims them from the heap top when freed, so every step maps fresh pages and the
kernel zero-fills them: measured on Burgers (tanh 64x4, 2 400 points, one thread) about
1 000-1 500 minor page faults per ``PINNModule`` step. Raising both thresholds keeps the
buffers in the heap for reuse (0-20 faults per step). This is what PyTorch's CPU tuning guide
gets from replacing the allocator (jemalloc, tcmalloc); ``mallopt`` does it without a new
dependency. The cost: up to ``trim_threshold`` bytes freed at the heap top stay with the
process instead of going back to the OS.

Both thresholds must move together: raising only the trim threshold switches off glibc's
adaptive ``mmap`` threshold (every buffer over 128 KB is then mapped and unmapped: ~15x the
faults); raising only the ``mmap`` threshold leaves the trimming.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["tune_allocator"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_applied: bool | None = None  # once per process


def tune_allocator(
    mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30, *, force: bool = False
) -> bool:
    """Keep freed buffers in the heap (glibc on Linux); a no-op elsewhere.

    Called once per process by :class:`~lightning_pinn.PINNModule` when training starts on a
    CPU (``PINNModule(tune_allocator=False)`` turns it off); later calls return the first
    result unless ``force``.

    Args:
        mmap_threshold: allocations below this many bytes come from the heap (glibc's largest
            allowed value on 64-bit is 32 MiB).
        trim_threshold: free memory at the heap top kept before returning it to the OS.
        force: apply again even if an earlier call did.

    Returns:
        Whether both settings were applied (``False`` off Linux, without glibc, or when
        ``mallopt`` refused a value).
    """
    global _applied
    if _applied is not None and not force:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # The mmap threshold first: setting either one turns the adaptive threshold off.
    ok = mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
    ok = ok and mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1
    _applied = ok
    return ok
