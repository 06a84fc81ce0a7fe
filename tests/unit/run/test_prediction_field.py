"""The prediction figure's evaluation follows the module's dtype (``precision="64-true"``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lightning_pinn.run import prediction_field


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_prediction_field_evaluates_in_the_modules_dtype(dtype):
    torch.manual_seed(0)
    module = nn.Linear(2, 1).to(dtype)  # float64: what Trainer(precision="64-true") leaves
    g = torch.linspace(0.0, 1.0, 5)
    points = torch.cartesian_prod(g, g)  # float32, as the problems' evaluation points are

    def reference(x):
        return x.sum(dim=1, keepdim=True)

    field = prediction_field(module, reference, points)
    assert field["grid"] == (5, 5)
    assert field["prediction"].dtype == np.float32
    with torch.no_grad():
        expected = module(points.to(dtype)).float().numpy()
    np.testing.assert_allclose(field["prediction"], expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        field["error"], np.abs(expected - points.sum(1, keepdim=True).numpy()), rtol=1e-6, atol=1e-7
    )
