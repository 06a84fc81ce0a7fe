import torch
from torch import nn

from lightning_pinn import PINNModule
from lightning_pinn.gradients import per_loss_gradients, unflatten_into_grad


def _rel(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


class _Toy(PINNModule):
    def losses(self, batch):
        x = batch.requires_grad_(True)
        u = self(x)
        (du,) = torch.autograd.grad(u.sum(), x, create_graph=True)
        return {
            "residual": (du[:, :1] + u).pow(2).mean(),
            "initial": (self(x[:5] * 0) - 1).pow(2).mean(),
            "boundary": self(x[-5:]).pow(2).mean() + self.coef.pow(2),
        }


def _toy():
    net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
    m = _Toy(net, loss_names=("residual", "initial", "boundary"))
    m.coef = nn.Parameter(torch.tensor(0.5))
    return m


def test_rows_equal_single_loss_gradients():
    m = _toy()
    x = torch.rand(64, 2)
    out = m.losses(x.clone())
    params = m.shared_parameters()
    jac, _ = per_loss_gradients([out[n] for n in m.loss_names], params)
    assert jac.shape == (3, sum(p.numel() for p in params))
    assert jac.dtype == torch.float32
    for k, name in enumerate(m.loss_names):
        single = m.losses(x.clone())[name]
        grads = torch.autograd.grad(single, params, allow_unused=True)
        row = torch.cat(
            [
                (g if g is not None else torch.zeros_like(p)).reshape(-1)
                for g, p in zip(grads, params)
            ]
        )
        assert _rel(jac[k], row) < 1e-6


def test_none_update_is_gradient_of_summed_loss():
    m = _toy()
    x = torch.rand(64, 2)
    out = m.losses(x.clone())
    params = m.shared_parameters()
    jac, _ = per_loss_gradients([out[n] for n in m.loss_names], params)
    update, weights = m.strategy.update(jac, torch.zeros(3))
    total = sum(m.losses(x.clone()).values())
    grads = torch.autograd.grad(total, params)
    assert _rel(update, torch.cat([g.reshape(-1) for g in grads])) < 1e-6
    assert torch.equal(weights, torch.ones(3))


def test_shared_parameters_put_network_first_then_coefficients():
    m = _toy()
    shared = m.shared_parameters()
    assert shared[-1] is m.coef
    blocks = m.parameter_blocks()
    assert len(blocks) == 2 and blocks[1].stop - blocks[1].start == 1


def test_unflatten_into_grad_writes_views():
    params = [nn.Parameter(torch.zeros(2, 3)), nn.Parameter(torch.zeros(4))]
    vec = torch.arange(10.0)
    unflatten_into_grad(vec, params)
    assert torch.equal(params[0].grad.reshape(-1), vec[:6])
    assert torch.equal(params[1].grad, vec[6:])
