"""Side-by-side cost of PDE derivatives: plain autograd vs ``lightning_pinn.operators``.

    python benchmarks/operators.py [--rounds 21]

One thread, interleaved rounds (every variant once per round, in turn), medians and ratios
to the first variant of each group. Each timing is the derivative computation plus one
backward pass to the network parameters, as in a training step.

- Burgers residual ``u_t + u u_x - ν u_xx`` on tanh 2-64x4-1, 2000 points:
  ``naive`` (one autograd.grad per derivative: u_x, u_t, u_xx — PINA style),
  ``two-pass`` (the pre-operators code: one pass for u_x and u_t, one for u_xx),
  ``operators`` (``gradient`` then ``hessian_diag(grad=...)``, what the problem uses) and
  ``jet`` (the forward-mode :func:`~lightning_pinn.operators.jet`).
- Laplacian of an adapter-wrapped trunk (``PerLossAdapter``, K = 3, rank 4, tanh 5-64x4-1,
  1000 points), with linear and with nonlinear (tanh branch) adapters: the old slow path
  (``vmap`` forward-over-reverse, which every wrapped trunk took, and the nonlinear form until
  the jet learnt its branch), d reverse passes, and the forward-mode fast path.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, autograd, nn

from lightning_pinn import PerLossAdapter
from lightning_pinn.networks import MLP
from lightning_pinn.operators import gradient, hessian_diag, jet, laplacian, laplacian_fwd

NU = 0.01 / torch.pi


def _step(net: nn.Module, loss: Tensor) -> None:
    autograd.grad(loss, [p for p in net.parameters() if p.requires_grad], allow_unused=True)


def burgers_variants(net: nn.Module, x: Tensor) -> dict[str, Callable[[], None]]:
    def residual(u: Tensor, u_x: Tensor, u_t: Tensor, u_xx: Tensor) -> None:
        _step(net, (u_t + u * u_x - NU * u_xx).pow(2).mean())

    def naive() -> None:
        xg = x.clone().requires_grad_(True)
        u = net(xg)
        u_x = autograd.grad(u.sum(), xg, create_graph=True)[0][:, :1]
        u_t = autograd.grad(u.sum(), xg, create_graph=True)[0][:, 1:2]
        u_xx = autograd.grad(u_x.sum(), xg, create_graph=True)[0][:, :1]
        residual(u, u_x, u_t, u_xx)

    def two_pass() -> None:
        xg = x.clone().requires_grad_(True)
        u = net(xg)
        du = autograd.grad(u.sum(), xg, create_graph=True)[0]
        u_xx = autograd.grad(du[:, :1].sum(), xg, create_graph=True)[0][:, :1]
        residual(u, du[:, :1], du[:, 1:2], u_xx)

    def operators() -> None:
        xg = x.clone().requires_grad_(True)
        u = net(xg)
        du = gradient(u, xg)
        residual(u, du[:, :1], du[:, 1:2], hessian_diag(u, xg, dims=[0], grad=du))

    def forward_jet() -> None:
        out = jet(net, x, second=[(0, 0)])
        residual(out.value, out.d(0), out.d(1), out.d2(0, 0))

    return {"naive": naive, "two-pass": two_pass, "operators": operators, "jet": forward_jet}


def laplacian_variants(net: nn.Module, x: Tensor) -> dict[str, Callable[[], None]]:
    def slow_vmap() -> None:  # a callable of unknown structure: what adapters used to get
        _step(net, laplacian_fwd(lambda y: net(y), x).pow(2).mean())

    def reverse() -> None:
        xg = x.clone().requires_grad_(True)
        _step(net, laplacian(net(xg), xg).pow(2).mean())

    def fast() -> None:
        _step(net, laplacian_fwd(net, x).pow(2).mean())

    return {"vmap (old)": slow_vmap, "reverse": reverse, "jet (new)": fast}


def measure(variants: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    for fn in variants.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def report(title: str, medians: dict[str, float]) -> None:
    base_name, base = next(iter(medians.items()))
    print(f"\n{title}")
    for name, t in medians.items():
        print(f"  {name:12s} {t * 1e3:8.2f} ms   ratio to {base_name}: {t / base:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    burgers = MLP(2, 1, width=64, depth=4)
    x = torch.rand(2000, 2) * torch.tensor([2.0, 1.0]) - torch.tensor([1.0, 0.0])
    report(
        "Burgers residual + backward, tanh 2-64x4-1, N=2000",
        measure(burgers_variants(burgers, x), args.rounds),
    )
    x5 = torch.rand(1000, 5)
    for form in ("linear", "nonlinear"):
        adapted = PerLossAdapter(MLP(5, 1, width=64, depth=4), num_losses=3, rank=4, form=form)
        with torch.no_grad():
            for name, p in adapted.named_parameters():
                if "lora_B" in name:
                    p.normal_(0.0, 0.1)
        report(
            f"Laplacian + backward, PerLossAdapter(tanh 5-64x4-1, form={form}), N=1000",
            measure(laplacian_variants(adapted, x5), args.rounds),
        )


if __name__ == "__main__":
    main()
