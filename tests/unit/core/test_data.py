import math
import warnings

import pytest
import torch

from lightning_pinn.data import (
    Box,
    BoxBoundary,
    CollocationDataModule,
    PointSet,
    check_batch,
    sample_unit,
)


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
    with pytest.raises(ValueError, match=r"bounds must be finite numbers, got \(nan,\)"):
        Box((float("nan"),), (1.0,))  # before: accepted, and every point sampled was NaN
    with pytest.raises(ValueError, match="bounds must be finite"):
        Box((0.0,), (float("inf"),))
    with pytest.raises(ValueError, match="at least one dimension"):
        Box((), ())
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


class _EmptyRegion:
    """A custom region that returns no points (e.g. a filter that rejects every sample)."""

    dim = 2

    def sample(self, n, generator, method):
        return torch.empty(0, 2)


def test_an_empty_point_set_is_named_not_a_nan_loss():
    box = Box((0.0, 0.0), (1.0, 1.0))
    dm = CollocationDataModule({"residual": (box, 8), "obstacle": (_EmptyRegion(), 8)})
    with pytest.raises(ValueError, match=r"empty point set\(s\) \['obstacle'\]"):
        next(iter(dm.train_dataloader()))
    with pytest.raises(ValueError, match=r"\['initial'\].*\(0, 2\)"):
        check_batch({"residual": torch.ones(3, 2), "initial": torch.ones(0, 2)})
    empty_eval = CollocationDataModule(
        {"residual": (box, 8)}, eval_points=torch.empty(0, 2), eval_values=torch.empty(0, 1)
    )
    with pytest.raises(ValueError, match="eval_points is empty"):
        empty_eval.val_dataloader()


def test_no_max_steps_warns_that_the_stream_is_infinite():
    import lightning as L

    dm = _dm()
    dm.trainer = L.Trainer(max_time={"seconds": 1}, logger=False, enable_progress_bar=False)
    with pytest.warns(UserWarning, match="stream is infinite.*max_steps is unset"):
        dm.setup("fit")
    dm.trainer = L.Trainer(max_steps=5, logger=False, enable_progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dm.setup("fit")


def test_a_fit_that_nothing_would_stop_is_refused():
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping

    dm = _dm()
    dm.trainer = L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False)
    with pytest.raises(ValueError, match="this fit would never end; set Trainer\\(max_steps=N\\)"):
        dm.setup("fit")  # before: a warning, then a run that never ended (max_epochs=1)
    stop = EarlyStopping(monitor="val/rel_l2")
    dm.trainer = L.Trainer(callbacks=[stop], logger=False, enable_progress_bar=False)
    with pytest.warns(UserWarning, match="stream is infinite"):
        dm.setup("fit")  # something can stop it: a warning only
    dm.trainer = L.Trainer(max_epochs=2, limit_train_batches=3, logger=False)
    with pytest.warns(UserWarning, match="stream is infinite"):
        dm.setup("fit")  # 2 epochs of 3 batches: finite


def test_validation_is_batched_and_gives_the_same_number_as_point_by_point(tiny_burgers):
    from torch.utils.data import DataLoader, TensorDataset

    problem = tiny_burgers()
    module = problem.module()
    dm = problem.datamodule(seed=0)
    dm.eval_batch_size = 1000  # several batches, the last one partial
    loader = dm.val_dataloader()
    n = dm.eval_points.shape[0]
    assert n % 1000 != 0 and len(loader) == -(-n // 1000)
    assert loader.batch_size is None and loader.dataset[0][0].shape == (1000, 2)  # whole slices
    x, y = next(iter(loader))
    assert x.shape == (1000, 2) and torch.equal(x, dm.eval_points[:1000].float())

    def validate(datamodule):
        import lightning as L

        trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
        return trainer.validate(module, datamodule=datamodule, verbose=False)[0]["val/rel_l2"]

    class PointByPoint(type(dm)):
        def val_dataloader(self):  # the loader before batching: a TensorDataset indexed per point
            data = TensorDataset(self.eval_points.float(), self.eval_values.reshape(n, -1).float())
            return DataLoader(data, batch_size=self.eval_batch_size, shuffle=False)

    old = PointByPoint(dm.sets, eval_points=dm.eval_points, eval_values=dm.eval_values)
    old.eval_batch_size = 1000
    assert validate(dm) == pytest.approx(validate(old), rel=1e-7, abs=1e-7)


def test_rewind_replays_the_stream_with_batches_drawn_ahead():
    """After rewind(i) the next batch handed on is batch i, even if the loader had drawn
    batches ahead (Lightning prefetches one)."""
    from types import SimpleNamespace

    line = Box((0.0,), (1.0,))
    dm = CollocationDataModule({"residual": (line, 8), "b": (BoxBoundary(line, (0,)), 2)}, seed=3)
    dm.trainer = SimpleNamespace(global_rank=0, training=True, max_steps=10)
    it = iter(dm.train_dataloader())

    def hand(batch):
        return dm.on_before_batch_transfer(batch, 0)

    ahead = next(it)  # prefetched
    got = []
    for _ in range(4):
        nxt = next(it)
        got.append(hand(ahead))
        ahead = nxt
    assert dm.consumed == 4
    dm.rewind(1)
    replay = []
    for _ in range(3):
        nxt = next(it)
        replay.append(hand(ahead))
        ahead = nxt
    for a, b in zip(got[1:4], replay, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert dm.consumed == 4
    with pytest.raises(ValueError, match="index"):
        dm.rewind(-1)


def test_held_out_is_fresh_per_rank_and_never_a_training_batch():
    line = Box((0.0,), (1.0,))
    dm = CollocationDataModule({"residual": (line, 16)}, seed=0, resample=False)
    held = dm.held_out()["residual"]
    assert torch.equal(held, dm.held_out()["residual"])
    assert not torch.equal(held, dm.sample(0)["residual"])
    assert not torch.equal(held, dm.held_out(rank=1)["residual"])


def _module(**kwargs):
    return CollocationDataModule({"r": (Box([0.0], [1.0]), 4)}, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [  # before: a RuntimeError from reshape, a nan or inf val/rel_l2, or a crash at validation
        (
            {"eval_points": torch.rand(5, 1), "eval_values": torch.rand(4, 1)},
            r"eval_values has 4 rows .* but eval_points has 5",
        ),
        (
            {"eval_points": torch.rand(5, 1), "eval_values": torch.full((5, 1), math.nan)},
            "must be finite",
        ),
        (
            {"eval_points": torch.rand(5, 1), "eval_values": torch.zeros(5, 1)},
            "0 at every evaluation point",
        ),
    ],
)
def test_evaluation_values_that_make_no_relative_error_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _module(**kwargs).val_dataloader()


def test_eval_batch_size_and_point_counts_must_be_positive_integers():
    with pytest.raises(ValueError, match="eval_batch_size must be >= 1"):
        _module(eval_batch_size=0)
    with pytest.raises(ValueError, match="an integer n >= 1 points, got True"):
        PointSet(Box([0.0], [1.0]), True)
