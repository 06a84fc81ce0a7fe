"""Allen–Cahn equation with a cached Fourier pseudo-spectral ETDRK4 reference."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import tempfile
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lightning_pinn.data import Box, PointSet
from lightning_pinn.operators import gradient, hessian_diag
from lightning_pinn.problems._base import ProblemModule
from lightning_pinn.problems._common import check_positive, grid, mse
from lightning_pinn.problems._time_dependent import TimeDependentProblem

__all__ = ["AllenCahn", "AllenCahnSolution", "cache_dir", "etdrk4_allen_cahn"]

_VERSION = 1  # bump when the solver changes, so stale cache files are not reused
_MEMO: dict[Path, AllenCahnSolution] = {}
_CACHE_WARNED = False  # the unwritable-cache warning is given once per process


def cache_dir() -> Path:
    """The user cache directory: ``$LIGHTNING_PINN_CACHE`` or ``~/.cache/lightning_pinn``."""
    root = os.environ.get("LIGHTNING_PINN_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "lightning_pinn"


def etdrk4_allen_cahn(
    diffusion: float = 1e-4,
    reaction: float = 5.0,
    modes: int = 1024,
    dt: float = 1e-3,
    t_end: float = 1.0,
    save_every: int = 1,
    contour_points: int = 32,
) -> dict[str, np.ndarray]:
    """Solve ``u_t = D u_xx + r (u - u³)`` on the periodic ``[-1, 1)``, ``u0 = x² cos(πx)``.

    Fourier pseudo-spectral in space (``modes`` grid points, real FFT), ETDRK4 in time with
    the φ-function coefficients evaluated by contour integrals over ``contour_points`` points
    on a unit circle around each ``h L`` (Kassam & Trefethen 2005, SIAM J. Sci. Comput. 26).
    The linear part is the diffusion ``L = -D k²``; the nonlinear part ``N(u) = r(u - u³)``.

    Returns:
        ``{"t": [T], "coef": [T, modes//2+1], "dcoef": [T, modes//2+1], "modes": [1]}``: the
        real-FFT coefficients of ``u`` and of ``u_t`` (from the PDE) at the saved times.
    """
    n_steps = round(t_end / dt)
    if abs(n_steps * dt - t_end) > 1e-9 * t_end or modes % 2:
        raise ValueError(f"t_end/dt must be an integer and modes even, got {t_end}/{dt}, {modes}")
    x = -1.0 + 2.0 * np.arange(modes) / modes
    k = np.pi * np.arange(modes // 2 + 1)  # wavenumbers on a period of length 2
    lin = -diffusion * k**2  # (M,)
    e, e2 = np.exp(dt * lin), np.exp(dt * lin / 2)
    roots = np.exp(1j * np.pi * (np.arange(1, contour_points + 1) - 0.5) / contour_points)
    lr = dt * lin[:, None] + roots[None, :]  # (M, contour_points)
    q = dt * np.real(np.mean((np.exp(lr / 2) - 1) / lr, axis=1))
    f1 = dt * np.real(np.mean((-4 - lr + np.exp(lr) * (4 - 3 * lr + lr**2)) / lr**3, axis=1))
    f2 = dt * np.real(np.mean((2 + lr + np.exp(lr) * (-2 + lr)) / lr**3, axis=1))
    f3 = dt * np.real(np.mean((-4 - 3 * lr - lr**2 + np.exp(lr) * (4 - lr)) / lr**3, axis=1))

    def nonlinear(v: np.ndarray) -> np.ndarray:
        u = np.fft.irfft(v, n=modes)
        return np.fft.rfft(reaction * (u - u**3))

    v = np.fft.rfft(x**2 * np.cos(np.pi * x))
    coef, dcoef, times = [v], [lin * v + nonlinear(v)], [0.0]
    for step in range(1, n_steps + 1):
        nv = nonlinear(v)
        a = e2 * v + q * nv
        na = nonlinear(a)
        b = e2 * v + q * na
        nb = nonlinear(b)
        c = e2 * a + q * (2 * nb - nv)
        nc = nonlinear(c)
        v = e * v + nv * f1 + 2 * (na + nb) * f2 + nc * f3
        if step % save_every == 0:
            coef.append(v)
            dcoef.append(lin * v + nonlinear(v))
            times.append(step * dt)
    return {
        "t": np.asarray(times),
        "coef": np.stack(coef),
        "dcoef": np.stack(dcoef),
        "modes": np.asarray([modes]),
    }


class AllenCahnSolution:
    """The solver output, evaluated anywhere: spectral in x, cubic Hermite in t.

    Between saved times the Fourier coefficients are interpolated by cubic Hermite
    polynomials using their exact time derivatives (from the PDE), then summed as a
    trigonometric series at each point's x (the Nyquist mode is dropped).
    """

    def __init__(self, data: Mapping[str, np.ndarray]) -> None:
        self.t = np.asarray(data["t"], dtype=np.float64)
        self.coef = np.asarray(data["coef"])
        self.dcoef = np.asarray(data["dcoef"])
        self.modes = int(np.asarray(data["modes"]).reshape(-1)[0])

    def __call__(self, points: Tensor, chunk: int = 4096) -> Tensor:
        pts = points.detach().double().cpu()
        out = torch.empty(len(pts), dtype=torch.float64)
        coef, dcoef = torch.from_numpy(self.coef), torch.from_numpy(self.dcoef)
        times = torch.from_numpy(self.t)
        m = coef.shape[1]
        k = math.pi * torch.arange(m, dtype=torch.float64)
        weight = torch.full((m,), 2.0 / self.modes, dtype=torch.float64)
        weight[0], weight[-1] = 1.0 / self.modes, 0.0  # mean once, Nyquist dropped
        h = float(times[1] - times[0])
        for s in range(0, len(pts), chunk):
            x, t = pts[s : s + chunk, 0], pts[s : s + chunk, 1].clamp(times[0], times[-1])
            i = ((t - times[0]) / h).long().clamp(0, len(times) - 2)
            r = ((t - times[i]) / h)[:, None]
            h00, h10 = 2 * r**3 - 3 * r**2 + 1, r**3 - 2 * r**2 + r
            h01, h11 = -2 * r**3 + 3 * r**2, r**3 - r**2
            c = h00 * coef[i] + h10 * h * dcoef[i] + h01 * coef[i + 1] + h11 * h * dcoef[i + 1]
            theta = torch.outer(x + 1.0, k)  # (n, M)
            series = c.real * torch.cos(theta) - c.imag * torch.sin(theta)  # Re(c e^{iθ})
            out[s : s + chunk] = series @ weight
        return out.to(dtype=points.dtype, device=points.device).unsqueeze(1)


def load_or_solve(**solver_options: float) -> AllenCahnSolution:
    """The reference for ``solver_options``, from memory, the cache file, or a fresh solve.

    The solve (a few seconds) runs once; its result is saved as ``allen_cahn-<hash>.npz`` in
    :func:`cache_dir` and reused by later processes. The file is written to a unique temporary
    file in the same directory and moved into place with ``os.replace``, so concurrent writers
    never leave a partial file; an unreadable cache file is solved again. When the cache
    directory cannot be created or written (read-only, under a regular file), the reference is
    kept in memory only and a warning is given once per process.
    """
    key = repr(sorted({"version": _VERSION, **solver_options}.items()))
    path = cache_dir() / f"allen_cahn-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"
    if path in _MEMO:
        return _MEMO[path]
    data = _read_cache(path)
    if data is None:
        data = etdrk4_allen_cahn(**solver_options)
        _write_cache(path, data)
    _MEMO[path] = AllenCahnSolution(data)
    return _MEMO[path]


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or ``None`` when it is missing or unreadable."""
    try:
        with open(path, "rb") as fh, np.load(fh) as f:
            return {name: f[name] for name in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def _write_cache(path: Path, data: Mapping[str, np.ndarray]) -> None:
    """Write ``data`` to ``path`` atomically; on any ``OSError`` warn once and write nothing."""
    global _CACHE_WARNED
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp.npz", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **data)
        os.replace(tmp, path)
    except OSError as err:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.remove(tmp)
        if not _CACHE_WARNED:
            _CACHE_WARNED = True
            warnings.warn(
                f"cannot write the Allen-Cahn reference cache in {str(path.parent)!r} ({err}); "
                "the reference is kept in memory and solved again by each process. Set "
                "LIGHTNING_PINN_CACHE to a writable directory to keep it.",
                stacklevel=3,
            )


def _initial(x: Tensor) -> Tensor:
    """``u(x, 0) = x² cos(πx)``."""
    return x**2 * torch.cos(math.pi * x)


@dataclasses.dataclass
class AllenCahn(TimeDependentProblem):
    """Allen–Cahn equation (forward, K = 3).

    PDE: ``u_t - D u_xx + r u³ - r u = 0`` with ``D = 1e-4``, ``r = 5``, ``x ∈ [-1, 1]``,
    ``t ∈ [0, 1]``. Initial condition ``u(x, 0) = x² cos(πx)``; periodic boundary.
    Losses: ``residual`` (mean squared PDE residual), ``initial`` (mean squared misfit),
    ``boundary`` (periodicity: mean squared ``u(-1,t) - u(1,t)`` plus mean squared
    ``u_x(-1,t) - u_x(1,t)``, on the same t samples). Reference: Fourier pseudo-spectral
    ETDRK4 solve with 1024 modes and ``dt = 1e-3`` (:func:`etdrk4_allen_cahn`), cached in
    :func:`cache_dir`; evaluated on a 256 × 101 grid. Inputs ``(x, t)``; output ``u``.

    Hard constraint ``"initial"``: ``u = x² cos(πx) + t · N`` (:class:`TimeDependentProblem`).
    Causal weighting via ``causal_eps`` (jaxpi's Allen–Cahn recipe uses it).
    """

    name = "allen_cahn"
    loss_names = ("residual", "initial", "boundary")
    hard_conditions = ("initial",)
    input_dim = 2
    output_dim = 1
    coordinate_names = ("x", "t")

    diffusion: float = 1e-4
    reaction: float = 5.0
    n_residual: int = 2000
    n_initial: int = 256
    n_boundary: int = 128

    def validate(self) -> None:
        check_positive("allen_cahn", diffusion=self.diffusion, reaction=self.reaction)

    def all_point_sets(self) -> dict[str, PointSet]:
        return {
            "residual": PointSet(Box((-1.0, 0.0), (1.0, 1.0)), self.n_residual),
            "initial": PointSet(Box((-1.0, 0.0), (1.0, 0.0)), self.n_initial),
            "boundary": PointSet(Box((-1.0, 0.0), (-1.0, 1.0)), self.n_boundary),  # x = -1
        }

    def losses(self, module: ProblemModule, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        xt = batch["residual"].requires_grad_(True)
        u = module(xt, loss="residual")
        du = gradient(u, xt)  # (N, 2): u_x, u_t
        u_xx = hessian_diag(u, xt, dims=[0], grad=du)
        residual = du[:, 1:2] - self.diffusion * u_xx + self.reaction * (u**3 - u)
        out = {"residual": self.residual_loss(module, residual, xt)}
        if "initial" in self.loss_names:
            x0 = batch["initial"]
            out["initial"] = mse(module(x0, loss="initial") - _initial(x0[:, :1]))
        left = batch["boundary"]
        right = left + torch.tensor([2.0, 0.0], dtype=left.dtype, device=left.device)
        ends = torch.cat([left, right]).requires_grad_(True)  # (2B, 2)
        u_b = module(ends, loss="boundary")
        ux_b = gradient(u_b, ends)[:, :1]
        n = left.shape[0]
        out["boundary"] = mse(u_b[:n] - u_b[n:]) + mse(ux_b[:n] - ux_b[n:])
        return out

    def hard_form(self, xt: Tensor) -> tuple[Tensor, Tensor]:
        return _initial(xt[:, :1]), xt[:, 1:2]  # "initial" is the only hard condition

    def solution(self) -> AllenCahnSolution:
        """The (cached) spectral reference solution for this problem's coefficients."""
        return load_or_solve(diffusion=self.diffusion, reaction=self.reaction)

    def reference(self, points: Tensor) -> Tensor:
        return self.solution()(points)

    def eval_points(self) -> Tensor:
        return grid((-1.0, 0.0), (1.0, 1.0), (256, 101))
