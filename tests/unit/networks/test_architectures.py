"""The modified MLP and PirateNet compute what their papers write."""

from __future__ import annotations

import torch
from torch import nn

from lightning_pinn.networks import FourierFeatures, ModifiedMLP, PirateNet


def test_modified_mlp_gates_every_hidden_layer_with_both_encoders():
    net = ModifiedMLP(3, 2, width=8, depth=3)
    x = torch.randn(5, 3)
    u = torch.tanh(net.encoder_u(x))
    v = torch.tanh(net.encoder_v(x))
    h = x
    for layer in net.hidden:
        z = torch.tanh(layer(h))
        h = (1 - z) * u + z * v  # Wang, Teng & Perdikaris (2021)
    torch.testing.assert_close(net(x), net.head(h), rtol=0, atol=0)
    assert [n for n, _ in net.named_children()] == [
        "encoder_u",
        "encoder_v",
        "hidden",
        "head",
        "activation",
    ]
    assert len(net.hidden) == 3 and net.hidden[0].in_features == 3


def test_modified_mlp_xavier_init_and_zero_biases():
    net = ModifiedMLP(2, 1, width=512, depth=1)
    layer = net.hidden[0]
    assert torch.count_nonzero(layer.bias) == 0
    expected = (2.0 / (2 + 512)) ** 0.5
    assert abs(layer.weight.std().item() - expected) < 0.1 * expected


def test_pirate_blocks_start_as_the_identity():
    net = PirateNet(2, 1, width=16, depth=3, embedding=FourierFeatures(2, 32))
    x = torch.randn(7, 2)
    assert all(block.alpha.item() == 0.0 for block in net.blocks)
    torch.testing.assert_close(net(x), net.head(net.embedding(x)), rtol=0, atol=0)


def test_pirate_gate_is_trainable_and_opens():
    net = PirateNet(2, 1, width=16, depth=2, embedding=FourierFeatures(2, 32))
    names = [n for n, _ in net.named_parameters()]
    assert "blocks.0.alpha" in names and "blocks.1.alpha" in names
    x = torch.randn(7, 2)
    net(x).pow(2).sum().backward()
    assert all(block.alpha.grad is not None and block.alpha.grad != 0 for block in net.blocks)
    with torch.no_grad():
        net.blocks[0].alpha.fill_(0.5)
    assert not torch.allclose(net(x), net.head(net.embedding(x)))


def test_pirate_block_formula():
    net = PirateNet(2, 1, width=8, depth=1, activation=nn.Tanh)
    block = net.blocks[0]
    with torch.no_grad():
        block.alpha.fill_(0.3)
    x = torch.randn(4, 2)
    u, v = torch.tanh(net.encoder_u(x)), torch.tanh(net.encoder_v(x))
    f = torch.tanh(block.fc1(x))
    z = f * u + (1 - f) * v
    g = torch.tanh(block.fc2(z))
    z = g * u + (1 - g) * v
    h = torch.tanh(block.fc3(z))
    torch.testing.assert_close(net(x), net.head(0.3 * h + 0.7 * x))
