"""Ready PDE problems: ``names()`` lists them, ``get(name, **overrides)`` builds one.

Each problem documents its PDE, domain, conditions, loss names and reference solution.

Families: forward K = 3 (``burgers``, ``allen_cahn``, ``wave``, ``klein_gordon``,
``convection`` and its β variants, ``diffusion_reaction``), forward K = 2 (``helmholtz`` and
its a2 variants), inverse K = 3 (``burgers_inverse``, ``heat_inverse``, ``poisson_inverse``),
multi-physics (``thermoelastic`` K = 4, ``kovasznay`` K = 5, ``thermal_flow`` K = 6) and
high-dimensional (``poisson_nd`` with d ∈ {2, 5, 10, 20, 50}, ``heat_nd``).

The forward time-dependent problems (:class:`TimeDependentProblem`) take
``hard_constraints`` (e.g. ``("initial",)``: the condition holds exactly and its loss leaves
``loss_names``) and ``causal_eps``/``causal_chunks`` (causal weighting of the residual).

Example:
    >>> from lightning_pinn import problems
    >>> problem = problems.get("convection", beta=10.0)
    >>> problem.loss_names
    ('residual', 'initial', 'boundary')
"""

from lightning_pinn.problems._base import Problem, ProblemModule
from lightning_pinn.problems._registry import aliases, get, names, register
from lightning_pinn.problems._time_dependent import TimeDependentProblem, hard_constraint_support
from lightning_pinn.problems.allen_cahn import AllenCahn
from lightning_pinn.problems.burgers import Burgers
from lightning_pinn.problems.convection import Convection
from lightning_pinn.problems.diffusion_reaction import DiffusionReaction
from lightning_pinn.problems.helmholtz import Helmholtz
from lightning_pinn.problems.highdim import HeatND, PoissonND
from lightning_pinn.problems.inverse import BurgersInverse, HeatInverse, PoissonInverse
from lightning_pinn.problems.navier_stokes import Kovasznay, ThermalFlow
from lightning_pinn.problems.thermoelastic import Thermoelastic
from lightning_pinn.problems.wave import KleinGordon, Wave

__all__ = [
    "AllenCahn",
    "Burgers",
    "BurgersInverse",
    "Convection",
    "DiffusionReaction",
    "HeatInverse",
    "HeatND",
    "Helmholtz",
    "KleinGordon",
    "Kovasznay",
    "PoissonInverse",
    "PoissonND",
    "Problem",
    "ProblemModule",
    "ThermalFlow",
    "Thermoelastic",
    "TimeDependentProblem",
    "Wave",
    "aliases",
    "builtin_names",
    "get",
    "hard_constraint_support",
    "names",
    "register",
]

for _cls in (
    Burgers,
    AllenCahn,
    Wave,
    KleinGordon,
    Convection,
    DiffusionReaction,
    Helmholtz,
    BurgersInverse,
    HeatInverse,
    PoissonInverse,
    Thermoelastic,
    Kovasznay,
    ThermalFlow,
    PoissonND,
    HeatND,
):
    register(_cls.name, _cls)
for _beta in (1, 10, 20, 40):
    register(f"convection-b{_beta}", Convection, beta=float(_beta))
for _a2 in (1, 2, 6):
    register(f"helmholtz-a{_a2}", Helmholtz, a2=_a2)
for _d in (2, 5, 10, 20, 50):
    register(f"poisson_nd-d{_d}", PoissonND, dim=_d)
del _cls, _beta, _a2, _d
_BUILTIN = tuple(names())


def builtin_names() -> list[str]:
    """The names this package registers, sorted: :func:`names` without the problems a user
    registered. The benchmark's calibration / held-out halves alternate over these, so a user's
    ``register`` never moves a built-in configuration from one half to the other."""
    return list(_BUILTIN)
