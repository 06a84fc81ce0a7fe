"""Shared fixtures: the same seeds in every test, a quiet W&B, a tiny Burgers and a tiny Trainer.

The builders live in ``tests/_support.py`` so module-level helpers can import them too.
"""

from __future__ import annotations

import os

import lightning as L
import pytest
import torch
from _support import tiny_burgers as _tiny_burgers
from _support import tiny_trainer as _tiny_trainer

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _seed_everything():
    L.seed_everything(1234, verbose=False)
    yield


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny test problems run faster on one thread, and far faster when other processes
    # share the 2 CI cores (oversubscribed intra-op threads slow them up to 10x).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_burgers():
    """``tiny_burgers(n_residual=128, n_initial=32, n_boundary=32)``: a Burgers problem."""
    return _tiny_burgers


@pytest.fixture
def tiny_trainer():
    """``tiny_trainer(steps, callbacks=(), **overrides)``: a quiet Trainer."""
    return _tiny_trainer
