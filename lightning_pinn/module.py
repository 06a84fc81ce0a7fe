"""``PINNModule``: a LightningModule that trains on K losses with per-loss gradients."""

from __future__ import annotations

import contextlib
import copy
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Literal

import lightning as L
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor, nn

from lightning_pinn._adapter_config import adapter_config_of
from lightning_pinn._allocator import tune_allocator as _tune_allocator
from lightning_pinn._arguments import check_module_arguments, drop_callables
from lightning_pinn._checkpoint import load_module_state, save_module_state
from lightning_pinn._deferred import (
    DeferredCounters,
    FiniteCheck,
    check_finite_check,
    settle_deferred,
)
from lightning_pinn._first_order_step import first_order_step
from lightning_pinn._layout import ParameterLayout, ParameterViews
from lightning_pinn._nonfinite import skipped_at_end_message
from lightning_pinn._optimizers import configure_optimizers
from lightning_pinn._per_loss import loss_scope
from lightning_pinn._step import (
    LatestStepViews,
    StepRecord,
    input_dtype_error,
    step_metrics,
)
from lightning_pinn._switch import adopt, plan_switch, switch_strategy
from lightning_pinn._validation import ReferenceValidation
from lightning_pinn._values import check_flag
from lightning_pinn.metrics import RelativeL2Error
from lightning_pinn.optim import FirstOrderName, LBFGSPhase, LBFGSRun, WarmupExponential
from lightning_pinn.optim._phase_step import (
    check_phases,
    in_lbfgs_phase,
    lbfgs_training_step,
    load_phase_state,
    maybe_begin_lbfgs,
    phase_hparams,
    phase_metrics,
    save_phase_state,
)
from lightning_pinn.strategies import Strategy, validate_strategy_options

__all__ = ["PINNModule", "StepRecord"]


class PINNModule(LatestStepViews, ParameterViews, ReferenceValidation, L.LightningModule):
    """Physics-informed training on K named losses with per-loss gradients.

    Subclass it and override :meth:`losses`. Each training step evaluates the losses once,
    runs one reverse pass per loss to build :attr:`loss_jacobian` (``[K, P]``, fp32 or fp64,
    over the shared parameters θ_s: every trainable parameter except adapters), lets the gradient
    strategy turn it into the shared update, writes that into ``.grad`` and steps the
    optimizer (manual optimization; docs/concepts.md). Each step is published as
    :attr:`last_record` (a :class:`StepRecord`), which callbacks read.

    Args:
        model: the network ``u(x)`` (any ``nn.Module`` mapping ``[N, d]`` to ``[N, m]``).
        loss_names: the K loss names; their order is the loss index k (rows of ``J``).
        lr: learning rate of the shared parameters.
        strategy: a strategy object (``NoneStrategy()``, ``ReweightStrategy(...)``,
            ``AdapterStrategy(rank=4, rule=GradNormRule(every=100))``, ``SurgeryStrategy(...)``
            from :mod:`lightning_pinn.strategies`, built without K: the module binds it) or a
            registered name (``"none"``, ``"reweight"``, ``"adapters"``, ``"surgery"``) for
            the object with default options; switch later with :meth:`set_strategy`.
        optimizer: ``"adam"`` (default), ``"adamw"``, ``"sgd"`` or ``"soap"`` (SOAP from
            ``pytorch-optimizer``: ``pip install 'lightning_pinn[soap]'``).
        weight_decay: optimizer weight decay (>= 0).
        lr_decay_rate: multiply the learning rate by this factor every ``lr_decay_steps``
            training steps (1.0: constant learning rate).
        lr_decay_steps: interval of the step decay.
        schedule: a :class:`~lightning_pinn.optim.WarmupExponential` learning-rate schedule
            (linear warm-up, then exponential decay) instead of the step decay, or its
            fields as a dict (how ``hparams`` and checkpoints keep it).
        lbfgs: a :class:`~lightning_pinn.optim.LBFGSPhase` (or its fields as a dict): switch
            to L-BFGS on the weighted sum of the losses after ``lbfgs.after`` first-order
            steps, in the same run.
        on_nonfinite: ``"raise"`` stops with an error naming the loss and step when a loss or
            its gradient is not finite; ``"skip"`` leaves weights and optimizer state untouched
            for that step and counts it (logged as ``nonfinite/skipped``); a skipped step
            counts toward ``max_steps`` (the optimizer is stepped with no gradient, which
            torch's optimizers ignore).
        max_consecutive_skips: with ``"skip"``, stop with a ``FloatingPointError`` naming the
            losses after this many non-finite steps in a row (default 50).
        finite_check: how a step learns that its losses and ``J`` are finite before the
            update. ``"every_step"``: a host read every step (free on a CPU);
            ``"deferred"``: on the device, with no host synchronisation in the hot path — a
            fused torch optimizer (``adam``, ``adamw``, ``sgd``) discards a non-finite update
            on the device, and the skip counts are read on logging steps, reweighting
            refreshes and every 100 steps (a skipped step still advances the schedule);
            ``"auto"`` (default): ``"deferred"`` on CUDA with a fused-capable optimizer and no
            fp16 loss scaling, ``"every_step"`` otherwise. Either way no non-finite update
            reaches the weights.
        fp32_losses: evaluate :meth:`losses` (PDE derivatives) with autocast disabled, so
            ``bf16-mixed``/``16-mixed`` never compute second derivatives in low precision.
        tune_allocator: when training starts on a CPU, raise glibc's ``malloc`` thresholds
            once for the process (:func:`lightning_pinn.tune_allocator`) so the step's buffers
            are reused instead of page-faulted in afresh every step (measured: ~1 000 minor
            faults per step without it). Process-wide; off with ``False``.
        field_names: names of the output fields, for per-field validation errors.
        **strategy_options: options of the named strategies, the older flat form
            (``reweighting``, ``reweighting_options``, ``rank``, ``alpha``, ``routing``,
            ``adapter_lr_mult``, ``target``, ``adapter_seed``, ``aggregator``,
            ``blockwise``, ``surgery_seed``; see each strategy class). They configure every
            strategy later built from a name (here, at :meth:`set_strategy` or by
            ``ConflictCallback``); the strategy object keeps its own copy.

    Raises:
        ValueError: an invalid argument, or an unknown strategy name or option (the message
            lists the valid ones).

    Example:
        >>> class Poisson1D(PINNModule):
        ...     def losses(self, batch):
        ...         x = batch["residual"].requires_grad_(True)
        ...         u = self(x)
        ...         (u_x,) = torch.autograd.grad(u.sum(), x, create_graph=True)
        ...         (u_xx,) = torch.autograd.grad(u_x.sum(), x, create_graph=True)
        ...         r = u_xx + torch.pi**2 * torch.sin(torch.pi * x)
        ...         b = self(batch["boundary"])
        ...         return {"residual": r.pow(2).mean(), "boundary": b.pow(2).mean()}
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        loss_names: Sequence[str],
        lr: float = 1e-3,
        strategy: str | Strategy = "none",
        optimizer: FirstOrderName = "adam",
        weight_decay: float = 0.0,
        lr_decay_rate: float = 1.0,
        lr_decay_steps: int = 1000,
        schedule: WarmupExponential | None = None,
        lbfgs: LBFGSPhase | None = None,
        on_nonfinite: Literal["raise", "skip"] = "raise",
        max_consecutive_skips: int = 50,
        finite_check: FiniteCheck = "auto",
        fp32_losses: bool = True,
        tune_allocator: bool = True,
        field_names: Sequence[str] | None = None,
        **strategy_options: Any,
    ) -> None:
        super().__init__()
        names = check_module_arguments(
            model,
            loss_names,
            lr,
            optimizer,
            weight_decay,
            lr_decay_rate,
            lr_decay_steps,
            on_nonfinite,
            max_consecutive_skips,
        )
        schedule, lbfgs = check_phases(schedule, lbfgs, lr_decay_rate)
        check_finite_check(finite_check, optimizer)
        validate_strategy_options(strategy_options)
        self.save_hyperparameters(ignore=["model", "trunk", "problem"])
        drop_callables(self.hparams)  # predicates (target=...) cannot be pickled safely
        if isinstance(strategy, Strategy):  # hparams hold the name; the checkpoint the options
            self.hparams["strategy"] = strategy.name
        self.hparams.update(phase_hparams(schedule, lbfgs))  # data only, as the strategy
        self.automatic_optimization = False
        self.model = model
        self.loss_names = names
        self.lr = float(lr)
        self.optimizer_name = optimizer
        self.weight_decay = weight_decay
        self.lr_decay_rate = lr_decay_rate
        self.lr_decay_steps = lr_decay_steps
        self.schedule = schedule
        self.lbfgs = lbfgs
        self.lbfgs_run = LBFGSRun()  # the L-BFGS phase's progress, saved in checkpoints
        self.on_nonfinite = on_nonfinite
        self.max_consecutive_skips = max_consecutive_skips
        self.finite_check = finite_check
        self._finite_deferred = False  # resolved with the optimizer (configure_optimizers)
        self._deferred_counters: DeferredCounters | None = None
        self.fp32_losses = check_flag("fp32_losses", fp32_losses)
        self.tune_allocator = check_flag("tune_allocator", tune_allocator)
        self.field_names = tuple(field_names) if field_names is not None else None
        # Options for strategies built from a name later (set_strategy("adapters"), the
        # callback's switch); the active strategy owns its own options.
        self._switch_defaults: dict[str, Any] = dict(strategy_options)
        self._adapter_config: dict[str, Any] | None = None  # how the adapters were built
        self._layout: ParameterLayout | None = None
        self._strategy: Strategy = adopt(self, strategy, {})
        self._strategy._owner = weakref.ref(self)
        if self._strategy.uses_adapters:
            self._attach_adapters(adapter_config_of(self._strategy))
        self.val_rel_l2 = RelativeL2Error(num_fields=len(self.field_names or ("u",)))
        self.test_rel_l2 = RelativeL2Error(num_fields=len(self.field_names or ("u",)))
        self.last_record: StepRecord | None = None
        """The latest training step (:class:`StepRecord`, device tensors); what callbacks read."""
        self.train_steps: int = 0  # counted here, not trainer.global_step (Lightning #17958)
        self.trial_feed: Callable[[Any], Any] | None = None
        """Set by :class:`ConflictCallback`'s guarded switch while it replays the batches of a
        data loader that cannot be rewound: maps the loader's batch to the one to train on."""
        self.skipped_steps: int = 0
        self.consecutive_skips: int = 0
        self._paths_checked = False  # each loss reaches a parameter: checked at the first step

    # ----------------------------------------------------------------------- user surface
    def losses(self, batch: Any) -> dict[str, Tensor]:
        """Return the K named scalar losses for ``batch``. Override this.

        Args:
            batch: what the datamodule yields, e.g. ``{"residual": [N, d], ...}`` points.

        Returns:
            A dict with exactly the keys of ``loss_names``, each a scalar tensor that depends
            on the module's parameters.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must override losses(batch) -> dict[str, Tensor]"
        )

    def forward(self, x: Tensor, loss: str | None = None) -> Tensor:
        """Evaluate the network (with adapters, if attached) at points ``x`` ``[N, d]``.

        ``loss``: the loss this forward belongs to (per-loss adapters: trunk + its adapter).

        Raises:
            TypeError: ``x`` is a floating tensor of another dtype than the parameters.
            ValueError: under per-loss adapters, ``loss`` names no loss.
        """
        try:  # the tag's scope around the network only (subclasses transform the output)
            with loss_scope(self, loss) if loss is not None else contextlib.nullcontext():
                return self.model(x)
        except RuntimeError as err:  # e.g. "mat1 and mat2 must have the same dtype"
            clear = input_dtype_error(x, self.model)
            if clear is None:
                raise
            raise clear from err

    def loss_scope(self, loss: str) -> contextlib.AbstractContextManager[None]:
        """``with self.loss_scope(name):`` every forward inside belongs to loss ``name``."""
        return loss_scope(self, loss)

    @property
    def num_losses(self) -> int:
        return len(self.loss_names)

    @property
    def strategy(self) -> Strategy:
        """The active gradient strategy object."""
        return self._strategy

    @property
    def strategy_name(self) -> str:
        """The active strategy's registered name."""
        return self._strategy.name

    # ------------------------------------------------------------------------ strategy
    def set_strategy(self, strategy: str | Strategy, **options: Any) -> None:
        """Switch the gradient strategy in place; training continues in the same run.

        Switching to adapters wraps the network in :class:`PerLossAdapter` (the function is
        unchanged, B factors start at zero) and adds the adapter parameters to the running
        optimizer as a new param group; the shared parameters keep their optimizer state.
        Switching away from adapters keeps the adapters in the forward but stops updating
        them.

        Args:
            strategy: a strategy object (e.g. ``AdapterStrategy(rank=8)``; the module binds
                it to K) or a registered name (``"none"``, ``"reweight"``, ``"adapters"``,
                ``"surgery"``).
            **options: with a name, strategy options overriding the constructor's flat
                options (``reweighting``, ``rank``, ``routing``, ``aggregator``, ...); they
                also apply to later switches by name. None with an object.

        Raises:
            ValueError: unknown strategy or option, options given with an object, adapters
                that fit no layer, or adapters other than the attached ones (attached
                adapters are never rebuilt). A failed switch changes nothing.
        """
        switch_strategy(self, strategy, options)

    def check_strategy(self, strategy: str | Strategy, **options: Any) -> None:
        """Raise what :meth:`set_strategy` would raise for these arguments; change nothing.

        Raises:
            ValueError: see :meth:`set_strategy`.
        """
        plan_switch(self, copy.deepcopy(strategy), options)

    def configure_optimizers(self) -> Any:
        return configure_optimizers(self)

    # ------------------------------------------------------------------- training step
    def _grad_scaler(self) -> Any:
        """The fp16 gradient scaler of Lightning's precision plugin (``16-mixed``), or None."""
        return getattr(self.trainer.precision_plugin, "scaler", None)

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.trainer.precision == "16-true":
            raise ValueError(
                "precision='16-true' keeps the weights, the optimizer state and the PDE "
                "derivatives in float16: Adam's eps (1e-8) rounds to 0 there, so its first step "
                "writes inf into weights whose gradient is 0, and second derivatives overflow "
                "past 65504. Use precision='16-mixed' (float16 matmuls, float32 weights, "
                "derivatives and J), 'bf16-mixed' or 'bf16-true'"
            )

    def on_fit_start(self) -> None:
        if self.tune_allocator and self.device.type == "cpu":
            _tune_allocator()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        maybe_begin_lbfgs(self, batch)  # the switch to L-BFGS, when due

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        if self.trial_feed is not None:
            batch = self.trial_feed(batch)
        if in_lbfgs_phase(self):
            return lbfgs_training_step(self, batch)
        return first_order_step(self, batch)

    def _should_log(self) -> bool:
        n = self.trainer.log_every_n_steps
        return n > 0 and self.train_steps % n == 0

    def _log_step(self, values: Tensor, jac: Tensor, weights: Tensor) -> None:
        metrics = step_metrics(self.loss_names, values, jac, weights)
        metrics.update(phase_metrics(self))
        metrics.update(self.extra_log_metrics())
        self.log_dict(metrics, on_step=True, on_epoch=False, prog_bar=False)
        self.log("loss", values.sum(), on_step=True, on_epoch=False, prog_bar=True, logger=False)

    def extra_log_metrics(self) -> dict[str, Tensor]:
        """More scalars to log on logging steps (e.g. PDE coefficients). Override."""
        return {}

    def _log_skip(self) -> None:
        self.log("nonfinite/skipped", float(self.skipped_steps), on_step=True, on_epoch=False)

    def on_train_end(self) -> None:
        settle_deferred(self)
        if self.consecutive_skips:
            rank_zero_warn(skipped_at_end_message(self.consecutive_skips, self.skipped_steps))

    # --------------------------------------------------------------------- checkpoints
    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls, checkpoint_path: Any, *args: Any, **kwargs: Any
    ) -> Any:
        """Lightning's ``load_from_checkpoint``; the network is an ``nn.Module``, not a
        hyperparameter, so pass one of the same architecture: ``model=...``.

        Raises:
            TypeError: no ``model`` given to a module whose ``__init__`` needs one, saying so.
        """
        try:
            return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
        except TypeError as err:
            if "model" in kwargs or args or "argument: 'model'" not in str(err):
                raise
            raise TypeError(
                f"{cls.__name__}.load_from_checkpoint needs the network: a checkpoint stores "
                "its weights and hyperparameters, not the nn.Module itself. Pass one of the "
                f"same architecture, {cls.__name__}.load_from_checkpoint(path, model=trunk); "
                "the weights are then loaded into it"
            ) from err

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        settle_deferred(self)  # the skip counts go into the checkpoint
        save_module_state(self, checkpoint)
        save_phase_state(self, checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        load_module_state(self, checkpoint)
        load_phase_state(self, checkpoint)
