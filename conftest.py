"""Doctests of the package's docstrings (``pytest`` collects them with ``--doctest-modules``):
every example runs with ``torch`` and the public API in scope, as a user's script has them."""

from __future__ import annotations

import pytest
import torch

import lightning_pinn


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace: dict) -> None:
    doctest_namespace["torch"] = torch
    for package in ("", ".adapters", ".data", ".networks", ".strategies", ".diagnostics"):
        module = __import__(f"lightning_pinn{package}", fromlist=["__all__"])
        for name in getattr(module, "__all__", ()):
            doctest_namespace.setdefault(name, getattr(module, name))
    doctest_namespace["lightning_pinn"] = lightning_pinn
