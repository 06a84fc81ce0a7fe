"""Fixtures shared by the command-line tests: the CLI in a subprocess, a tiny Burgers, a plain
``sys.argv`` for ``LightningCLI``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest

TINY_BURGERS_POINTS = "residual=64,initial=16,boundary=16"


@pytest.fixture
def tiny_burgers_points() -> str:
    """``--points`` value of a Burgers run that trains in a second."""
    return TINY_BURGERS_POINTS


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess]:
    """``run_cli(*args, cwd=None, env=None)``: ``python -m lightning_pinn.cli ARGS`` in a
    subprocess with W&B offline, output captured as text."""

    def call(*args: str, cwd=None, env: dict[str, str] | None = None):
        env = {**os.environ, "WANDB_MODE": "offline"} if env is None else dict(env)
        # A W&B run earlier in this process leaves WANDB_SERVICE (its service socket) in the
        # environment; a child would attach to that service instead of starting its own.
        env.pop("WANDB_SERVICE", None)
        return subprocess.run(
            [sys.executable, "-m", "lightning_pinn.cli", *args],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=cwd,
        )

    return call


@pytest.fixture
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sys.argv`` without pytest's own arguments (LightningCLI warns when they sit next to
    ``args=``)."""
    monkeypatch.setattr("sys.argv", ["lightning-pinn"])
