"""The L-BFGS phase inside a :class:`~lightning_pinn.PINNModule` run: the switch, one L-BFGS
training step through Lightning's manual optimization (``opt.step(closure=...)``), the
optimizers ``configure_optimizers`` returns, and what a checkpoint holds."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from lightning_pinn._per_loss import evaluate_losses
from lightning_pinn._step import StepRecord, check_losses, step_gradients, step_metrics
from lightning_pinn.data._stream import _batch_seed
from lightning_pinn.optim._lbfgs import LBFGSPhase
from lightning_pinn.optim._schedule import WarmupExponential
from lightning_pinn.problems._common import CausalHold

if TYPE_CHECKING:
    from lightning_pinn.module import PINNModule

__all__ = [
    "CKPT_KEY",
    "check_phase_fits",
    "check_phases",
    "in_lbfgs_phase",
    "lbfgs_parameters",
    "lbfgs_training_step",
    "maybe_begin_lbfgs",
    "phase_hparams",
    "load_phase_state",
    "phase_metrics",
    "save_phase_state",
]

CKPT_KEY = "lightning_pinn_optim"


def check_phases(
    schedule: Any, lbfgs: Any, lr_decay_rate: float
) -> tuple[WarmupExponential | None, LBFGSPhase | None]:
    """Validate the module's phase arguments; a dict of fields becomes the object.

    Returns:
        ``(schedule, lbfgs)`` as objects (or ``None``).

    Raises:
        TypeError: ``schedule`` or ``lbfgs`` of the wrong type.
        ValueError: both ``schedule`` and a step decay (``lr_decay_rate < 1``), or a bad
            field value.
    """
    if isinstance(schedule, Mapping):
        schedule = WarmupExponential(**schedule)
    if isinstance(lbfgs, Mapping):
        lbfgs = LBFGSPhase(**lbfgs)
    if schedule is not None and not isinstance(schedule, WarmupExponential):
        raise TypeError(
            "schedule must be a lightning_pinn.optim.WarmupExponential (or None), got "
            f"{type(schedule).__name__}"
        )
    if lbfgs is not None and not isinstance(lbfgs, LBFGSPhase):
        raise TypeError(
            f"lbfgs must be a lightning_pinn.optim.LBFGSPhase (or None), got {type(lbfgs).__name__}"
        )
    if schedule is not None and lr_decay_rate != 1.0:
        raise ValueError(
            f"give either schedule=WarmupExponential(...) or lr_decay_rate={lr_decay_rate} "
            "(the step decay), not both; WarmupExponential(decay_rate=..., decay_steps=..., "
            "staircase=True) is the step decay with a warm-up"
        )
    return schedule, lbfgs


def phase_hparams(schedule: Any, lbfgs: Any) -> dict[str, Any]:
    """The phases as plain dicts for ``hparams`` (a checkpoint holds data, not classes)."""
    return {
        "schedule": dataclasses.asdict(schedule) if schedule is not None else None,
        "lbfgs": dataclasses.asdict(lbfgs) if lbfgs is not None else None,
    }


def in_lbfgs_phase(module: PINNModule) -> bool:
    """Whether this training step belongs to the L-BFGS phase."""
    phase = module.lbfgs
    return phase is not None and (module.lbfgs_run.started or module.train_steps >= phase.after)


def lbfgs_parameters(module: PINNModule) -> list[torch.nn.Parameter]:
    """Every trainable parameter L-BFGS moves: θ_s, then the adapters (if any)."""
    params = list(module.shared_parameters())
    if module.has_adapters:
        params += module._all_adapter_parameters()
    return params


def check_phase_fits(module: PINNModule) -> None:
    """Fail at fit start when the L-BFGS phase cannot run with this Trainer.

    Raises:
        ValueError: the phase starts at or after ``max_steps``, or the run uses ``16-mixed``
            (its gradient scaler does not work with L-BFGS's line search).
    """
    phase = module.lbfgs
    if phase is None or module.lbfgs_run.started:
        return
    phase.check_fits(module.trainer.max_steps)
    if phase.rad_candidates:
        _check_rad(module, phase)
    if phase.fold_adapters:
        _check_fold(module)
    if getattr(module.trainer.precision_plugin, "scaler", None) is not None:
        raise ValueError(
            "the L-BFGS phase does not work under precision='16-mixed' (a gradient scaler "
            "cannot follow a line search); use '32-true', '64-true' or 'bf16-mixed'"
        )


def _check_fold(module: PINNModule) -> None:
    """``fold_adapters`` needs adapters that fold into the weights: the attached ones, or
    those a later switch would build (the module's switch defaults), on its layers."""
    from lightning_pinn._adapter_config import foldable_in_place

    form = (module._adapter_config or module._switch_defaults).get("form", "linear")
    if form != "linear":
        raise ValueError(
            f"LBFGSPhase(fold_adapters=True) folds the adapters into the weights, but "
            f"adapters of form={form!r} are nonlinear branches, which cannot be folded; use "
            "form='linear' or fold_adapters=False"
        )
    bad = [f"model.{n}" for n, m in module.model.named_modules() if not foldable_in_place(m)]
    if bad:
        raise ValueError(
            "LBFGSPhase(fold_adapters=True) folds the adapters into the weights, but layers "
            f"{bad} have parametrised weights other than random weight factorisation, which "
            "cannot be folded in place; remove the parametrisation or use fold_adapters=False"
        )


def _check_rad(module: PINNModule, phase: LBFGSPhase) -> None:
    """What an adaptive (RAD) L-BFGS batch needs, checked before the first step."""
    from lightning_pinn.data import CollocationDataModule

    if not callable(getattr(module, "pointwise_residual", None)):
        raise ValueError(
            f"LBFGSPhase(rad_candidates={phase.rad_candidates}) scores points by their PDE "
            f"residual, but {type(module).__name__} has no pointwise_residual(batch, name, "
            "points); use a lightning_pinn.problems.ProblemModule or set rad_candidates=0"
        )
    dm = getattr(module.trainer, "datamodule", None)
    if not isinstance(dm, CollocationDataModule):
        raise ValueError(
            f"LBFGSPhase(rad_candidates={phase.rad_candidates}) draws candidates from the "
            "datamodule's regions, which needs a lightning_pinn.data.CollocationDataModule "
            f"passed as trainer.fit(module, datamodule=...), got {type(dm).__name__}"
        )
    if phase.rad_set not in dm.sets:
        raise ValueError(
            f"LBFGSPhase rad_set={phase.rad_set!r} names no point set; the datamodule has "
            f"{list(dm.sets)}"
        )
    n = dm.sets[phase.rad_set].n
    if phase.rad_candidates < n:
        raise ValueError(
            f"LBFGSPhase rad_candidates={phase.rad_candidates} is below the {n} points of set "
            f"{phase.rad_set!r} it keeps; give at least {n} (Wu et al. 2023 score ~10x more)"
        )


def phase_metrics(module: PINNModule) -> dict[str, float]:
    """``optim/phase`` (0: first-order, 1: L-BFGS) when an L-BFGS phase is planned."""
    if module.lbfgs is None:
        return {}
    return {"optim/phase": float(module.lbfgs_run.started)}


def _flat(tensors: Any, like: list[Tensor], dtype: torch.dtype) -> Tensor:
    """``tensors`` (``None``: zeros shaped like ``like``) detached, as one ``[P]`` vector."""
    parts = [
        (t.detach() if t is not None else torch.zeros_like(p)).reshape(-1).to(dtype)
        for t, p in zip(tensors, like, strict=True)
    ]
    return torch.cat(parts)


def maybe_begin_lbfgs(module: PINNModule, batch: Any) -> None:
    """The switch, when this step is the phase's first: freeze the batch and the weights, add
    the L-BFGS optimizer to the Trainer's optimizers, log it.

    Called at the start of a training batch (``on_train_batch_start``), before Lightning
    prepares the step's manual optimization, so the new optimizer's steps count in
    ``trainer.global_step`` like any other.
    """
    run, phase = module.lbfgs_run, module.lbfgs
    if phase is None or run.started or module.train_steps < phase.after:
        return
    if phase.fold_adapters and module.has_adapters:
        from lightning_pinn._switch import fold_adapters

        fold_adapters(module)
    weights = module.loss_weights
    if weights is None:  # no first-order step applied: the plain sum
        weights = torch.ones(module.num_losses, device=module.device)
    run.start(module.train_steps, batch, weights)
    if phase.rad_candidates:
        run.batch = rad_batch(module, run.batch, run.rad_draws)
    optimizer = phase.build(lbfgs_parameters(module))
    module.trainer.optimizers = [*module.trainer.optimizers, optimizer]
    named = ", ".join(f"{n}={w:.4g}" for n, w in zip(module.loss_names, weights.tolist()))
    rank_zero_info(
        f"lightning_pinn: switching to L-BFGS after {module.train_steps} first-order steps "
        f"(max_iter={phase.max_iter}, history={phase.history_size}, frozen batch and "
        f"weights {named})"
    )
    module.log("optim/phase", 1.0, on_step=True, on_epoch=False)


def rad_batch(module: PINNModule, batch: Any, draw: int) -> Any:
    """``batch`` with its set ``rad_set`` drawn by residual-based adaptive distribution.

    ``rad_candidates`` points are drawn from the set's region (a generator seeded by the
    datamodule's seed, the rank and ``draw``, so a resumed run draws the same), scored by the
    module's point-by-point residual, and the set's count of them kept, without replacement,
    with probability ``∝ |r|^k / mean(|r|^k) + c``.
    """
    phase = module.lbfgs
    assert phase is not None
    dm = module.trainer.datamodule
    points = dm.sets[phase.rad_set]
    rank = module.trainer.global_rank
    gen = torch.Generator().manual_seed(_batch_seed(dm.seed + 5_555_555, rank, draw))
    candidates = points.region.sample(phase.rad_candidates, gen, dm.method)
    # the dtype of the set it replaces, which the loop converted (float64 under "64-true")
    candidates = candidates.to(batch[phase.rad_set].dtype)
    base = move_data_to_device(batch, module.device)
    residual = module.pointwise_residual  # type: ignore[attr-defined]
    errors = [
        residual(base, phase.rad_set, part.to(module.device)).detach().double().cpu()
        for part in candidates.split(max(points.n, 1))
    ]
    err = torch.cat(errors)
    err = torch.where(torch.isfinite(err), err, torch.zeros_like(err))
    density = err.pow(phase.rad_k)
    mean = density.mean()
    prob = density / mean + phase.rad_c if mean > 0 else torch.ones_like(density)
    keep = torch.multinomial(prob, points.n, replacement=False, generator=gen)
    out = dict(batch)
    out[phase.rad_set] = candidates[keep].to(batch[phase.rad_set].device)
    return out


def _rad_redraw(module: PINNModule, optimizer: Any) -> None:
    """A fresh adaptive batch: the objective changes, so L-BFGS forgets its history."""
    run = module.lbfgs_run
    run.rad_draws += 1
    run.batch = rad_batch(module, run.batch, run.rad_draws)
    getattr(optimizer, "optimizer", optimizer).state.clear()
    run.last_loss, run.stalled = None, 0
    rank_zero_info(
        f"lightning_pinn: L-BFGS draws adaptive batch {run.rad_draws} (RAD) at training step "
        f"{module.train_steps}"
    )


def _record(module: PINNModule, batch: Any) -> tuple[Tensor, Tensor]:
    """Losses ``[K]`` and ``J`` ``[K, P]`` at the current parameters, as a step computes them."""
    out = evaluate_losses(module, batch)  # per-loss adapters: loss k through adapter k
    loss_list = check_losses(out, module.loss_names, type(module).__name__)
    reduce = None
    if module.trainer.world_size > 1:
        reduce = lambda t: module.trainer.strategy.reduce(t, reduce_op="mean")  # noqa: E731
    jac, _, _, values = step_gradients(loss_list, module.shared_parameters(), None, None, reduce)
    return values, jac


def lbfgs_training_step(module: PINNModule, batch: Any) -> Tensor:
    """One L-BFGS training step (one ``LBFGS.step`` call) on the frozen batch.

    Returns:
        The unweighted sum of the losses at the start of the call (detached), as a
        first-order step returns.
    """
    run, phase = module.lbfgs_run, module.lbfgs
    assert phase is not None
    if not run.started:  # on_train_batch_start was overridden without calling super()
        raise RuntimeError(
            f"{type(module).__name__}.on_train_batch_start must call "
            "super().on_train_batch_start(batch, batch_idx): it starts the L-BFGS phase"
        )
    if run.stopped:  # stalled, but the Trainer went on (e.g. min_steps): count, do nothing
        module.train_steps += 1
        module.last_record = None
        return torch.zeros((), device=module.device)
    frozen = run.device_batch(module.device)
    opt = module.optimizers()[-1]  # type: ignore[index]
    params = list(opt.param_groups[0]["params"])  # fixed at the switch
    shared = module.shared_parameters()
    trainer = module.trainer
    last = trainer.max_steps > 0 and trainer.global_step + 1 >= trainer.max_steps
    record = run.steps % phase.record_every == 0 or last
    no_autocast = torch.autocast(device_type=module.device.type, enabled=False)
    ctx = no_autocast if module.fp32_losses else contextlib.nullcontext()
    values = jac = before = None
    if record:
        with ctx:
            values, jac = _record(module, frozen)  # (K,), (K, P)
        before = _flat(shared, shared, jac.dtype)
    weights = run.weights.to(module.device)
    start: list[Tensor] = []
    finite = [True]

    hold = CausalHold()  # causal weights fixed over this call: one objective per line search

    def closure() -> Tensor:
        hold.rewind()
        with ctx:
            out = evaluate_losses(module, frozen)
            check_losses(out, module.loss_names, type(module).__name__)
            raw = torch.stack([out[n].reshape(()) for n in module.loss_names])  # (K,)
            total = (weights.to(raw.dtype) * raw).sum()
            grads = torch.autograd.grad(total, params, allow_unused=True)
        flat = torch.cat([total.detach().reshape(1), _flat(grads, params, raw.dtype)])
        if trainer.world_size > 1:  # every rank takes the same line search
            flat = trainer.strategy.reduce(flat, reduce_op="mean")
        offset = 1
        for p in params:
            p.grad = flat[offset : offset + p.numel()].view_as(p).to(p.dtype)
            offset += p.numel()
        if not start:
            start.append(raw.detach())
        if not torch.isfinite(flat[0]):
            finite[0] = False
        return flat[0]

    saved = [p.detach().clone() for p in params]
    module.causal_hold = hold
    try:
        loss = opt.step(closure=closure)
    finally:
        module.causal_hold = None
    opt.zero_grad(set_to_none=True)
    module.train_steps += 1
    ok = finite[0] and all(bool(torch.isfinite(p).all()) for p in params)
    if not ok:
        _stop_nonfinite(module, params, saved)
    else:
        run.observe(float(loss))
        redraw = phase.rad_every > 0 and run.steps % phase.rad_every == 0
        if phase.rad_candidates and not last and (redraw or run.stalled >= phase.stall_steps):
            _rad_redraw(module, opt)
        elif run.stalled >= phase.stall_steps:
            run.stopped = True
            trainer.should_stop = True
            rank_zero_info(
                f"lightning_pinn: L-BFGS stalled (objective {run.last_loss:.6g} did not "
                f"decrease in {phase.stall_steps} calls); stopping at training step "
                f"{module.train_steps}"
            )
    if record and ok:
        assert values is not None and jac is not None and before is not None
        update = before - _flat(shared, shared, jac.dtype)
        w = weights.to(jac.dtype)
        module.last_record = StepRecord(module.train_steps, values, jac, update, w, True)
    elif ok and run.stopped:  # the phase's last step: record where it ended (the summary)
        with ctx:
            values, jac = _record(module, frozen)
        w = weights.to(jac.dtype)
        module.last_record = StepRecord(module.train_steps, values, jac, None, w, True)
    else:
        module.last_record = None
    raw_start = start[0] if start else torch.full((module.num_losses,), float("nan"))
    if module._should_log() or record:
        metrics: dict[str, Any] = {"loss/total": raw_start.sum()}
        metrics.update({f"loss/{n}": raw_start[k] for k, n in enumerate(module.loss_names)})
        if record and ok:
            metrics.update(step_metrics(module.loss_names, values, jac, w))
        metrics["optim/phase"] = 1.0
        metrics["optim/lbfgs_objective"] = float(loss)
        metrics["optim/lbfgs_stalled"] = float(run.stopped)
        module.log_dict(metrics, on_step=True, on_epoch=False, prog_bar=False)
    return raw_start.sum()


def _stop_nonfinite(module: PINNModule, params: list[Tensor], saved: list[Tensor]) -> None:
    """Restore the parameters of the step's start and end the phase (or raise)."""
    with torch.no_grad():
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)
    module.lbfgs_run.stopped = True
    module.trainer.should_stop = True
    message = (
        f"the L-BFGS objective or parameters became non-finite at training step "
        f"{module.train_steps}; the parameters were restored to the step's start"
    )
    if module.on_nonfinite == "raise":
        raise FloatingPointError(
            f"{message}. Use PINNModule(on_nonfinite='skip') to stop training there instead, "
            "or lower LBFGSPhase(lr=..., max_iter=...)"
        )
    module.skipped_steps += 1
    rank_zero_info(f"lightning_pinn: {message}; stopping training")


def save_phase_state(module: PINNModule, checkpoint: dict[str, Any]) -> None:
    """Write the L-BFGS phase's progress (the frozen batch included) into ``checkpoint``.

    The L-BFGS optimizer's own state (its history) is in Lightning's ``optimizer_states``.
    """
    if module.lbfgs is not None:
        checkpoint[CKPT_KEY] = {"lbfgs": module.lbfgs_run.state_dict()}


def load_phase_state(module: PINNModule, checkpoint: dict[str, Any]) -> None:
    """Restore what :func:`save_phase_state` wrote (before ``configure_optimizers`` runs, so
    a run resumed inside the phase gets its L-BFGS optimizer back with its history)."""
    state = checkpoint.get(CKPT_KEY)
    if state is not None and module.lbfgs is not None:
        module.lbfgs_run.load_state_dict(state["lbfgs"])
