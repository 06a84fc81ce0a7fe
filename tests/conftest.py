"""Shared fixtures: every test starts from the same seeds and a quiet W&B."""

from __future__ import annotations

import os

import lightning as L
import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _seed_everything():
    L.seed_everything(1234, verbose=False)
    yield
