"""Doctests of the package's docstrings (``pytest`` collects them with ``--doctest-modules``):
every example runs with ``torch`` and the public API in scope, as a user's script has them."""

from __future__ import annotations

import importlib

import pytest
import torch

import lightning_pinn

_API = ("", ".adapters", ".data", ".networks", ".strategies", ".diagnostics")


@pytest.fixture(autouse=True, scope="session")
def _doctest_names(doctest_namespace: dict) -> None:
    """Filled once per session (``doctest_namespace`` is session-scoped)."""
    doctest_namespace["torch"] = torch
    for name in _API:
        module = importlib.import_module(f"lightning_pinn{name}")
        for public in getattr(module, "__all__", ()):
            doctest_namespace.setdefault(public, getattr(module, public))
    doctest_namespace["lightning_pinn"] = lightning_pinn
