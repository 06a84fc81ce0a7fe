"""The exact solution plugged into every problem's losses gives (numerically) zero losses."""

import pytest
import torch
from torch import Tensor, nn

from lightning_pinn import problems
from lightning_pinn.problems import ProblemModule

# Every problem with a closed-form (or quadrature-exact, Burgers) reference.
CLOSED_FORM = [n for n in problems.names() if n != "allen_cahn"]


class ExactTrunk(nn.Module):
    """The reference solution in place of the network (one unused parameter for the module)."""

    def __init__(self, problem: problems.Problem) -> None:
        super().__init__()
        self.problem = problem
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        return self.problem.reference(x) + 0 * self.dummy


def _batch(problem: problems.Problem) -> dict[str, Tensor]:
    dm = problem.datamodule(points={name: 64 for name in problem.point_sets()})
    return {k: v.double() for k, v in dm.sample(0).items()}


def _losses(module: ProblemModule, batch: dict[str, Tensor]) -> dict[str, float]:
    out = module.losses({k: v.clone() for k, v in batch.items()})
    return {k: float(v.detach()) for k, v in out.items()}


@pytest.mark.parametrize("name", CLOSED_FORM)
def test_exact_solution_zeroes_every_loss(name: str) -> None:
    overrides = {"noise": 0.0} if name.endswith("_inverse") else {}
    problem = problems.get(name, **overrides)
    batch = _batch(problem)
    exact = ProblemModule(problem, trunk=ExactTrunk(problem)).double()
    for key, value in problem.true_values().items():
        exact.coefficients[key].data.fill_(value)
    random = ProblemModule(problem).double()
    exact_losses, random_losses = _losses(exact, batch), _losses(random, batch)
    assert list(exact_losses) == list(problem.loss_names) or set(exact_losses) == set(
        problem.loss_names
    )
    for key in problem.loss_names:
        assert random_losses[key] > 0, key
        assert exact_losses[key] <= 1e-8 * random_losses[key], (key, exact_losses, random_losses)


@pytest.mark.parametrize("name", problems.names())
def test_reference_and_eval_points_shapes(name: str) -> None:
    problem = problems.get(name)
    points = problem.eval_points()
    assert points.ndim == 2 and points.shape[1] == problem.input_dim
    values = problem.reference(points[:50])
    assert values.shape == (50, problem.output_dim)
    assert torch.isfinite(values).all()
    assert len(problem.field_names) == problem.output_dim
    assert len(problem.coordinate_names) == problem.input_dim


@pytest.mark.parametrize("name", ["poisson_nd-d20", "heat_nd"])
def test_dimension_dependent_problems(name: str) -> None:
    problem = problems.get(name)
    module = problem.module()
    batch = problem.datamodule(points={k: 8 for k in problem.point_sets()}).sample(0)
    assert all(v.shape[1] == problem.input_dim for v in batch.values())
    assert set(module.losses(batch)) == set(problem.loss_names)
