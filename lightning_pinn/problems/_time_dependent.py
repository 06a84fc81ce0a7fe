"""Forward problems in ``(x, t)``: hard initial/boundary constraints and causal weighting."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor

from lightning_pinn.data import PointSet
from lightning_pinn.problems._base import Problem, record_residual
from lightning_pinn.problems._common import causal_mse, check_causal, mse

if TYPE_CHECKING:
    from lightning_pinn.problems._base import ProblemModule

__all__ = ["TimeDependentProblem", "hard_constraint_support"]


def hard_constraint_support() -> dict[str, tuple[str, ...]]:
    """Problem name -> the conditions it can impose exactly, for every problem class that can."""
    found: dict[str, tuple[str, ...]] = {}
    todo: list[type[TimeDependentProblem]] = [TimeDependentProblem]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.hard_conditions and cls.name:
            found[cls.name] = cls.hard_conditions
    return dict(sorted(found.items()))


def _support_text() -> str:
    support = hard_constraint_support().items()
    return "; ".join(f"{name}: {', '.join(conditions)}" for name, conditions in support)


def _as_conditions(value: Any, owner: str) -> tuple[str, ...]:
    """``"initial"``, ``"initial,boundary"`` or a sequence of names -> a tuple of names."""
    if isinstance(value, str):
        names = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        names = list(value)
    else:
        raise TypeError(
            f"{owner}: hard_constraints must be condition names, e.g. ('initial',) or "
            f"'initial,boundary', got {value!r}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"{owner}: hard_constraints repeats a condition: {value!r}")
    return tuple(names)


@dataclasses.dataclass
class TimeDependentProblem(Problem):
    """A forward problem in ``(x, t)`` with opt-in hard constraints and causal weighting.

    **Hard constraints** (``hard_constraints``, e.g. ``("initial",)``): the network output
    ``N`` is mapped to ``u = g(x, t) + D(x, t) · N`` (:meth:`hard_form`), where ``g``
    satisfies the named conditions and ``D`` vanishes where they hold, so they hold exactly
    (DeepXDE's ``output_transform``; Lagaris et al. 1998). Their losses leave
    ``loss_names`` (an instance attribute: the K that remain) and their points are not
    sampled. The transform runs in :meth:`ProblemModule.forward`, so validation, plots and
    predictions see the constrained function.

    **Causal weighting** (``causal_eps > 0``): the residual loss is
    :func:`~lightning_pinn.problems._common.causal_mse` over ``causal_chunks`` temporal chunks
    (Wang, Sankaran & Perdikaris 2022). ``causal_eps = 0`` (default) is the plain mean.

    Subclasses set :attr:`hard_conditions`, implement :meth:`all_point_sets` instead of
    ``point_sets``, build the residual loss with :meth:`residual_loss`, skip the losses that
    are not in ``self.loss_names``, and implement :meth:`hard_form` if they support hard
    constraints.

    Attributes:
        hard_conditions: the conditions (loss names) this problem can impose exactly.
        time_index: the input column holding ``t``.
    """

    hard_conditions: ClassVar[tuple[str, ...]] = ()
    time_index: ClassVar[int] = 1

    hard_constraints: tuple[str, ...] = dataclasses.field(default=(), kw_only=True)
    causal_eps: float = dataclasses.field(default=0.0, kw_only=True)
    causal_chunks: int = dataclasses.field(default=32, kw_only=True)

    def __post_init__(self) -> None:
        owner = type(self).name or type(self).__name__
        self.hard_constraints = _as_conditions(self.hard_constraints, owner)
        unsupported = [c for c in self.hard_constraints if c not in self.hard_conditions]
        if unsupported:
            own = (
                f"{owner} supports {list(self.hard_conditions)}"
                if self.hard_conditions
                else f"{owner} supports none"
            )
            raise ValueError(
                f"{owner}: no hard constraint for {unsupported}; {own}. Problems with hard "
                f"constraints (conditions): {_support_text()}"
            )
        check_causal(self.causal_eps, self.causal_chunks, owner)
        # Per instance: the K losses that remain once the hard conditions are built in.
        self.loss_names = tuple(n for n in type(self).loss_names if n not in self.hard_constraints)
        super().__post_init__()

    # -- to implement ------------------------------------------------------------------
    def all_point_sets(self) -> dict[str, PointSet]:
        """Every condition's point set by name, hard-constrained ones included."""
        raise NotImplementedError

    def hard_form(self, xt: Tensor) -> tuple[Tensor, Tensor]:
        """``(g, D)``, each ``[N, 1]``, for ``u = g + D · N`` under ``self.hard_constraints``."""
        raise NotImplementedError(f"{type(self).__name__} has no hard constraints")

    # -- shared behaviour ----------------------------------------------------------------
    def point_sets(self) -> dict[str, PointSet]:
        """The sampled point sets: those of the hard-constrained conditions are dropped."""
        sets = self.all_point_sets()
        return {name: ps for name, ps in sets.items() if name not in self.hard_constraints}

    @property
    def has_output_transform(self) -> bool:
        return bool(self.hard_constraints)

    def output_transform(self, x: Tensor, u: Tensor) -> Tensor:
        """``u = g(x, t) + D(x, t) · N`` (see :meth:`hard_form`)."""
        lift, distance = self.hard_form(x)
        return lift + distance * u

    def residual_loss(self, module: ProblemModule, residual: Tensor, xt: Tensor) -> Tensor:
        """Mean squared ``residual`` ``[N, m]`` at ``xt`` ``[N, d]``, causally weighted when
        ``causal_eps > 0`` (the weights are kept on ``module.causal_weights`` for logging)."""
        record_residual(module, residual)
        if self.causal_eps == 0:
            return mse(residual)
        t = xt[:, self.time_index]
        hold = getattr(module, "causal_hold", None)  # set by the L-BFGS phase during a call
        held = hold.current() if hold is not None else None
        loss, weights = causal_mse(residual, t, self.causal_eps, self.causal_chunks, held)
        if hold is not None:
            hold.advance(weights)
        module.causal_weights = weights
        return loss

    def options(self) -> dict[str, Any]:
        """The parameters, the problem's own first; ``hard_constraints`` as a plain list."""
        shared = ("hard_constraints", "causal_eps", "causal_chunks")
        out = {k: v for k, v in super().options().items() if k not in shared}
        out.update(
            hard_constraints=list(self.hard_constraints),  # JSON/YAML-plain
            causal_eps=self.causal_eps,
            causal_chunks=self.causal_chunks,
        )
        return out
