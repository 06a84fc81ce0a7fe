"""Shared fixtures: every test starts from the same seeds and a quiet W&B."""

from __future__ import annotations

import os

import lightning as L
import pytest
import torch

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
