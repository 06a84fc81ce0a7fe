"""The guarded switch: ConflictCallback(trial_steps=...) tries candidates from one restored
state, keeps the best by a held-out score, and continues from its end state."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from _support import tiny_burgers, tiny_trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from lightning_pinn import ConflictCallback
from lightning_pinn.callbacks._trial import waypoints
from lightning_pinn.diagnostics import ConflictReport, TrialResult
from lightning_pinn.strategies import AdapterStrategy, NoneStrategy
from lightning_pinn.strategies._registry import _REGISTRY

PROBE, TRIAL, AFTER = 6, 4, 3
ALL_REGIMES = ("directional", "magnitude", "low")


class Ascent(NoneStrategy):
    """A candidate known to be worse: gradient ascent on the summed loss."""

    name = "ascent"

    def update(self, *args, **kwargs):
        update, weights = super().update(*args, **kwargs)
        return -update, weights


class AscentAdapters(AdapterStrategy):
    """Worse and with adapters (parameters the restore must remove): ascent on θ_s."""

    name = "ascent_adapters"

    def update(self, *args, **kwargs):
        update, weights = super().update(*args, **kwargs)
        return -update, weights


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    monkeypatch.setitem(_REGISTRY, "ascent", Ascent)
    monkeypatch.setitem(_REGISTRY, "ascent_adapters", AscentAdapters)


BAD = "ascent_adapters"


def _everywhere(choice):
    return dict.fromkeys(ALL_REGIMES, choice)


def _fit(steps, callbacks=(), ckpt_path=None, **trainer_kw):
    torch.manual_seed(0)
    problem = tiny_burgers()
    module, datamodule = problem.module(), problem.datamodule()
    trainer = tiny_trainer(steps, callbacks, **trainer_kw)
    trainer.fit(module, datamodule, ckpt_path=ckpt_path)
    return module, datamodule, trainer


def _optimizer_state(trainer):
    state = trainer.optimizers[0].state_dict()
    return state["state"], state["param_groups"]


def _assert_same_state(a, b):
    (ma, da, ta), (mb, db, tb) = a, b
    sa, sb = ma.state_dict(), mb.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    (state_a, groups_a), (state_b, groups_b) = _optimizer_state(ta), _optimizer_state(tb)
    assert [g["lr"] for g in groups_a] == [g["lr"] for g in groups_b]
    assert [len(g["params"]) for g in groups_a] == [len(g["params"]) for g in groups_b]
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        for name, value in state_a[key].items():
            assert torch.equal(value, state_b[key][name]), (key, name)
    assert (da.consumed, ma.train_steps) == (db.consumed, mb.train_steps)
    assert ma.strategy_name == mb.strategy_name and not ma.has_adapters


@pytest.mark.parametrize("bad_first", [True, False], ids=["bad-then-none", "none-then-bad"])
def test_trying_a_candidate_then_none_is_bitwise_the_plain_run(bad_first):
    """The adapters candidate is tried and thrown away: weights (adapter structure included),
    optimizer, schedule and data stream end bitwise as in a run that never tried it."""
    interventions = _everywhere(BAD if bad_first else "none")
    candidates = ["none"] if bad_first else [BAD]
    cb = ConflictCallback(
        probe_steps=PROBE, trial_steps=TRIAL, interventions=interventions, candidates=candidates
    )
    guarded = _fit(PROBE + 2 * TRIAL + AFTER, [cb])
    assert [(r.candidate, r.chosen) for r in cb.report.trial][0 if not bad_first else 1] == (
        "none",
        True,
    )
    assert cb.report.strategy == "none" and cb.report.trial_steps_spent == 2 * TRIAL
    assert guarded[2].global_step == PROBE + 2 * TRIAL + AFTER
    plain = _fit(PROBE + TRIAL + AFTER)
    _assert_same_state(guarded, plain)


def test_a_nonlinear_adapter_candidate_is_thrown_away_cleanly():
    """Nonlinear adapters cannot be folded into the weights; the restore drops them without
    folding (the snapshot's weights load over the trunk), so the run ends as the plain one."""
    bad = AscentAdapters(rank=2, form="nonlinear")
    cb = ConflictCallback(
        probe_steps=PROBE, trial_steps=TRIAL, interventions=_everywhere(bad), candidates=["none"]
    )
    guarded = _fit(PROBE + 2 * TRIAL + AFTER, [cb])
    assert [r.chosen for r in cb.report.trial] == [False, True]
    _assert_same_state(guarded, _fit(PROBE + TRIAL + AFTER))


@pytest.mark.parametrize("score", ["geomean", "sum", "residual"])
@pytest.mark.parametrize("bad", [BAD, Ascent()], ids=["adapters", "object"])
def test_known_worse_candidate_is_never_chosen(bad, score):
    for seed_candidates in (["reweight", "none"], ["none", "reweight"]):
        cb = ConflictCallback(
            probe_steps=PROBE,
            trial_steps=TRIAL,
            interventions=_everywhere(bad),
            candidates=seed_candidates,
            trial_score=score,
        )
        module, _, _ = _fit(PROBE + 3 * TRIAL + 1, [cb])
        rows = {r.candidate: r for r in cb.report.trial}
        assert [r.rank for r in cb.report.trial] == [1, 2, 3]
        assert cb.report.trial[0].candidate == (bad if isinstance(bad, str) else repr(bad))
        assert not cb.report.trial[0].chosen
        assert cb.report.trial[0].score == max(r.score for r in cb.report.trial)
        chosen = [name for name, r in rows.items() if r.chosen]
        assert chosen in (["none"], ["reweight"]) and module.strategy_name == chosen[0]
        assert not module.has_adapters
        assert "trial" in cb.report.to_dict() and "### Guarded switch" in cb.report.to_markdown()


def test_margin_keeps_the_diagnosis_choice_unless_clearly_beaten():
    """``trial_margin``: the first-ranked candidate stands unless another one's score times
    ``1 + margin`` is below its own; the trials themselves do not change."""

    def guarded(margin):
        cb = ConflictCallback(
            probe_steps=PROBE,
            trial_steps=TRIAL,
            interventions=_everywhere("ascent"),
            candidates=["none"],
            trial_margin=margin,
        )
        module, _, _ = _fit(PROBE + 2 * TRIAL + 1, [cb])
        return cb.report, module

    plain, module = guarded(0.0)
    worse, better = (r.score for r in plain.trial)
    assert worse > better and module.strategy_name == "none"  # the best score wins
    ratio = worse / better
    for margin, kept in ((ratio - 1) / 2, "none"), (ratio - 1 + 1e-3, "ascent"):
        report, module = guarded(margin)
        assert [r.score for r in report.trial] == [r.score for r in plain.trial]
        assert report.strategy == module.strategy_name == kept
        assert [r.chosen for r in report.trial] == [kept == "ascent", kept == "none"]
        assert report.trial_margin == margin
        assert ConflictReport.from_dict(report.to_dict()).trial_margin == margin
        assert f"beaten by a factor {1 + margin:g}" in report.to_markdown()


def test_losses_during_a_trial_are_those_a_shorter_trial_ends_with():
    """``during``: each candidate's held-out losses part-way equal the end losses of a run
    with trials that short, so one record replays every shorter trial length."""

    def trials(steps):
        cb = ConflictCallback(
            probe_steps=PROBE,
            trial_steps=steps,
            interventions=_everywhere("adapters"),
            candidates=["reweight", "none"],
        )
        _fit(PROBE + 3 * steps + 1, [cb])
        return cb.report.trial

    long = trials(TRIAL)
    assert waypoints(TRIAL) == (1, 2, 3) and waypoints(2) == (1,) and waypoints(1) == ()
    for row in long:
        assert [d["steps"] for d in row.during] == [1, 2, 3]
    short = trials(2)
    for a, b in zip(long, short, strict=True):
        assert a.candidate == b.candidate and a.during[1]["losses"] == b.losses
        assert [d["losses"] for d in b.during] == [a.during[0]["losses"]]
    again = TrialResult.from_dict(long[0].to_dict())
    assert again == long[0] and json.loads(json.dumps(long[0].to_dict()))["during"][2]["steps"] == 3


def test_trials_run_in_float64_under_64_true():
    """Under precision="64-true" the held-out points and the batches drawn again after a
    rewind are float64 too (they bypass the loop's conversion); a float32 batch failed."""
    cb = ConflictCallback(
        probe_steps=PROBE,
        trial_steps=TRIAL,
        interventions=_everywhere("adapters"),
        candidates=["none", "reweight"],
    )
    module, _, _ = _fit(PROBE + 3 * TRIAL + AFTER, [cb], precision="64-true")
    assert len(cb.report.trial) == 3
    assert all(math.isfinite(t.score) for t in cb.report.trial)
    assert {p.dtype for p in module.parameters()} == {torch.float64}
    assert module.train_steps == PROBE + TRIAL + AFTER  # the kept trial, then the rest


def test_without_trial_steps_nothing_changes():
    cb = ConflictCallback(probe_steps=PROBE, interventions=_everywhere("reweight"))
    module, _, _ = _fit(PROBE + 3, [cb])
    assert cb.report.trial == () and cb.report.trial_steps_spent == 0
    assert cb.report.to_dict()["trial"] == [] and module.strategy_name == "reweight"


def _checkpointed_trials(root: Path) -> tuple[ConflictCallback, ModelCheckpoint]:
    """Trials of adapters, reweight and none, and a checkpoint after every step in ``root``."""
    cb = ConflictCallback(
        probe_steps=PROBE,
        trial_steps=TRIAL,
        interventions=_everywhere("adapters"),
        candidates=["reweight", "none"],
    )
    ckpt = ModelCheckpoint(dirpath=root, every_n_train_steps=1, save_top_k=-1, filename="{step}")
    return cb, ckpt


def test_resume_mid_trial_equals_uninterrupted(tmp_path: Path):
    def run(root: Path, ckpt_path: str | None = None):
        cb, ckpt = _checkpointed_trials(root)
        out = _fit(PROBE + 3 * TRIAL + AFTER, [cb, ckpt], ckpt_path, enable_checkpointing=True)
        return cb, out

    full_cb, full = run(tmp_path / "full")
    # Mid-trial of the first (adapters) and of the second candidate, and at a trial boundary.
    for step in (PROBE + 2, PROBE + TRIAL, PROBE + TRIAL + 1):
        ckpt = tmp_path / "full" / f"step={step}.ckpt"
        assert ckpt.exists()
        resumed_cb, resumed = run(tmp_path / f"resumed{step}", str(ckpt))
        assert resumed_cb.report.to_dict() == full_cb.report.to_dict()
        sa, sb = full[0].state_dict(), resumed[0].state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), step
        assert full[1].consumed == resumed[1].consumed


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("steps", [0, -3, 1.5, True, "10"])
def test_bad_trial_steps(steps):
    with pytest.raises(ValueError, match="trial_steps"):
        ConflictCallback(probe_steps=5, trial_steps=steps)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown candidate"):
        ConflictCallback(probe_steps=5, trial_steps=2, candidates=["none", "sugery"])
    with pytest.raises(ValueError, match="trial_score"):
        ConflictCallback(probe_steps=5, trial_steps=2, trial_score="mean")
    with pytest.raises(ValueError, match="auto_switch"):
        ConflictCallback(probe_steps=5, trial_steps=2, auto_switch=False)
    for margin in (-0.1, float("nan"), float("inf"), True, "0.2"):
        with pytest.raises(ValueError, match="trial_margin"):
            ConflictCallback(probe_steps=5, trial_steps=2, trial_margin=margin)


def _fails_in_setup(cb, steps, module=None, datamodule=True, match=""):
    problem = tiny_burgers()
    module = module or problem.module()
    trainer = tiny_trainer(steps, [cb])
    with pytest.raises(ValueError, match=match):
        if datamodule:
            trainer.fit(module, problem.datamodule())
        else:
            trainer.fit(module, problem.datamodule().train_dataloader())
    assert module.train_steps == 0  # before the first step


def test_trials_longer_than_the_budget_fail_in_setup():
    # probe 5 + 3 candidates x 5 = 20 steps: max_steps must be above that.
    cb = ConflictCallback(probe_steps=5, trial_steps=5)
    _fails_in_setup(cb, 20, match="max_steps=20")


class _NoLinear(nn.Module):
    """A trunk with no nn.Linear: adapters have nothing to attach to."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(2, 16) * 0.5)
        self.w2 = nn.Parameter(torch.randn(16, 1) * 0.5)

    def forward(self, x):
        return torch.tanh(x @ self.w1) @ self.w2


def test_candidate_the_module_cannot_take_fails_in_setup():
    cb = ConflictCallback(probe_steps=3, trial_steps=2, interventions=_everywhere("reweight"))
    cb2 = ConflictCallback(
        probe_steps=3, trial_steps=2, interventions=_everywhere("none"), candidates=["adapters"]
    )
    for callback in (cb, cb2):
        module = tiny_burgers().module(trunk=_NoLinear())
        if callback is cb:  # reweight and none fit this trunk: the fit runs
            tiny_trainer(12, [callback]).fit(module, tiny_burgers().datamodule())
            continue
        _fails_in_setup(callback, 12, module=module, match="trial candidate 'adapters'")


# ------------------------------------------------- a data loader that cannot be rewound
class _RandomPoints(torch.utils.data.IterableDataset):
    """A user's own loader: fresh random Burgers points every step, no rewind, no held-out."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed)
        while True:
            x = torch.rand(64, 1, generator=generator) * 2 - 1
            t = torch.rand(64, 1, generator=generator)
            x0 = torch.rand(16, 1, generator=generator) * 2 - 1
            tb = torch.rand(16, 1, generator=generator)
            side = torch.where(torch.rand(16, 1, generator=generator) < 0.5, -1.0, 1.0)
            yield {
                "residual": torch.cat([x, t], 1),
                "initial": torch.cat([x0, torch.zeros_like(x0)], 1),
                "boundary": torch.cat([side, tb], 1),
            }


def _fit_loader(steps, callbacks=(), ckpt_path=None, spy=None, **trainer_kw):
    """``_fit`` on a plain DataLoader; ``spy`` collects the residual points of every step."""
    torch.manual_seed(0)
    module = tiny_burgers().module()
    if spy is not None:
        train_step, losses, in_step = module.training_step, module.losses, [False]

        def training_step(batch, batch_idx):
            in_step[0] = True
            try:
                return train_step(batch, batch_idx)
            finally:
                in_step[0] = False

        def recording_losses(batch):
            if in_step[0]:
                spy.append(batch["residual"].detach().clone())
            return losses(batch)

        module.training_step, module.losses = training_step, recording_losses
    trainer = tiny_trainer(steps, callbacks, **trainer_kw)
    loader = torch.utils.data.DataLoader(_RandomPoints(), batch_size=None)
    trainer.fit(module, loader, ckpt_path=ckpt_path)
    return module, trainer


@pytest.mark.parametrize("bad", [BAD, Ascent()], ids=["adapters", "object"])
def test_trials_replay_the_batches_of_a_plain_data_loader(bad):
    """Without a rewindable data module the first candidate's batches are recorded and fed to
    the others in the same order; the known-worse candidate is still never chosen."""
    seen: list[torch.Tensor] = []
    cb = ConflictCallback(
        probe_steps=PROBE,
        trial_steps=TRIAL,
        interventions=_everywhere(bad),
        candidates=["none", "reweight"],
    )
    module, trainer = _fit_loader(PROBE + 3 * TRIAL + AFTER, [cb], spy=seen)
    assert len(seen) == PROBE + 3 * TRIAL + AFTER == trainer.global_step
    trials = [seen[PROBE + i * TRIAL : PROBE + (i + 1) * TRIAL] for i in range(3)]
    for later in trials[1:]:
        assert all(torch.equal(a, b) for a, b in zip(trials[0], later, strict=True))
    assert not torch.equal(trials[0][0], trials[0][1])  # the loader's own, fresh batches
    after = seen[PROBE + 3 * TRIAL :]  # the loader again, not a replayed batch
    assert not any(torch.equal(a, b) for a in after for b in trials[0])
    assert [r.rank for r in cb.report.trial] == [1, 2, 3] and not cb.report.trial[0].chosen
    assert cb.report.trial[0].score == max(r.score for r in cb.report.trial)
    assert module.strategy_name in ("none", "reweight") and not module.has_adapters
    assert module.trial_feed is None


def test_replayed_trials_resume_with_their_batches(tmp_path: Path):
    """A resumed run inside a replayed trial has the recorded batches and the scoring batches
    (they are in the checkpoint): the trial table equals the uninterrupted run's. (Inside the
    probe or the first trial the loader itself restarts, so only a rewindable data module
    resumes there exactly.)"""

    def run(root: Path, ckpt_path: str | None = None):
        cb, ckpt = _checkpointed_trials(root)
        _fit_loader(PROBE + 3 * TRIAL + AFTER, [cb, ckpt], ckpt_path, enable_checkpointing=True)
        return cb

    full = run(tmp_path / "full")
    # inside the second and the third candidate's (replayed) trials
    for step in (PROBE + TRIAL + 1, PROBE + 2 * TRIAL + 2):
        ckpt = tmp_path / "full" / f"step={step}.ckpt"
        resumed = run(tmp_path / f"resumed{step}", str(ckpt))
        assert [r.to_dict() for r in resumed.report.trial] == [
            r.to_dict() for r in full.report.trial
        ], step


def test_report_files_and_logged_scores_carry_the_trial(tmp_path: Path):
    import json

    from lightning.pytorch.loggers import CSVLogger

    cb = ConflictCallback(probe_steps=PROBE, trial_steps=TRIAL, interventions=_everywhere(BAD))
    logger = CSVLogger(tmp_path)
    _, _, trainer = _fit(PROBE + 3 * TRIAL + 2, [cb], logger=logger, log_every_n_steps=1)
    log_dir = Path(trainer.log_dir)
    saved = json.loads((log_dir / "conflict_report.json").read_text())
    assert [row["candidate"] for row in saved["trial"]] == [BAD, "none", "reweight"]
    assert saved["trial_steps_spent"] == 3 * TRIAL and saved["strategy"] != BAD
    assert (
        "| candidate | score | diagnosis rank | chosen |"
        in (log_dir / "conflict_report.md").read_text()
    )
    header = (log_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "conflict/trial/score/none" in header and "conflict/alignment" in header


def test_lbfgs_phase_inside_the_trials_fails_in_setup():
    from lightning_pinn.optim import LBFGSPhase

    module = tiny_burgers().module(lbfgs=LBFGSPhase(after=5, max_iter=2))
    cb = ConflictCallback(probe_steps=3, trial_steps=4)
    _fails_in_setup(cb, 40, module=module, match="L-BFGS phase starts at step 5")


def test_lbfgs_phase_the_losing_trials_would_crowd_out_fails_in_setup():
    from lightning_pinn.optim import LBFGSPhase

    # 40 Trainer steps, two losing trials of 4: the module counts at most 32, so a phase
    # after 35 module steps could never run
    module = tiny_burgers().module(lbfgs=LBFGSPhase(after=35, max_iter=2))
    cb = ConflictCallback(probe_steps=3, trial_steps=4)
    _fails_in_setup(cb, 40, module=module, match="the phase might never run")


def test_a_recipe_run_with_trials_still_reaches_its_lbfgs_phase(tmp_path: Path):
    from lightning_pinn.run import RunConfig, apply_recipe, load_recipe, run_experiment

    cfg = RunConfig(
        problem="burgers",
        max_steps=60,
        probe_steps=20,
        trial_steps=8,
        points={"residual": 64, "initial": 16, "boundary": 16},
        logger="csv",
        out=str(tmp_path),
        progress_bar=False,
        checkpoint=False,
        plots=False,
        threads=1,
        log_every_n_steps=1,
    )
    given = {"max_steps", "probe_steps", "points"}
    summary = run_experiment(apply_recipe(cfg, load_recipe("burgers"), given))
    assert summary["report"]["trial_steps_spent"] in (16, 24)
    with next(tmp_path.rglob("metrics.csv")).open() as f:
        phases = {row["optim/phase"] for row in csv.DictReader(f) if row.get("optim/phase")}
    # the recipe's switch at 80% is placed on the 44 steps two losing trials can leave (step
    # 35), not on the 60 of the Trainer (step 48, which the module might never count)
    assert {float(p) for p in phases} == {0.0, 1.0}


def test_reprobes_after_the_trials_are_logged_and_resume(tmp_path: Path):
    def run(root: Path, ckpt_path: str | None = None):
        cb = ConflictCallback(
            probe_steps=PROBE,
            trial_steps=2,
            candidates=["none"],
            interventions=_everywhere("reweight"),
            reprobe_every=3,
            reprobe_steps=2,
        )
        ckpt = ModelCheckpoint(
            dirpath=root, every_n_train_steps=1, save_top_k=-1, filename="{step}"
        )
        module, _, _ = _fit(PROBE + 2 * 2 + 7, [cb, ckpt], ckpt_path, enable_checkpointing=True)
        return cb, module

    cb, module = run(tmp_path / "full")
    settled = PROBE + 2  # the winner's module step after the trials
    assert [e["step"] for e in cb.report.reprobes] == [settled + 3, settled + 6]
    assert all(
        e["strategy"] == module.strategy_name or e["switched_to"] for e in cb.report.reprobes
    )
    assert "Re-probe at step" in cb.report.to_markdown()
    assert cb.report.to_dict()["reprobes"] == [dict(e) for e in cb.report.reprobes]
    # Global step 12 = module step 10: inside the first re-probe window (module steps 10-11).
    resumed, resumed_module = run(tmp_path / "resumed", str(tmp_path / "full" / "step=12.ckpt"))
    assert resumed.report.to_dict() == cb.report.to_dict()
    sa, sb = module.state_dict(), resumed_module.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_negative_loss_with_trials_fails_at_the_first_step():
    """Trial scores are loss ratios: a signed loss would be scored as if it had vanished
    (before: clamped to 1e-308 and ranked silently)."""
    problem = tiny_burgers()
    plain = problem.losses
    first = problem.loss_names[0]

    def signed(module, batch):
        return {k: -v if k == first else v for k, v in plain(module, batch).items()}

    problem.losses = signed
    module = problem.module()
    cb = ConflictCallback(probe_steps=PROBE, trial_steps=TRIAL)
    trainer = tiny_trainer(PROBE + 3 * TRIAL + AFTER, [cb])
    with pytest.raises(ValueError, match=rf"need losses >= 0.*'{first}': -"):
        trainer.fit(module, problem.datamodule())
    assert module.train_steps == 1
    # without trials the signed loss trains (the diagnosis alone decides)
    module = problem.module()
    tiny_trainer(PROBE + 2, [ConflictCallback(probe_steps=PROBE)]).fit(module, problem.datamodule())
    assert module.train_steps == PROBE + 2
