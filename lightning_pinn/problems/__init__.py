"""Ready PDE problems: ``names()`` lists them, ``get(name, **overrides)`` builds one.

Each problem documents its PDE, domain, conditions, loss names and reference solution.
"""

from lightning_pinn.problems._base import Problem, ProblemModule
from lightning_pinn.problems._registry import get, names, register
from lightning_pinn.problems.burgers import Burgers

__all__ = ["Problem", "ProblemModule", "get", "names", "register", "Burgers"]

register("burgers", Burgers)
