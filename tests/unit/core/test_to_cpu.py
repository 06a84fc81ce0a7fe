"""``to_cpu``: the copies the guarded switch keeps (snapshots, recorded batches)."""

from __future__ import annotations

from collections import namedtuple

import torch

from lightning_pinn._snapshot import to_cpu

Batch = namedtuple("Batch", ["x", "y"])


def test_batches_of_every_shape_are_copied_detached():
    x = torch.randn(3, 2, requires_grad=True)
    batch = {"a": [x, (x, 2)], "b": Batch(x, "label")}
    copy = to_cpu(batch)
    assert type(copy["b"]) is Batch and copy["b"].y == "label"
    assert type(copy["a"][1]) is tuple and copy["a"][1][1] == 2
    for t in (copy["a"][0], copy["a"][1][0], copy["b"].x):
        assert torch.equal(t, x) and not t.requires_grad
        assert t.data_ptr() != x.data_ptr()  # a copy: the caller may change its batch
