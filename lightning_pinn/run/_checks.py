"""Checks of a run's paths, done before any training: the checkpoint to resume from and the
output directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["check_checkpoint", "check_out_dir"]


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    first = lines[0].split(". ")[0].rstrip(".") if lines else ""
    return f"{type(err).__name__}: {first}"


def check_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load the checkpoint at ``path`` the way a resume does (CPU, ``weights_only``).

    Returns:
        The checkpoint dict.

    Raises:
        ValueError: the file does not exist, cannot be read (truncated: a run killed while
            saving, or not a checkpoint) or is not a Lightning training checkpoint.
    """
    if not Path(path).is_file():
        raise ValueError(f"--resume: checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # every unreadable file ends here, whatever torch raises
        raise ValueError(
            f"--resume: {str(path)!r} is not a readable checkpoint ({_first_line(err)}); it may "
            "be truncated (a run killed while saving it): resume from another checkpoint"
        ) from err
    missing = (
        [k for k in ("state_dict", "global_step", "loops") if k not in ckpt]
        if isinstance(ckpt, dict)
        else ["state_dict"]
    )
    if missing:
        raise ValueError(
            f"--resume: {str(path)!r} is not a Lightning training checkpoint (no {missing})"
        )
    return ckpt


def check_out_dir(out: str | os.PathLike[str], name: str = "--out") -> None:
    """Check that ``out`` is, or can be created as, a writable directory; creates nothing.

    Args:
        out: the directory.
        name: how the message names it (the flag or argument).

    Raises:
        ValueError: ``out`` or one of its parents is a regular file, or the nearest existing
            parent is not writable.
    """
    path = Path(out).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(
            f"{name} {str(out)!r}: {str(existing)!r} is a file, not a directory; pass another "
            f"{name}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {str(out)!r}: {str(existing)!r} is not writable")
