"""The guarded switch: after the probe, train each candidate intervention ``trial_steps`` steps
from the same state, score it on held-out points, keep the best (docs/concepts.md).

Order of work, all at step boundaries (``on_train_batch_end``): at the end of the probe the
state is snapshotted (weights with the adapter structure, optimizer and schedules, strategy
and its state, module counters, the data index) and the held-out losses measured; candidate 1
is set. After each trial its held-out losses are scored and its end state snapshotted; the
start state is restored and the next candidate set. After the last one the scores are
all-reduced (mean; identical on every rank), the best is chosen and its end state restored,
so training continues as if the winner alone had been trained from the probe on.

The data: a :class:`~lightning_pinn.data.CollocationDataModule` is rewound, so every candidate
sees the batches an uninterrupted run would, and the score uses points no step trains on. Any
other data loader cannot be rewound, so its batches are replayed instead: the first candidate
trains on the loader's batches, which are recorded (on the CPU), and every later candidate is
fed the same batches in the same order; the score uses the last :data:`HELD_BATCHES` batches of
the probe. Training then continues with the loader's next batch.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import Tensor

from lightning_pinn._snapshot import restore_snapshot, take_snapshot, to_cpu
from lightning_pinn.callbacks._switching import apply_intervention, intervention_name
from lightning_pinn.diagnostics import ConflictReport, TrialResult, TrialScore, trial_score
from lightning_pinn.module import PINNModule
from lightning_pinn.strategies import Strategy, strategy_names

__all__ = [
    "DEFAULT_CANDIDATES",
    "HELD_BATCHES",
    "GuardedTrial",
    "check_candidates",
    "rank_candidates",
    "waypoints",
]

DEFAULT_CANDIDATES: tuple[str, ...] = ("none", "reweight")
"""Tried besides the diagnosed intervention when ``candidates`` is not given."""


HELD_BATCHES = 4
"""With a data loader that cannot be rewound, the trials score on the last this many batches
of the probe (each trained on once, and the same for every candidate)."""


def rewindable(datamodule: object) -> bool:
    """Whether the trials can rewind ``datamodule``'s stream and draw held-out points from it."""
    return hasattr(datamodule, "rewind") and hasattr(datamodule, "held_out")


def waypoints(steps: int) -> tuple[int, ...]:
    """The steps inside a trial of ``steps`` after which the held-out losses are also measured
    (1/4, 1/2 and 3/4 of the way, without 0 and the end), for the report's ``during``."""
    return tuple(sorted({round(f * steps) for f in (0.25, 0.5, 0.75)} - {0, steps}))


def check_candidates(candidates: Sequence[str | Strategy] | None) -> list[str | Strategy] | None:
    """Validate the user's candidate list (names or strategy objects); ``None`` stays ``None``.

    Raises:
        ValueError: empty list, an unknown name, a repeated one or an unregistered strategy
            class.
        TypeError: an entry that is neither a name nor a strategy object.
    """
    if candidates is None:
        return None
    if isinstance(candidates, str) or not candidates:
        raise ValueError(f"candidates must be a non-empty list, got {candidates!r}")
    out: list[str | Strategy] = []
    for c in candidates:
        if not isinstance(c, str | Strategy):
            raise TypeError(f"a candidate is a strategy name or object, got {c!r}")
        if intervention_name(c) not in strategy_names():
            raise ValueError(
                f"unknown candidate {c!r}; registered strategies: {', '.join(strategy_names())}"
            )
        if any(c is d or (isinstance(c, str) and c == d) for d in out):
            raise ValueError(
                f"candidates names {c!r} twice; each candidate is trained for trial_steps, so "
                "a repeat only spends steps. List each once (two strategy objects of one kind "
                "with different options are different candidates)"
            )
        out.append(c)
    return out


def _key(c: str | Strategy) -> str:
    return c if isinstance(c, str) else repr(c)


def rank_candidates(
    diagnosed: str | Strategy, candidates: Sequence[str | Strategy] | None
) -> list[str | Strategy]:
    """The diagnosis's prior: the diagnosed intervention first, then the candidates in the
    order given (default ``none``, ``reweight``), duplicates dropped, ``none`` always in."""
    given = list(candidates) if candidates is not None else list(DEFAULT_CANDIDATES)
    ranked: list[str | Strategy] = []
    for c in [diagnosed, *given, "none"]:
        if _key(c) not in {_key(r) for r in ranked}:
            ranked.append(c)
    return ranked


def max_candidates(candidates: Sequence[str | Strategy] | None, interventions: Mapping) -> int:
    """The most candidates any diagnosis can give (for the step-budget check in setup)."""
    return max(len(rank_candidates(v, candidates)) for v in interventions.values())


def max_discarded_steps(
    trial_steps: int, candidates: Sequence[str | Strategy] | None, interventions: Mapping
) -> int:
    """The most Trainer steps the losing trials can take from the run: they count against
    ``max_steps`` but not as the module's training steps (the winner's trial does)."""
    return (max_candidates(candidates, interventions) - 1) * trial_steps


class GuardedTrial:
    """The trials of one fit: candidates, scores and snapshots; saved in checkpoints."""

    def __init__(
        self,
        steps: int,
        score: TrialScore,
        options: Mapping[str, Any],
        candidates: list[str | Strategy],
        margin: float = 0.0,
    ) -> None:
        self.steps = steps
        self.score = score
        self.margin = margin  # the diagnosis's first choice stands unless beaten by this much
        self.options = dict(options)  # strategy_options of a candidate given by name
        self.candidates = candidates  # in the diagnosis's order
        self.current = -1  # index of the candidate being trained; -1: not started
        self.done_steps = 0  # steps of the current trial so far
        self.start: dict[str, Any] | None = None  # the snapshot at the end of the probe
        self.before: Tensor | None = None  # held-out losses at the start [K]
        self.ends: list[dict[str, Any]] = []  # each finished candidate's end snapshot
        self.after: list[Tensor] = []  # each finished candidate's held-out losses [K]
        self.waypoints = waypoints(steps)
        self.during: list[Tensor] = []  # the current candidate's losses at its waypoints
        self.after_during: list[Tensor] = []  # each finished candidate's [W, K]
        self.results: tuple[TrialResult, ...] = ()
        self.replay = False  # the data loader cannot be rewound: record and replay its batches
        self.held: list[Any] = []  # replay: the scoring batches (the probe's last ones, CPU)
        self.recorded: list[Any] = []  # replay: the first candidate's batches (CPU)

    @property
    def active(self) -> bool:
        return 0 <= self.current < len(self.candidates)

    def begin(self, trainer: L.Trainer, module: PINNModule, held: Sequence[Any] = ()) -> None:
        """Snapshot the start, measure the held-out losses and set the first candidate.

        ``held``: the probe's last batches (CPU), the scoring set when the data loader cannot
        be rewound.
        """
        self.replay = not rewindable(trainer.datamodule)
        if self.replay:
            if not held:
                raise RuntimeError("the guarded switch has no probe batches to score on")
            self.held, self.recorded = list(held), []
        self.start = take_snapshot(module, trainer, self._consumed(trainer))
        self.before = self._held_out_losses(module, trainer)
        self.current, self.done_steps = 0, 0
        self._set(module)

    def step(self, trainer: L.Trainer, module: PINNModule) -> bool:
        """Count one trained step; at a trial's end move on. True when the trials are over."""
        self.done_steps += 1
        if self.done_steps in self.waypoints:
            self.during.append(self._held_out_losses(module, trainer))
        if self.done_steps < self.steps:
            return False
        self.after.append(self._held_out_losses(module, trainer))
        k = len(module.loss_names)
        self.after_during.append(torch.stack(self.during) if self.during else torch.zeros(0, k))
        self.during = []
        self.ends.append(take_snapshot(module, trainer, self._consumed(trainer)))
        self.current += 1
        self.done_steps = 0
        assert self.start is not None
        if self.current < len(self.candidates):
            self._rewind(trainer, restore_snapshot(module, trainer, self.start))
            self._set(module)
            return False
        self._choose(trainer, module)
        return True

    def feed(self, module: PINNModule, batch: Any) -> Any:
        """The batch a trial step trains on when the loader cannot be rewound: the loader's
        own, recorded, for the first candidate; the recorded one of the same step after it."""
        if self.current == 0:
            if len(self.recorded) == self.done_steps:
                self.recorded.append(to_cpu(batch))
            return batch
        # a copy: losses() may mark or change its batch in place
        batch = to_cpu(self.recorded[self.done_steps])
        return module.transfer_batch_to_device(batch, module.device, 0)

    def _consumed(self, trainer: L.Trainer) -> int:
        return 0 if self.replay else int(trainer.datamodule.consumed)

    def _rewind(self, trainer: L.Trainer, index: int) -> None:
        if not self.replay:
            trainer.datamodule.rewind(index)

    def _held_out_losses(self, module: PINNModule, trainer: L.Trainer) -> Tensor:
        """The unweighted losses ``[K]`` on this rank's held-out points (CPU, float64): the
        data module's held-out batch, or the mean over the probe's last batches; the scores
        of all ranks are averaged before the choice."""
        if not self.replay:
            held_out = trainer.datamodule.held_out(rank=trainer.global_rank)
            return _losses_on(module, trainer, held_out)
        rows = [_losses_on(module, trainer, to_cpu(batch)) for batch in self.held]
        return torch.stack(rows).mean(dim=0)

    def _set(self, module: PINNModule) -> None:
        choice = self.candidates[self.current]
        rank_zero_info(f"ConflictCallback: trial {self.current + 1}/{len(self.candidates)}")
        apply_intervention(module, choice, "trial", {} if choice == "none" else self.options)

    def finished_report(self, report: ConflictReport) -> ConflictReport:
        """``report`` with the trial table, the chosen candidate and the steps spent."""
        return dataclasses.replace(
            report,
            strategy=intervention_name(self.chosen),
            trial=self.results,
            trial_steps=self.steps,
            trial_steps_spent=self.steps * len(self.results),
            trial_score=self.score,
            trial_margin=self.margin,
        )

    def _choose(self, trainer: L.Trainer, module: PINNModule) -> None:
        assert self.before is not None
        local = torch.stack([trial_score(self.before, a, self.score) for a in self.after])
        reduce = trainer.strategy.reduce
        scores = reduce(local.to(module.device), reduce_op="mean").detach().cpu().double()  # (n,)
        after = reduce(torch.stack(self.after).to(module.device), reduce_op="mean").cpu()  # (n, K)
        during = reduce(torch.stack(self.after_during).to(module.device), reduce_op="mean").cpu()
        scores = torch.where(torch.isnan(scores), torch.full_like(scores, float("inf")), scores)
        best = int(torch.argmin(scores))  # ties: the better diagnosis rank
        if scores[0] <= scores[best] * (1.0 + self.margin):  # not beaten clearly enough
            best = 0
        self._rewind(trainer, restore_snapshot(module, trainer, self.ends[best]))
        names = module.loss_names
        self.results = tuple(
            TrialResult(
                candidate=_key(intervention_name(c) if isinstance(c, str) else c),
                score=float(scores[i]),
                rank=i + 1,
                chosen=i == best,
                losses={n: float(v) for n, v in zip(names, after[i].tolist(), strict=True)},
                during=tuple(
                    {
                        "steps": s,
                        "losses": {n: float(v) for n, v in zip(names, row.tolist(), strict=True)},
                    }
                    for s, row in zip(self.waypoints, during[i], strict=True)
                ),
            )
            for i, c in enumerate(self.candidates)
        )
        self.start, self.ends = None, []  # the snapshots are no longer needed
        self.held, self.recorded = [], []
        rank_zero_info(
            f"ConflictCallback: guarded switch keeps {self.results[best].candidate!r} "
            f"(score {float(scores[best]):.4g}) at step {module.train_steps}"
        )

    @property
    def chosen(self) -> str | Strategy:
        return self.candidates[next(i for i, r in enumerate(self.results) if r.chosen)]

    def state_dict(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "done_steps": self.done_steps,
            "candidates": [_key(c) for c in self.candidates],
            "start": self.start,
            "before": to_cpu(self.before),
            "ends": self.ends,
            "after": [to_cpu(a) for a in self.after],
            "during": [to_cpu(d) for d in self.during],
            "after_during": [to_cpu(d) for d in self.after_during],
            "results": [r.to_dict() for r in self.results],
            "replay": self.replay,
            "held": self.held,
            "recorded": self.recorded,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore (the candidates must be the ones the checkpoint was saved with)."""
        mine = [_key(c) for c in self.candidates]
        if mine != list(state["candidates"]):
            raise ValueError(
                f"the checkpoint's trial candidates {state['candidates']} differ from this "
                f"callback's {mine}; resume with the same candidates"
            )
        self.current, self.done_steps = int(state["current"]), int(state["done_steps"])
        self.start, self.ends = state["start"], list(state["ends"])
        self.before, self.after = state["before"], list(state["after"])
        if "after_during" in state:
            self.during, self.after_during = list(state["during"]), list(state["after_during"])
        else:  # a checkpoint from before the waypoints: its trials report no ``during``
            self.waypoints, self.during = (), []
            self.after_during = [torch.zeros(0, len(a)) for a in self.after]
        self.results = tuple(TrialResult.from_dict(r) for r in state["results"])
        self.replay = bool(state.get("replay", False))
        self.held, self.recorded = list(state.get("held", [])), list(state.get("recorded", []))


def _losses_on(module: PINNModule, trainer: L.Trainer, batch: Any) -> Tensor:
    """The unweighted losses ``[K]`` of ``module`` on ``batch`` (CPU, float64)."""
    # as Lightning's loops do with training batches: float64 under precision="64-true"
    batch = trainer.precision_plugin.convert_input(copy.copy(batch))
    batch = module.transfer_batch_to_device(batch, module.device, 0)
    with torch.enable_grad():  # derivatives of the network's output
        values = module.losses(batch)
    return torch.stack([values[n].detach().double().cpu() for n in module.loss_names])
