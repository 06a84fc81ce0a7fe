"""Causal weighting of the residual (Wang, Sankaran & Perdikaris 2022) and fixed points."""

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from lightning_pinn import problems
from lightning_pinn.networks import MLP
from lightning_pinn.problems._common import causal_mse, mse

CAUSAL = ["burgers", "allen_cahn", "convection", "wave", "klein_gordon", "diffusion_reaction"]


def _residual(n=300, seed=0):
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(n, 1, generator=gen).requires_grad_(True)
    return r, torch.rand(n, generator=gen)


@pytest.mark.parametrize(("eps", "chunks"), [(0.1, 1), (1.0, 7), (10.0, 32), (100.0, 300)])
def test_weights_are_monotone_detached_and_start_at_one(eps, chunks) -> None:
    r, t = _residual()
    loss, w = causal_mse(r, t, eps, chunks)
    assert w.shape == (chunks,) and w[0] == 1
    assert bool((w[1:] <= w[:-1]).all()) and bool((w >= 0).all())  # may underflow to 0
    assert not w.requires_grad and w.grad_fn is None  # no graph: nothing extra to backpropagate
    assert loss.requires_grad and loss.ndim == 0


def test_loss_is_the_weighted_mean_of_chunk_losses_in_time_order() -> None:
    r, t = _residual(n=12)
    loss, w = causal_mse(r, t, eps=2.0, chunks=4)
    order = torch.argsort(t)
    chunk = r.detach()[order].pow(2).reshape(4, 3).mean(dim=1)  # (M,) earliest first
    cumulative = torch.cat([torch.zeros(1), torch.cumsum(chunk, 0)[:-1]])
    torch.testing.assert_close(w, torch.exp(-2.0 * cumulative))
    torch.testing.assert_close(loss.detach(), (w * chunk).mean())
    # The gradient treats the weights as constants: d loss / d r_p = w_i(p) * 2 r_p / (M n_i).
    (grad,) = torch.autograd.grad(loss, r)
    expected = torch.empty_like(r)
    expected[order] = (w.repeat_interleave(3)[:, None] * 2 * r.detach()[order]) / 12
    torch.testing.assert_close(grad, expected)
    # Shuffling the points (with their times) changes nothing.
    perm = torch.randperm(12)
    torch.testing.assert_close(causal_mse(r[perm], t[perm], 2.0, 4)[0], loss)


def test_uneven_chunks_and_multi_component_residuals() -> None:
    gen = torch.Generator().manual_seed(1)
    r, t = torch.randn(10, 3, generator=gen), torch.rand(10, 1, generator=gen)
    loss, w = causal_mse(r, t, eps=0.5, chunks=4)  # groups of 3, 2, 3, 2 (nearly equal)
    assert torch.isfinite(loss) and w.shape == (4,)
    same, _ = causal_mse(r, t, eps=1e-30, chunks=1)
    torch.testing.assert_close(same, mse(r))


def test_eps_zero_is_the_plain_mean_bitwise() -> None:
    r, t = _residual()
    loss, w = causal_mse(r, t, eps=0.0, chunks=16)
    assert torch.equal(loss, mse(r)) and torch.equal(w, torch.ones(16))


@pytest.mark.parametrize(
    ("eps", "chunks", "error", "match"),
    [
        (-0.1, 8, ValueError, "causal_eps must be a finite number >= 0"),
        (float("inf"), 8, ValueError, "causal_eps"),
        (1.0, 0, ValueError, "causal_chunks must be >= 1"),
        (1.0, 2.5, TypeError, "causal_chunks must be an int"),
        ("1", 8, TypeError, "causal_eps must be a number"),
        (1.0, 301, ValueError, "cannot fill causal_chunks=301"),
    ],
)
def test_bad_options_are_rejected(eps, chunks, error, match) -> None:
    r, t = _residual()
    with pytest.raises(error, match=match):
        causal_mse(r, t, eps, chunks)


def test_bad_problem_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="burgers: causal_eps must be a finite number >= 0"):
        problems.get("burgers", causal_eps=-1.0)
    with pytest.raises(ValueError, match="wave: causal_chunks must be >= 1"):
        problems.get("wave", causal_chunks=0)
    with pytest.raises(TypeError, match="causal_chunks"):
        problems.get("wave", causal_chunks=2.0)
    with pytest.raises(ValueError, match="t must hold one time per point"):
        causal_mse(torch.zeros(4, 1), torch.zeros(3), 1.0, 2)


@pytest.mark.parametrize("name", CAUSAL)
def test_every_time_dependent_problem_weights_its_residual(name) -> None:
    plain, causal = problems.get(name), problems.get(name, causal_eps=5.0, causal_chunks=8)
    batch = plain.datamodule(points={k: 64 for k in plain.point_sets()}).sample(0)
    torch.manual_seed(0)
    trunk = MLP(2, 1, width=16, depth=2)
    m_plain, m_causal = plain.module(trunk=trunk), causal.module(trunk=trunk)
    a = m_plain.losses({k: v.clone() for k, v in batch.items()})
    b = m_causal.losses({k: v.clone() for k, v in batch.items()})
    for other in set(a) - {"residual"}:
        assert torch.equal(a[other], b[other])  # only the residual is reweighted
    assert m_plain.causal_weights is None
    w = m_causal.causal_weights
    assert w.shape == (8,) and w[0] == 1 and bool((w[1:] <= w[:-1]).all()) and w[-1] < 1
    assert not torch.equal(a["residual"], b["residual"])
    assert float(m_causal.extra_log_metrics()["causal/min_weight"]) == float(w.min())


def test_causal_training_with_hard_constraints_and_fixed_points(tmp_path) -> None:
    p = problems.get("convection", beta=5.0, hard_constraints=("initial",), causal_eps=1.0)
    torch.manual_seed(0)
    module = p.module(trunk=MLP(2, 1, width=8, depth=2))
    dm = p.datamodule(points={"residual": 64, "boundary": 16}, resample=False)
    assert dm.resample is False
    assert torch.equal(dm.sample(0)["residual"], dm.sample(5)["residual"])
    trainer = L.Trainer(
        max_steps=5,
        logger=CSVLogger(tmp_path),
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, dm)
    assert module.train_steps == 5
    metrics = (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").read_text()
    assert "causal/min_weight" in metrics.splitlines()[0]


def test_problem_datamodule_resamples_by_default() -> None:
    p = problems.get("burgers")
    dm = p.datamodule()
    assert dm.resample is True
    assert not torch.equal(dm.sample(0)["residual"], dm.sample(1)["residual"])
    fixed = p.datamodule(resample=False, seed=3)
    assert torch.equal(fixed.sample(0)["residual"], fixed.sample(9)["residual"])
    assert torch.equal(fixed.sample(0)["residual"], p.datamodule(seed=3).sample(0)["residual"])


def test_given_weights_replace_the_computed_ones_and_must_fit_the_chunks() -> None:
    r, t = _residual(n=12)
    held = torch.tensor([1.0, 0.5, 0.25, 0.125])
    loss, w = causal_mse(r, t, eps=2.0, chunks=4, weights=held)
    order = torch.argsort(t)
    chunk = r.detach()[order].pow(2).reshape(4, 3).mean(dim=1)
    torch.testing.assert_close(w, held)
    torch.testing.assert_close(loss.detach(), (held * chunk).mean())
    with pytest.raises(ValueError, match="one value per chunk"):
        causal_mse(r, t, eps=2.0, chunks=4, weights=torch.ones(3))


def test_lbfgs_holds_the_causal_weights_over_each_call(monkeypatch, tiny_trainer) -> None:
    """A line search needs one objective: within one L-BFGS call every evaluation after the
    first reuses the first one's causal weights; the next call computes fresh ones."""
    from lightning_pinn.optim import LBFGSPhase
    from lightning_pinn.problems import _time_dependent

    p = problems.get("burgers", causal_eps=10.0, causal_chunks=8)
    torch.manual_seed(0)
    module = p.module(trunk=MLP(2, 1, width=8, depth=2), lbfgs=LBFGSPhase(after=2, max_iter=6))
    calls: list[tuple[object, bool, torch.Tensor]] = []  # (hold, weights given, weights used)
    original = _time_dependent.causal_mse

    def spy(residual, t, eps, chunks=32, weights=None):
        loss, w = original(residual, t, eps, chunks, weights)
        if module.causal_hold is not None:
            calls.append((module.causal_hold, weights is not None, w.clone()))  # keeps it alive
        return loss, w

    monkeypatch.setattr(_time_dependent, "causal_mse", spy)
    dm = p.datamodule(points={"residual": 64, "initial": 16, "boundary": 16})
    tiny_trainer(4).fit(module, dm)
    assert module.lbfgs_run.started and module.causal_hold is None
    holds = list({id(h): h for h, _, _ in calls}.values())
    assert len(holds) == 2  # one hold per L-BFGS call (training steps 3 and 4)
    for hold in holds:
        mine = [(given, w) for h, given, w in calls if h is hold]
        assert not mine[0][0] and len(mine) >= 2  # computed once, then evaluated again
        for given, w in mine[1:]:
            assert given and torch.equal(w, mine[0][1])
