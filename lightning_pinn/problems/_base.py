"""The ``Problem`` base class and the generic module that trains one."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from lightning_pinn.data import CollocationDataModule, PointSet, SamplingMethod
from lightning_pinn.module import PINNModule
from lightning_pinn.networks import MLP
from lightning_pinn.problems._common import CausalHold, mse

__all__ = ["Problem", "ProblemModule"]


def _checked_reference(reference: Any) -> Any:
    """``reference`` refusing points that are not ``[N, input_dim]`` (a wrong width would
    otherwise be read silently, e.g. a 2-D problem's ``x`` and ``t`` from 3 columns)."""

    @functools.wraps(reference)
    def checked(self: Problem, points: Tensor) -> Tensor:
        if not isinstance(points, Tensor) or points.dim() != 2 or points.shape[1] != self.input_dim:
            shape = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
            raise ValueError(
                f"{self.name}.reference expects points of shape [N, {self.input_dim}] "
                f"(columns {', '.join(self.coordinate_names)}), got {shape}"
            )
        return reference(self, points)

    checked._checks_points = True  # type: ignore[attr-defined]
    return checked


@dataclasses.dataclass
class Problem:
    """A ready PDE problem: losses, sampling regions, reference solution, defaults.

    Subclasses are dataclasses whose fields are the problem's parameters (PDE coefficients,
    point counts); :func:`lightning_pinn.problems.get` passes overrides to them. They set the
    class attributes below and implement :meth:`point_sets`, :meth:`losses`,
    :meth:`reference` and :meth:`eval_points`.

    Attributes:
        name: registry name.
        loss_names: the K loss names (order = loss index). Read it on the instance: a
            problem with hard constraints sets its own, shorter tuple.
        input_dim: number of input coordinates d (space and time).
        output_dim: number of output fields m.
        field_names: names of the output fields.
        coordinate_names: names of the input coordinates.
    """

    name: ClassVar[str] = ""
    loss_names: ClassVar[tuple[str, ...]] = ()
    input_dim: ClassVar[int] = 1
    output_dim: ClassVar[int] = 1
    field_names: ClassVar[tuple[str, ...]] = ("u",)
    coordinate_names: ClassVar[tuple[str, ...]] = ("x",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("reference")
        if own is not None and not getattr(own, "_checks_points", False):
            cls.reference = _checked_reference(own)  # type: ignore[method-assign]

    def validate(self) -> None:
        """Check parameter ranges; raise ``ValueError`` naming the bad field. Override."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name.startswith("n_") and (
                not isinstance(getattr(self, f.name), int) or getattr(self, f.name) < 1
            ):
                raise ValueError(
                    f"{type(self).__name__}.{f.name} must be a positive int, got "
                    f"{getattr(self, f.name)!r}"
                )
        self.validate()

    # -- to implement ------------------------------------------------------------------
    def point_sets(self) -> dict[str, PointSet]:
        """Collocation point sets drawn every step, by name."""
        raise NotImplementedError

    def losses(self, module: ProblemModule, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The K losses of ``module`` (call ``module(x)`` for the network) on ``batch``."""
        raise NotImplementedError

    def reference(self, points: Tensor) -> Tensor:
        """Reference solution ``[N, input_dim] -> [N, output_dim]``."""
        raise NotImplementedError

    def eval_points(self) -> Tensor:
        """Fixed evaluation points ``[N, input_dim]`` for ``val/rel_l2``."""
        raise NotImplementedError

    # -- optional hooks ------------------------------------------------------------------
    def residual_loss(self, module: ProblemModule, residual: Tensor, points: Tensor) -> Tensor:
        """Mean squared PDE ``residual`` ``[N, m]`` at ``points`` ``[N, d]``.

        Route the residual through this method in :meth:`losses` (rather than taking its mean
        square directly): the module can then read it point by point, which residual-based
        adaptive sampling needs (``LBFGSPhase(rad_candidates=...)``).
        """
        record_residual(module, residual)
        return mse(residual)

    def unknowns(self) -> dict[str, float]:
        """Unknown scalar PDE coefficients of an inverse problem: name -> initial guess."""
        return {}

    def true_values(self) -> dict[str, float]:
        """True values of the unknown coefficients (for logging their error)."""
        return {}

    def fixed_data(self) -> dict[str, Tensor]:
        """Fixed tensors the losses need (observations of an inverse problem)."""
        return {}

    @property
    def has_output_transform(self) -> bool:
        """Whether :meth:`output_transform` maps the network output (hard constraints)."""
        return False

    def output_transform(self, x: Tensor, u: Tensor) -> Tensor:
        """The solution ``[N, output_dim]`` from the network output ``u`` at ``x`` ``[N, d]``.

        Identity here; a problem with hard constraints overrides it (and
        :attr:`has_output_transform`).
        """
        return u

    def default_trunk(self) -> nn.Module:
        """The default network: tanh MLP, 4 hidden layers of 64."""
        return MLP(self.input_dim, self.output_dim, width=64, depth=4)

    def options(self) -> dict[str, Any]:
        """The problem's parameters (dataclass fields) as a dict."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    # -- factories -----------------------------------------------------------------------
    def module(
        self, trunk: nn.Module | Mapping[str, Any] | None = None, **kwargs: Any
    ) -> ProblemModule:
        """A configured :class:`ProblemModule` (kwargs go to :class:`PINNModule`; ``trunk``
        may be a ``{"class_path": ..., "init_args": ...}`` spec, kept in checkpoints)."""
        return ProblemModule(self, trunk=trunk, **kwargs)

    def datamodule(
        self,
        *,
        seed: int = 0,
        method: SamplingMethod = "uniform",
        points: Mapping[str, int] | None = None,
        eval_batch_size: int = 8192,
        resample: bool = True,
    ) -> CollocationDataModule:
        """Collocation points (resampled every step, or fixed), plus the evaluation set.

        Args:
            seed: sampling seed.
            method: ``"uniform"``, ``"lhs"`` or ``"sobol"``.
            resample: fresh points every step (default) or, with ``False``, one fixed draw.
            points: per-set point counts overriding the defaults, e.g. ``{"residual": 500}``.
            eval_batch_size: points per validation batch.
        """
        sets = self.point_sets()
        for name, n in (points or {}).items():
            if name not in sets:
                raise ValueError(f"unknown point set {name!r}; {self.name} has {list(sets)}")
            sets[name] = PointSet(sets[name].region, n)
        return CollocationDataModule(
            sets,
            seed=seed,
            method=method,
            resample=resample,
            eval_points=self.eval_points(),
            reference=self.reference,
            eval_batch_size=eval_batch_size,
        )


def record_residual(module: Any, residual: Tensor) -> None:
    """Keep ``residual`` (detached) when ``module`` is reading residuals point by point."""
    record = getattr(module, "residual_record", None)
    if record is not None:
        record.append(residual.detach())


class _TensorDict(nn.Module):
    """Fixed tensors registered as (non-persistent) buffers, accessed by name."""

    def __init__(self, tensors: Mapping[str, Tensor]) -> None:
        super().__init__()
        self._names = list(tensors)
        for name, t in tensors.items():
            self.register_buffer(name, t.detach().clone(), persistent=False)

    def __getitem__(self, name: str) -> Tensor:
        return getattr(self, name)

    def __contains__(self, name: object) -> bool:
        return name in self._names


def _check_trunk_fits(model: nn.Module, problem: Problem) -> None:
    """Raise unless ``model`` maps ``[N, input_dim]`` to ``[N, output_dim]`` (one forward on
    two zero points, in eval mode and without gradients, so no state changes)."""
    param = next(model.parameters(), None)
    x = torch.zeros(
        2,
        problem.input_dim,
        dtype=param.dtype if param is not None and param.is_floating_point() else None,
        device=param.device if param is not None else None,
    )
    fix = (
        f"build it with in_dim={problem.input_dim} ({', '.join(problem.coordinate_names)}) and "
        f"out_dim={problem.output_dim} ({', '.join(problem.field_names)})"
    )
    training = model.training
    model.train(False)
    try:
        with torch.no_grad():
            out = model(x)
    except RuntimeError as err:
        raise ValueError(
            f"the trunk cannot take the points of problem {problem.name!r}, [N, "
            f"{problem.input_dim}] ({str(err).splitlines()[0]}); {fix}"
        ) from err
    finally:
        model.train(training)
    if not isinstance(out, Tensor) or tuple(out.shape) != (2, problem.output_dim):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"the trunk maps the points of problem {problem.name!r}, [N, {problem.input_dim}], "
            f"to {shape} for N = 2, not [N, {problem.output_dim}]; {fix}"
        )


class ProblemModule(PINNModule):
    """A :class:`PINNModule` whose losses come from a :class:`Problem`.

    Unknown coefficients of inverse problems are ``nn.Parameter`` s in
    :attr:`coefficients` (part of the shared parameters θ_s, a separate block of ``J``) and
    are logged as ``param/<name>`` next to ``param_error/<name>`` (relative to the true value).
    A problem's output transform (hard constraints) is applied in :meth:`forward`, so every
    evaluation sees the constrained function; the smallest causal weight of the latest step
    is logged as ``causal/min_weight`` when causal weighting is on.

    Args:
        problem: a :class:`Problem` or a registered problem name.
        trunk: the network; the problem's default trunk if ``None``; or its spec
            ``{"class_path": ..., "init_args": {...}}`` (``in_dim``/``out_dim`` from the
            problem), which the checkpoint keeps, so ``load_from_checkpoint(path)`` rebuilds
            the same network (with a module given here, pass ``trunk=`` to it again).
        problem_options: overrides for the problem when ``problem`` is a name.
        **kwargs: :class:`PINNModule` options (``lr``, ``strategy``, ...).
    """

    def __init__(
        self,
        problem: Problem | str = "burgers",
        trunk: nn.Module | Mapping[str, Any] | None = None,
        problem_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(problem, str):
            from lightning_pinn.problems import get

            problem = get(problem, **dict(problem_options or {}))
        elif not isinstance(problem, Problem):
            raise TypeError(f"problem must be a Problem or a name, got {type(problem).__name__}")
        spec = None
        if isinstance(trunk, Mapping):
            from lightning_pinn.run._recipes import build_trunk

            spec = dict(trunk)
            trunk = build_trunk(spec, problem.input_dim, problem.output_dim)
        # Saved hyperparameters (load_from_checkpoint) repeat what the problem defines.
        for key, value in (
            ("loss_names", problem.loss_names),
            ("field_names", problem.field_names),
        ):
            given = kwargs.pop(key, None)
            if given is not None and tuple(given) != tuple(value):
                raise ValueError(
                    f"{key}={given!r} contradicts problem {problem.name!r} ({value!r})"
                )
        super().__init__(
            trunk if trunk is not None else problem.default_trunk(),
            loss_names=problem.loss_names,
            field_names=problem.field_names,
            **kwargs,
        )
        _check_trunk_fits(self.model, problem)
        self.problem = problem
        self.hparams["problem"] = problem.name
        self.hparams["problem_options"] = problem.options()
        if spec is not None:
            self.hparams["trunk"] = spec
        self.coefficients = nn.ParameterDict(
            {n: nn.Parameter(torch.tensor(float(v))) for n, v in problem.unknowns().items()}
        )
        self.fixed = _TensorDict(problem.fixed_data())
        self.causal_weights: Tensor | None = None  # [M], set by a causally weighted residual
        self.causal_hold: CausalHold | None = None  # set by the L-BFGS phase during a call
        self.residual_record: list[Tensor] | None = None  # set while reading residuals

    def pointwise_residual(self, batch: Mapping[str, Tensor], name: str, points: Tensor) -> Tensor:
        """``|r|`` ``[N]`` at ``points`` ``[N, d]``: the problem's losses on ``batch`` with set
        ``name`` replaced by ``points``, reading the residuals it passes to
        :meth:`Problem.residual_loss` (summed in square over several residuals of one set).

        Raises:
            ValueError: the problem's ``losses`` reports no residual of ``points``' size (it
                does not call ``self.residual_loss``).
        """
        self.residual_record = []
        try:
            with torch.enable_grad():
                self.problem.losses(self, {**batch, name: points.detach().clone()})
            record = [r for r in self.residual_record if r.shape[0] == points.shape[0]]
        finally:
            self.residual_record = None
        if not record:
            raise ValueError(
                f"problem {self.problem.name!r} reports no point-by-point residual for set "
                f"{name!r}: its losses() must pass each PDE residual through "
                "self.residual_loss(module, residual, points)"
            )
        return torch.cat([r.reshape(r.shape[0], -1) for r in record], dim=1).norm(dim=1)

    def forward(self, x: Tensor, **kwargs: Any) -> Tensor:
        """The network at ``x`` ``[N, d]``, through the problem's output transform if any."""
        u = super().forward(x, **kwargs)
        if self.problem.has_output_transform:
            u = self.problem.output_transform(x, u)
        return u

    def losses(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return self.problem.losses(self, batch)

    def extra_log_metrics(self) -> dict[str, Tensor]:
        truth = self.problem.true_values()
        out: dict[str, Tensor] = {}
        for name, p in self.coefficients.items():
            out[f"param/{name}"] = p.detach()
            if name in truth and truth[name] != 0:
                out[f"param_error/{name}"] = (p.detach() - truth[name]).abs() / abs(truth[name])
        if self.causal_weights is not None:
            out["causal/min_weight"] = self.causal_weights.min()
        return out
