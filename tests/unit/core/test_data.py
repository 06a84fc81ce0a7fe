import pytest
import torch

from lightning_pinn.data import Box, BoxBoundary, CollocationDataModule, PointSet, sample_unit


def _dm(method="uniform", seed=0):
    box = Box((-1.0, 0.0), (1.0, 1.0))
    return CollocationDataModule(
        {
            "residual": (box, 100),
            "initial": PointSet(Box((-1.0, 0.0), (1.0, 0.0)), 20),
            "boundary": (BoxBoundary(box, (0,)), 30),
        },
        seed=seed,
        method=method,
    )


@pytest.mark.parametrize("method", ["uniform", "lhs", "sobol"])
def test_batches_fresh_each_step_reproducible_and_in_domain(method):
    dm = _dm(method)
    b0, b1 = dm.sample(0), dm.sample(1)
    assert b0["residual"].shape == (100, 2)
    assert not torch.equal(b0["residual"], b1["residual"])
    assert torch.equal(_dm(method).sample(0)["residual"], b0["residual"])
    r = b0["residual"]
    assert (r[:, 0] >= -1).all() and (r[:, 0] <= 1).all() and (r[:, 1] >= 0).all()
    assert (b0["initial"][:, 1] == 0).all()
    assert set(b0["boundary"][:, 0].tolist()) <= {-1.0, 1.0}


def test_seed_and_rank_change_points():
    dm = _dm()
    assert not torch.equal(dm.sample(0)["residual"], _dm(seed=1).sample(0)["residual"])
    assert not torch.equal(dm.sample(0, rank=0)["residual"], dm.sample(0, rank=1)["residual"])


def test_lhs_has_one_point_per_stratum():
    pts = sample_unit(50, 3, torch.Generator().manual_seed(0), "lhs")
    for d in range(3):
        assert sorted((pts[:, d] * 50).floor().long().tolist()) == list(range(50))


def test_any_dimension():
    box = Box(tuple([0.0] * 7), tuple([1.0] * 7))
    dm = CollocationDataModule(
        {"residual": (box, 10), "boundary": (BoxBoundary(box, tuple(range(7))), 10)}
    )
    b = dm.sample(3)
    assert b["residual"].shape == (10, 7)
    on_face = ((b["boundary"] == 0) | (b["boundary"] == 1)).any(dim=1)
    assert on_face.all()


def test_stream_resumes_at_consumed_index():
    dm = _dm()
    dm.load_state_dict({"consumed": 5, "seed": 0})
    first = next(iter(dm.train_dataloader()))
    assert torch.equal(first["residual"], dm.sample(5)["residual"])


def test_bad_inputs():
    with pytest.raises(ValueError, match="upper must be >= lower"):
        Box((1.0,), (0.0,))
    with pytest.raises(ValueError, match="n >= 1"):
        PointSet(Box((0.0,), (1.0,)), 0)
    with pytest.raises(ValueError, match="sampling method"):
        _dm(method="grid")


def _fixed_dm(seed=0, resample=False):
    box = Box((-1.0, 0.0), (1.0, 1.0))
    return CollocationDataModule(
        {"residual": (box, 50), "boundary": (BoxBoundary(box, (0,)), 10)},
        seed=seed,
        resample=resample,
    )


def test_fixed_points_are_the_same_every_step_and_deterministic_from_the_seed():
    dm = _fixed_dm()
    stream = iter(dm.train_dataloader())
    first, second, third = next(stream), next(stream), next(stream)
    for name in ("residual", "boundary"):
        assert torch.equal(first[name], second[name]) and torch.equal(first[name], third[name])
        assert first[name] is not second[name]  # a copy per step: in-place marks do not leak
        assert torch.equal(dm.sample(7)[name], first[name])
        assert torch.equal(_fixed_dm().sample(0)[name], first[name])
    # The fixed set is batch 0 of the resampled stream with the same seed.
    assert torch.equal(first["residual"], _fixed_dm(resample=True).sample(0)["residual"])
    assert not torch.equal(first["residual"], _fixed_dm(seed=1).sample(0)["residual"])
    first["residual"].requires_grad_(True)
    assert not next(stream)["residual"].requires_grad


def test_resampling_is_the_default_and_fixed_points_survive_a_resume():
    dm = _fixed_dm(resample=True)
    assert dm.resample is True
    stream = iter(dm.train_dataloader())
    assert not torch.equal(next(stream)["residual"], next(stream)["residual"])
    fixed = _fixed_dm()
    fixed.load_state_dict({"consumed": 5, "seed": 0})
    resumed = next(iter(fixed.train_dataloader()))
    assert torch.equal(resumed["residual"], fixed.sample(0)["residual"])


def test_resample_must_be_a_bool():
    with pytest.raises(TypeError, match="resample must be True or False"):
        _fixed_dm(resample="yes")
