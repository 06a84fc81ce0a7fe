"""``PINNModule``: a LightningModule that trains on K losses with per-loss gradients."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import lightning as L
import torch
from torch import Tensor, nn

from lightning_pinn.gradients import per_loss_gradients, unflatten_into_grad
from lightning_pinn.metrics import RelativeL2Error
from lightning_pinn.strategies import Strategy, build_strategy

__all__ = ["PINNModule"]

StrategyName = Literal["none", "reweight", "adapters", "surgery"]
_NONFINITE = ("raise", "skip")
_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
_CKPT_KEY = "lightning_pinn"


class PINNModule(L.LightningModule):
    """Physics-informed training on K named losses with per-loss gradients.

    Subclass it and override :meth:`losses`. Each training step evaluates the losses once,
    runs one reverse pass per loss to build :attr:`loss_jacobian` (``[K, P]``, fp32, over the
    shared parameters θ_s: every trainable parameter except adapters), lets the gradient
    strategy turn it into the shared update, writes that into ``.grad`` and steps the
    optimizer (manual optimization, DESIGN §2 and §4).

    Args:
        model: the network ``u(x)`` (any ``nn.Module`` mapping ``[N, d]`` to ``[N, m]``).
        loss_names: the K loss names; their order is the loss index k (rows of ``J``).
        lr: learning rate of the shared parameters.
        strategy: ``"none"`` (sum of gradients), ``"reweight"``, ``"adapters"`` or
            ``"surgery"``; switch later with :meth:`set_strategy`.
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
        reweighting: reweighting rule of the ``reweight`` and ``adapters`` strategies
            (``"gradnorm"``, ``"lra"``, ``"relobralo"``, ``"fixed"``).
        reweighting_options: keyword arguments of the rule (e.g. ``{"ema": 0.9}``).
        rank: adapter rank r.
        alpha: adapter scaling numerator (scaling = alpha / r); ``None`` means ``alpha = r``.
        routing: ``"own"`` (adapter k moves on λ_k ∇_{φ_k} L_k) or ``"shared"`` (every
            adapter moves on the combined update).
        adapter_lr_mult: learning-rate multiplier of the adapter parameter group (default 0.1:
            chosen on the regime map's calibration half and confirmed on its held-out half,
            see docs/results.md; 1.0 was the earlier default).
        target: which ``nn.Linear`` layers get adapters (name pattern or predicate; all if None).
        adapter_seed: seed of the adapter initialisation (identical on every DDP rank).
        aggregator: torchjd aggregator of the ``surgery`` strategy (``"upgrad"``, ``"pcgrad"``,
            ``"config"``, ``"mgda"``, ...).
        blockwise: apply the aggregator per parameter block (network, PDE coefficients).
        surgery_seed: seed of randomised aggregators (PCGrad), identical on every rank.

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
        strategy: StrategyName = "none",
        optimizer: Literal["adam", "adamw", "sgd"] = "adam",
        weight_decay: float = 0.0,
        lr_decay_rate: float = 1.0,
        lr_decay_steps: int = 1000,
        on_nonfinite: Literal["raise", "skip"] = "raise",
        fp32_losses: bool = True,
        field_names: Sequence[str] | None = None,
        reweighting: str = "gradnorm",
        reweighting_options: Mapping[str, Any] | None = None,
        rank: int = 4,
        alpha: float | None = None,
        routing: Literal["own", "shared"] = "own",
        adapter_lr_mult: float = 0.1,
        target: Any = None,
        adapter_seed: int = 0,
        aggregator: str = "upgrad",
        blockwise: bool = False,
        surgery_seed: int = 0,
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
        self.save_hyperparameters(ignore=["model", "trunk", "problem"])
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
        self.strategy_options: dict[str, Any] = {
            "reweighting": reweighting,
            "reweighting_options": dict(reweighting_options or {}),
            "rank": rank,
            "alpha": alpha,
            "routing": routing,
            "adapter_lr_mult": adapter_lr_mult,
            "target": target,
            "adapter_seed": adapter_seed,
            "aggregator": aggregator,
            "blockwise": blockwise,
            "surgery_seed": surgery_seed,
            "num_losses": len(names),
        }
        self.strategy_name: str = strategy
        self._has_adapters = False
        self._param_cache: tuple[list[nn.Parameter], list[slice]] | None = None
        self._strategy: Strategy = build_strategy(strategy, **self.strategy_options)
        if self._strategy.uses_adapters:
            self._attach_adapters()
        self.val_rel_l2 = RelativeL2Error(num_fields=len(self.field_names or ("u",)))
        # Latest training step's quantities, read by callbacks (device tensors).
        self.loss_jacobian: Tensor | None = None
        self.last_update: Tensor | None = None
        self.last_losses: Tensor | None = None
        self.loss_weights: Tensor | None = None
        self.last_step_finite: bool = True
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
    def has_adapters(self) -> bool:
        """Whether the network is wrapped in :class:`PerLossAdapter`."""
        return self._has_adapters

    def set_strategy(self, name: StrategyName, **options: Any) -> None:
        """Switch the gradient strategy in place; training continues in the same run.

        Switching to ``adapters`` wraps the network in :class:`PerLossAdapter` (the function is
        unchanged, B factors start at zero) and adds the adapter parameters to the running
        optimizer as a new param group; the shared parameters keep their optimizer state.
        Switching away from ``adapters`` keeps the adapters in the forward but stops
        updating them.

        Args:
            name: one of ``"none"``, ``"reweight"``, ``"adapters"``, ``"surgery"``.
            **options: strategy options overriding the constructor's (``reweighting``,
                ``rank``, ``alpha``, ``routing``, ``aggregator``, ...).

        Raises:
            ValueError: unknown strategy or option.
        """
        unknown = set(options) - set(self.strategy_options)
        if unknown:
            raise ValueError(
                f"unknown strategy option(s) {sorted(unknown)}; valid options are "
                f"{sorted(self.strategy_options)}"
            )
        merged = {**self.strategy_options, **options}
        new = build_strategy(name, **merged)
        self.strategy_options = merged
        if new.uses_adapters and not self.has_adapters:
            self._attach_adapters()
            self._add_adapter_param_group()
        self._strategy = new
        self.strategy_name = name

    # --------------------------------------------------------------------- parameters
    def _adapter_ids(self) -> set[int]:
        if not self.has_adapters:
            return set()
        return {id(p) for k in range(self.num_losses) for p in self.model.adapter_parameters(k)}

    def shared_parameters(self) -> list[nn.Parameter]:
        """θ_s: every trainable parameter except adapters; network first, then the rest.

        Cached after the first call (the hot path reads it every step); the cache is rebuilt
        when adapters are attached. Call :meth:`refresh_parameters` after changing
        ``requires_grad`` flags by hand.
        """
        return self._parameter_layout()[0]

    def refresh_parameters(self) -> None:
        """Forget the cached parameter layout (θ_s and its blocks)."""
        self._param_cache = None

    def _parameter_layout(self) -> tuple[list[nn.Parameter], list[slice]]:
        if self._param_cache is None:
            adapters = self._adapter_ids()
            net = {id(p) for p in self.model.parameters()}
            params = [p for p in self.parameters() if p.requires_grad and id(p) not in adapters]
            net_params = [p for p in params if id(p) in net]
            shared = net_params + [p for p in params if id(p) not in net]
            n_net = sum(p.numel() for p in net_params)
            total = sum(p.numel() for p in shared)
            blocks = [slice(0, n_net)] + ([slice(n_net, total)] if total > n_net else [])
            self._param_cache = (shared, blocks)
        return self._param_cache

    def adapter_parameters(self, k: int) -> list[nn.Parameter]:
        """Parameters of adapter k (empty without adapters)."""
        return list(self.model.adapter_parameters(k)) if self.has_adapters else []

    def _all_adapter_parameters(self) -> list[nn.Parameter]:
        """Every adapter's parameters, adapter 0 first."""
        return [p for k in range(self.num_losses) for p in self.adapter_parameters(k)]

    def parameter_blocks(self) -> list[slice]:
        """Column ranges of ``J`` per parameter block: the network, then everything else."""
        return self._parameter_layout()[1]

    def _attach_adapters(self) -> None:
        from lightning_pinn.adapters import PerLossAdapter

        opts = self.strategy_options
        device = next(self.model.parameters()).device
        self.model = PerLossAdapter(
            self.model,
            num_losses=self.num_losses,
            rank=opts["rank"],
            alpha=opts["alpha"],
            target=opts["target"],
            seed=opts["adapter_seed"],
        ).to(device)
        self._has_adapters = True
        self._param_cache = None

    def _adapter_lr(self) -> float:
        return self.lr * float(self.strategy_options["adapter_lr_mult"])

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
    def _checked_losses(self, batch: Any) -> list[Tensor]:
        out = self.losses(batch)
        if not isinstance(out, Mapping):
            raise TypeError(
                f"{type(self).__name__}.losses() must return a dict of named scalar tensors "
                f"with keys {list(self.loss_names)}, got {type(out).__name__}"
            )
        if set(out) != set(self.loss_names):
            missing = [n for n in self.loss_names if n not in out]
            extra = [n for n in out if n not in self.loss_names]
            raise ValueError(
                f"losses() returned keys {list(out)} but loss_names is {list(self.loss_names)}"
                f" (missing: {missing}, unexpected: {extra}); return exactly the names given "
                "in loss_names, or change loss_names"
            )
        values = []
        for name in self.loss_names:
            v = out[name]
            if not isinstance(v, Tensor):
                raise TypeError(
                    f"loss {name!r} must be a scalar torch.Tensor, got {type(v).__name__}"
                )
            if v.numel() != 1:
                raise ValueError(
                    f"loss {name!r} must be a scalar, got shape {tuple(v.shape)}; reduce it "
                    "(e.g. .pow(2).mean())"
                )
            if not v.requires_grad:
                raise ValueError(
                    f"loss {name!r} does not depend on any trainable parameter (no grad_fn); "
                    "compute it from the network output self(x) or a trainable coefficient"
                )
            values.append(v.reshape(()).float())
        return values

    def _grad_scaler(self) -> Any:
        """The fp16 gradient scaler of Lightning's precision plugin (``16-mixed``), or None."""
        return getattr(self.trainer.precision_plugin, "scaler", None)

    def _per_loss_gradients(
        self, values: list[Tensor], shared: list[Tensor], scaler: Any
    ) -> tuple[Tensor, list[Tensor], float]:
        """J over θ_s and the adapter gradients the routing needs, all-reduced across ranks.

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
            if self.strategy_options["routing"] == "own":
                extra = [self.adapter_parameters(k) for k in range(self.num_losses)]
            else:
                every = self._all_adapter_parameters()
                extra = [every] * self.num_losses
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
        if self.strategy_options["routing"] == "own":
            for k, h in enumerate(own):
                unflatten_into_grad(weights[k] * h, self.adapter_parameters(k))
        else:
            combined = torch.stack(own).mul(weights[:, None]).sum(0)
            every = self._all_adapter_parameters()
            unflatten_into_grad(combined, every)

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
            loss_list = self._checked_losses(batch)
            jac, own, scale = self._per_loss_gradients(loss_list, shared, scaler)  # (K, P)
        values = torch.stack([v.detach() for v in loss_list])  # (K,)
        # One host sync per step: a step with a non-finite loss or gradient must not touch the
        # weights. Under 16-mixed the scaler does this check itself (and lowers its scale).
        finite = scaler is not None or bool(
            torch.isfinite(values).all() & torch.isfinite(jac).all()
        )
        self.last_step_finite = finite
        self.loss_jacobian = jac
        self.last_losses = values
        if not finite:
            self._handle_nonfinite(values, jac)
            opt.zero_grad(set_to_none=True)
            self.train_steps += 1
            self._log_skip()
            return values.sum()
        update, weights = self._strategy.update(jac, values, self.parameter_blocks())  # (P,), (K,)
        self.last_update = update
        self.loss_weights = weights
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
        norms = jac.norm(dim=1)
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
        checkpoint[_CKPT_KEY] = {
            "strategy": self.strategy_name,
            "strategy_options": dict(self.strategy_options),
            "strategy_state": self._strategy.state_dict(),
            "has_adapters": self.has_adapters,
            "train_steps": self.train_steps,
            "skipped_steps": self.skipped_steps,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(_CKPT_KEY)
        if state is None:
            return
        self.strategy_options.update(state["strategy_options"])
        if state["has_adapters"] and not self.has_adapters:
            self._attach_adapters()  # before the state dict loads into it
        self._strategy = build_strategy(state["strategy"], **self.strategy_options)
        self._strategy.load_state_dict(state["strategy_state"])
        self.strategy_name = state["strategy"]
        self.train_steps = state["train_steps"]
        self.skipped_steps = state["skipped_steps"]

    def named_loss_weights(self) -> Iterator[tuple[str, float]]:
        """The latest per-loss weights as ``(name, value)`` pairs (host values)."""
        if self.loss_weights is None:
            return iter(())
        return zip(self.loss_names, self.loss_weights.tolist(), strict=True)
