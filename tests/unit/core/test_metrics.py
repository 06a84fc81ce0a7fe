import numpy as np
import pytest
import torch

from lightning_pinn import RelativeL2Error


def test_matches_numpy_over_batches():
    rng = np.random.default_rng(0)
    preds = [rng.normal(size=(n, 2)) for n in (7, 13, 5)]
    refs = [rng.normal(size=(n, 2)) for n in (7, 13, 5)]
    metric = RelativeL2Error(num_fields=2)
    for p, r in zip(preds, refs):
        metric.update(torch.tensor(p, dtype=torch.float32), torch.tensor(r, dtype=torch.float32))
    p, r = np.concatenate(preds), np.concatenate(refs)
    expected = np.linalg.norm(p - r) / np.linalg.norm(r)
    per_field = np.linalg.norm(p - r, axis=0) / np.linalg.norm(r, axis=0)
    assert float(metric.compute()) == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(metric.compute_per_field().numpy(), per_field, rtol=1e-6)


def test_shape_errors_are_clear():
    metric = RelativeL2Error()
    with pytest.raises(ValueError, match="same shape"):
        metric.update(torch.zeros(3, 1), torch.zeros(4, 1))
    with pytest.raises(ValueError, match="field"):
        metric.update(torch.zeros(3, 2), torch.zeros(3, 2))
