"""``PINNModule``: a LightningModule that trains on K losses with per-loss gradients."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import lightning as L
import torch
from torch import Tensor, nn

from lightning_pinn._layout import ParameterLayout
from lightning_pinn._step import StepRecord, check_losses
from lightning_pinn.adapters import PerLossAdapter
from lightning_pinn.gradients import per_loss_gradients, row_norms, unflatten_into_grad
from lightning_pinn.metrics import RelativeL2Error
from lightning_pinn.strategies import (
    Strategy,
    build_strategy,
    resolve_strategy,
    strategy_names,
    validate_strategy_options,
)

__all__ = ["PINNModule", "StepRecord"]

_NONFINITE = ("raise", "skip")
_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
_CKPT_KEY = "lightning_pinn"
_ADAPTER_KEYS = ("rank", "alpha", "target", "seed")


class PINNModule(L.LightningModule):
    """Physics-informed training on K named losses with per-loss gradients.

    Subclass it and override :meth:`losses`. Each training step evaluates the losses once,
    runs one reverse pass per loss to build :attr:`loss_jacobian` (``[K, P]``, fp32, over the
    shared parameters θ_s: every trainable parameter except adapters), lets the gradient
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
        optimizer: ``"adam"`` (default), ``"adamw"`` or ``"sgd"``.
        weight_decay: optimizer weight decay.
        lr_decay_rate: multiply the learning rate by this factor every ``lr_decay_steps``
            training steps (1.0: constant learning rate).
        lr_decay_steps: interval of the step decay.
        on_nonfinite: ``"raise"`` stops with an error naming the loss and step when a loss or
            its gradient is not finite; ``"skip"`` leaves weights and optimizer state untouched
            for that step and counts it (logged as ``nonfinite/skipped``).
        fp32_losses: evaluate :meth:`losses` (PDE derivatives) with autocast disabled, so
            ``bf16-mixed``/``16-mixed`` never compute second derivatives in low precision.
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
        optimizer: Literal["adam", "adamw", "sgd"] = "adam",
        weight_decay: float = 0.0,
        lr_decay_rate: float = 1.0,
        lr_decay_steps: int = 1000,
        on_nonfinite: Literal["raise", "skip"] = "raise",
        fp32_losses: bool = True,
        field_names: Sequence[str] | None = None,
        **strategy_options: Any,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        names = tuple(loss_names)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"loss_names must be non-empty strings, got {loss_names!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"loss_names must be unique, got {names!r}")
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        if optimizer not in _OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; valid: {', '.join(_OPTIMIZERS)}")
        if not 0 < lr_decay_rate <= 1:
            raise ValueError(f"lr_decay_rate must be in (0, 1], got {lr_decay_rate!r}")
        if lr_decay_steps < 1:
            raise ValueError(f"lr_decay_steps must be >= 1, got {lr_decay_steps!r}")
        if on_nonfinite not in _NONFINITE:
            raise ValueError(f"on_nonfinite must be one of {_NONFINITE}, got {on_nonfinite!r}")
        validate_strategy_options(strategy_options)
        self.save_hyperparameters(ignore=["model", "trunk", "problem"])
        if isinstance(strategy, Strategy):  # hparams hold the name; the checkpoint the options
            self.hparams["strategy"] = strategy.name
        self.automatic_optimization = False
        self.model = model
        self.loss_names = names
        self.lr = float(lr)
        self.optimizer_name = optimizer
        self.weight_decay = weight_decay
        self.lr_decay_rate = lr_decay_rate
        self.lr_decay_steps = lr_decay_steps
        self.on_nonfinite = on_nonfinite
        self.fp32_losses = fp32_losses
        self.field_names = tuple(field_names) if field_names is not None else None
        # Options for strategies built from a name later (set_strategy("adapters"), the
        # callback's switch); the active strategy owns its own options.
        self._switch_defaults: dict[str, Any] = dict(strategy_options)
        self._adapter_config: dict[str, Any] | None = None  # how the adapters were built
        self._layout: ParameterLayout | None = None
        self._strategy: Strategy = self._adopt(strategy, {})
        if self._strategy.uses_adapters:
            self._attach_adapters(self._adapter_config_of(self._strategy))
        self.val_rel_l2 = RelativeL2Error(num_fields=len(self.field_names or ("u",)))
        self.last_record: StepRecord | None = None
        """The latest training step (:class:`StepRecord`, device tensors); what callbacks read."""
        self.train_steps: int = 0  # counted here, not trainer.global_step (Lightning #17958)
        self.skipped_steps: int = 0

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

    def forward(self, x: Tensor) -> Tensor:
        """Evaluate the network (with adapters, if attached) at points ``x`` ``[N, d]``."""
        return self.model(x)

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

    @property
    def has_adapters(self) -> bool:
        """Whether the network is wrapped in :class:`PerLossAdapter`."""
        return self._adapter_config is not None

    # --------------------------------------------------------------- the latest step
    @property
    def loss_jacobian(self) -> Tensor | None:
        """``J`` ``[K, P]`` (fp32) of the latest training step, rows in ``loss_names`` order."""
        return self.last_record.jacobian if self.last_record is not None else None

    @property
    def last_losses(self) -> Tensor | None:
        """The raw loss values ``[K]`` of the latest training step."""
        return self.last_record.losses if self.last_record is not None else None

    @property
    def last_update(self) -> Tensor | None:
        """The shared update ``[P]`` of the latest step (``None`` if it was skipped)."""
        return self.last_record.update if self.last_record is not None else None

    @property
    def loss_weights(self) -> Tensor | None:
        """The per-loss weights ``[K]`` in force."""
        return self.last_record.weights if self.last_record is not None else None

    @property
    def last_step_finite(self) -> bool:
        """Whether the latest step's losses and ``J`` were finite."""
        return self.last_record.finite if self.last_record is not None else True

    def named_loss_weights(self) -> Iterator[tuple[str, float]]:
        """The latest per-loss weights as ``(name, value)`` pairs (host values)."""
        if self.loss_weights is None:
            return iter(())
        return zip(self.loss_names, self.loss_weights.tolist(), strict=True)

    # ------------------------------------------------------------------------ strategy
    def _adopt(self, strategy: str | Strategy, options: dict[str, Any]) -> Strategy:
        """The strategy bound to K: built from a name (with the switch defaults) or given."""
        if isinstance(strategy, str):
            merged = copy.deepcopy({**self._switch_defaults, **options})
            return build_strategy(strategy, num_losses=self.num_losses, **merged)
        return resolve_strategy(strategy, **options).bind(self.num_losses)

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
            ValueError: unknown strategy or option, or options given with an object.
        """
        if isinstance(strategy, str):
            validate_strategy_options(options)
        new = self._adopt(strategy, options)
        if isinstance(strategy, str):
            self._switch_defaults.update(options)
        if new.uses_adapters and not self.has_adapters:
            self._attach_adapters(self._adapter_config_of(new))
            self._add_adapter_param_group()
        self._strategy = new

    # --------------------------------------------------------------------- parameters
    def _parameter_layout(self) -> ParameterLayout:
        if self._layout is None:
            adapters = self._all_adapter_parameters()
            self._layout = ParameterLayout.build(
                self.parameters(), self.model.parameters(), exclude=adapters
            )
        return self._layout

    def shared_parameters(self) -> list[nn.Parameter]:
        """θ_s: every trainable parameter except adapters; network first, then the rest.

        Cached after the first call (the hot path reads it every step); the cache is rebuilt
        when adapters are attached. Call :meth:`refresh_parameters` after changing
        ``requires_grad`` flags by hand.
        """
        return self._parameter_layout().shared

    def parameter_blocks(self) -> list[slice]:
        """Column ranges of ``J`` per parameter block: the network, then everything else."""
        return self._parameter_layout().blocks

    def refresh_parameters(self) -> None:
        """Forget the cached parameter layout (θ_s and its blocks)."""
        self._layout = None

    def adapter_parameters(self, k: int) -> list[nn.Parameter]:
        """Parameters of adapter k (empty without adapters)."""
        return list(self.model.adapter_parameters(k)) if self.has_adapters else []

    def _adapter_groups(self) -> list[list[nn.Parameter]]:
        return [self.adapter_parameters(k) for k in range(self.num_losses)]

    def _all_adapter_parameters(self) -> list[nn.Parameter]:
        """Every adapter's parameters, adapter 0 first."""
        return [p for group in self._adapter_groups() for p in group]

    @staticmethod
    def _adapter_config_of(strategy: Strategy) -> dict[str, Any]:
        options = strategy.adapter_options()
        config = {key: options[key] for key in _ADAPTER_KEYS}
        config["lr_mult"] = float(getattr(strategy, "adapter_lr_mult", 1.0))
        return config

    def _attach_adapters(self, config: dict[str, Any]) -> None:
        device = next(self.model.parameters()).device
        layer_options = {key: config[key] for key in _ADAPTER_KEYS}
        self.model = PerLossAdapter(self.model, num_losses=self.num_losses, **layer_options)
        self.model.to(device)
        self._adapter_config = dict(config)
        self._layout = None

    def _adapter_lr(self) -> float:
        assert self._adapter_config is not None
        return self.lr * float(self._adapter_config["lr_mult"])

    def _add_adapter_param_group(self) -> None:
        if self._trainer is None or not self.trainer.optimizers:  # the module's own reference
            return  # configure_optimizers will include the adapters
        opt = self.trainer.optimizers[0]
        params = self._all_adapter_parameters()
        factor = opt.param_groups[0]["lr"] / opt.param_groups[0].get("initial_lr", self.lr)
        opt.add_param_group(
            {"params": params, "lr": self._adapter_lr() * factor, "initial_lr": self._adapter_lr()}
        )
        for config in self.trainer.lr_scheduler_configs:
            config.scheduler.base_lrs.append(self._adapter_lr())

    def configure_optimizers(self) -> Any:
        groups: list[dict[str, Any]] = [{"params": self.shared_parameters(), "lr": self.lr}]
        if self.has_adapters:
            adapters = self._all_adapter_parameters()
            groups.append({"params": adapters, "lr": self._adapter_lr()})
        kwargs: dict[str, Any] = {"weight_decay": self.weight_decay}
        optimizer = _OPTIMIZERS[self.optimizer_name](groups, lr=self.lr, **kwargs)
        if self.lr_decay_rate == 1.0:
            return optimizer
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=self.lr_decay_steps, gamma=self.lr_decay_rate
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}

    # ------------------------------------------------------------------- training step
    def _grad_scaler(self) -> Any:
        """The fp16 gradient scaler of Lightning's precision plugin (``16-mixed``), or None."""
        return getattr(self.trainer.precision_plugin, "scaler", None)

    def _per_loss_gradients(
        self, values: list[Tensor], shared: list[Tensor], scaler: Any
    ) -> tuple[Tensor, list[Tensor], float]:
        """J over θ_s and the adapter gradients the strategy asks for, all-reduced.

        Under ``16-mixed`` each loss is multiplied by the scaler's factor S before its reverse
        pass (so fp16 gradients do not underflow) and J is divided by S again: statistics and
        strategies always see unscaled gradients. Returns ``(J, adapter grads, S)``.
        """
        scale = 1.0
        scaled = values
        if scaler is not None:
            scaled = [scaler.scale(v) for v in values]
            scale = float(scaler.get_scale())
        extra = None
        if self.has_adapters and self._strategy.uses_adapters:
            extra = self._strategy.adapter_inputs(self._adapter_groups())
        jac, own = per_loss_gradients(scaled, shared, extra, scale=scale)
        if self.trainer.world_size > 1:  # one all-reduce (mean) of J and adapter gradients
            sizes = [jac.numel()] + [h.numel() for h in own]
            flat = self.trainer.strategy.reduce(
                torch.cat([jac.reshape(-1), *own]), reduce_op="mean"
            )
            parts = torch.split(flat, sizes)
            jac, own = parts[0].view_as(jac), list(parts[1:])
        return jac, own, scale

    def _write_adapter_grads(self, own: list[Tensor], weights: Tensor) -> None:
        if not own:
            return
        groups = self._adapter_groups()
        sizes = [sum(p.numel() for p in group) for group in groups]
        updates = self._strategy.adapter_updates(own, weights, sizes)
        for update, params in zip(updates, groups, strict=True):
            unflatten_into_grad(update, params)

    def _handle_nonfinite(self, values: Tensor, jac: Tensor) -> None:
        bad = [
            n
            for k, n in enumerate(self.loss_names)
            if not (torch.isfinite(values[k]) and torch.isfinite(jac[k]).all())
        ]
        if self.on_nonfinite == "skip":
            self.skipped_steps += 1
            return
        ckpt = getattr(self.trainer.checkpoint_callback, "last_model_path", "") or getattr(
            self.trainer.checkpoint_callback, "best_model_path", ""
        )
        where = f"last good checkpoint: {ckpt}" if ckpt else "no checkpoint was saved yet"
        raise FloatingPointError(
            f"non-finite loss or gradient for {bad} at training step {self.train_steps} "
            f"(values {values.tolist()}); the weights were not updated; {where}. Use "
            "PINNModule(on_nonfinite='skip') to skip such steps, or lower the learning rate."
        )

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        opt = self.optimizers()
        shared = self.shared_parameters()
        scaler = self._grad_scaler()
        # fp32_losses: the losses and their reverse passes (the double-backward of PDE
        # derivatives included) run with autocast off, so J is computed in full fp32.
        no_autocast = torch.autocast(device_type=self.device.type, enabled=False)
        with no_autocast if self.fp32_losses else contextlib.nullcontext():
            loss_list = check_losses(self.losses(batch), self.loss_names, type(self).__name__)
            jac, own, scale = self._per_loss_gradients(loss_list, shared, scaler)  # (K, P)
        values = torch.stack([v.detach() for v in loss_list])  # (K,)
        # One host sync per step: a step with a non-finite loss or gradient must not touch the
        # weights. Under 16-mixed the scaler does this check itself (and lowers its scale).
        finite = scaler is not None or bool(
            torch.isfinite(values).all() & torch.isfinite(jac).all()
        )
        if not finite:
            self.last_record = StepRecord(
                self.train_steps + 1, values, jac, None, self.loss_weights, False
            )
            self._handle_nonfinite(values, jac)
            opt.zero_grad(set_to_none=True)
            self.train_steps += 1
            self._log_skip()
            return values.sum()
        update, weights = self._strategy.update(jac, values, self.parameter_blocks())  # (P,), (K,)
        self.last_record = StepRecord(self.train_steps + 1, values, jac, update, weights, True)
        # Under 16-mixed the scaler's unscale_ (inside opt.step) divides by S and skips the
        # step when the update is not finite, so write S-scaled gradients.
        unflatten_into_grad(update * scale if scale != 1.0 else update, shared)
        self._write_adapter_grads([h * scale for h in own] if scale != 1.0 else own, weights)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched = self.lr_schedulers()
        if sched is not None:
            sched.step()
        self.train_steps += 1
        if self._should_log():
            self._log_step(values, jac, weights)
        return values.sum()

    def _should_log(self) -> bool:
        n = self.trainer.log_every_n_steps
        return n > 0 and self.train_steps % n == 0

    def _log_step(self, values: Tensor, jac: Tensor, weights: Tensor) -> None:
        norms = row_norms(jac)  # (K,), overflow-safe: the same norms as the statistics
        metrics: dict[str, Tensor] = {"loss/total": values.sum()}
        for k, name in enumerate(self.loss_names):
            metrics[f"loss/{name}"] = values[k]
            metrics[f"grad_norm/{name}"] = norms[k]
            metrics[f"weight/{name}"] = weights[k]
        metrics.update(self.extra_log_metrics())
        self.log_dict(metrics, on_step=True, on_epoch=False, prog_bar=False)
        self.log("loss", values.sum(), on_step=True, on_epoch=False, prog_bar=True, logger=False)

    def extra_log_metrics(self) -> dict[str, Tensor]:
        """More scalars to log on logging steps (e.g. PDE coefficients). Override."""
        return {}

    def _log_skip(self) -> None:
        self.log("nonfinite/skipped", float(self.skipped_steps), on_step=True, on_epoch=False)

    # ---------------------------------------------------------------------- validation
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Accumulate the relative L2 error on ``(points, reference)`` batches."""
        x, u_ref = batch
        with torch.autocast(device_type=self.device.type, enabled=False):
            pred = self(x.float())
        self.val_rel_l2.update(pred.reshape(u_ref.shape).float(), u_ref.float())

    def on_validation_epoch_end(self) -> None:
        pooled = self.val_rel_l2.compute()
        self.log("val/rel_l2", pooled, sync_dist=False)
        if self.field_names is not None and len(self.field_names) > 1:
            per_field = self.val_rel_l2.compute_per_field()
            for name, value in zip(self.field_names, per_field, strict=True):
                self.log(f"val/rel_l2/{name}", value)
        self.val_rel_l2.reset()

    # --------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        options = {k: v for k, v in self._strategy.options().items() if k != "num_losses"}
        checkpoint[_CKPT_KEY] = {
            "strategy": self.strategy_name,
            "strategy_options": options,
            "strategy_state": self._strategy.state_dict(),
            "switch_defaults": dict(self._switch_defaults),
            "has_adapters": self.has_adapters,
            "adapters": dict(self._adapter_config) if self._adapter_config else None,
            "train_steps": self.train_steps,
            "skipped_steps": self.skipped_steps,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(_CKPT_KEY)
        if state is None:
            return
        options = {k: v for k, v in state["strategy_options"].items() if k != "num_losses"}
        # Checkpoints before "switch_defaults" kept one options table for every strategy.
        legacy = "switch_defaults" not in state
        self._switch_defaults = dict(options if legacy else state["switch_defaults"])
        if state["has_adapters"] and not self.has_adapters:
            config = state.get("adapters") or {
                "rank": options.get("rank", 4),
                "alpha": options.get("alpha"),
                "target": options.get("target"),
                "seed": options.get("adapter_seed", 0),
                "lr_mult": options.get("adapter_lr_mult", 1.0),
            }
            self._attach_adapters(config)  # before the state dict loads into it
        name = state["strategy"]
        if name not in strategy_names():
            raise ValueError(
                f"the checkpoint uses strategy {name!r}, which is not registered (registered: "
                f"{', '.join(strategy_names())}); register its class with "
                "lightning_pinn.strategies.register_strategy before loading"
            )
        self._strategy = build_strategy(name, num_losses=self.num_losses, **options)
        self._strategy.load_state_dict(state["strategy_state"])
        self.train_steps = state["train_steps"]
        self.skipped_steps = state["skipped_steps"]
