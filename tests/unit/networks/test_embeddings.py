"""Random Fourier features and the exact periodic embedding."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_pinn.networks import (
    MLP,
    EmbeddingChain,
    FourierFeatures,
    ModifiedMLP,
    PeriodicEmbedding,
)
from lightning_pinn.operators import gradient, laplacian, laplacian_fwd


def test_fourier_features_formula_and_shape():
    emb = FourierFeatures(3, out_dim=8, sigma=2.0)
    x = torch.randn(5, 3)
    z = x @ emb.B
    assert emb.B.shape == (3, 4)
    torch.testing.assert_close(emb(x), torch.cat([torch.cos(z), torch.sin(z)], dim=1))


def test_fourier_matrix_is_a_buffer_drawn_with_scale_sigma():
    emb = FourierFeatures(4, out_dim=8000, sigma=3.0)
    assert list(emb.named_parameters()) == []
    assert "B" in emb.state_dict()
    assert emb.B.std().item() == pytest.approx(3.0, rel=0.05)
    assert emb.B.mean().item() == pytest.approx(0.0, abs=0.1)


def test_embedding_adds_no_shared_parameter():
    plain = MLP(32, 1, width=16, depth=2)
    embedded = MLP(2, 1, width=16, depth=2, embedding=FourierFeatures(2, 32))
    assert [p.shape for p in embedded.parameters()] == [p.shape for p in plain.parameters()]
    modified = ModifiedMLP(2, 1, 16, 2, embedding=FourierFeatures(2, 32))
    assert all(not n.startswith("embedding") for n, _ in modified.named_parameters())


def test_fourier_scales_per_coordinate():
    emb = FourierFeatures(2, out_dim=8000, sigma=[1.0, 10.0])
    assert emb.B.std(dim=1).tolist() == pytest.approx([1.0, 10.0], rel=0.05)
    assert emb.sigma == (1.0, 10.0)
    assert "sigma=(1.0, 10.0)" in repr(emb)
    torch.manual_seed(3)
    scalar = FourierFeatures(2, out_dim=16, sigma=2.0)
    torch.manual_seed(3)
    equal = FourierFeatures(2, out_dim=16, sigma=(2.0, 2.0))
    torch.manual_seed(3)
    scaled = FourierFeatures(2, out_dim=16, sigma=(2.0, 6.0))
    assert torch.equal(scalar.B, equal.B) and equal.sigma == 2.0
    assert torch.equal(scaled.B[0], scalar.B[0])
    torch.testing.assert_close(scaled.B[1], 3 * scalar.B[1])


def test_fourier_scales_per_coordinate_in_a_recipe_trunk():
    from lightning_pinn.run._recipes import build_trunk

    spec = {
        "class_path": "lightning_pinn.networks.ModifiedMLP",
        "init_args": {
            "width": 8,
            "depth": 2,
            "embedding": {
                "class_path": "lightning_pinn.networks.FourierFeatures",
                "init_args": {"out_dim": 16, "sigma": [1.0, 10.0]},
            },
        },
    }
    trunk = build_trunk(spec, in_dim=2, out_dim=1)
    assert trunk.embedding.sigma == (1.0, 10.0)
    assert trunk(torch.zeros(3, 2)).shape == (3, 1)


@pytest.mark.parametrize("sigma", [[1.0], [1.0, 2.0, 3.0]])
def test_fourier_scales_of_the_wrong_length_raise(sigma):
    with pytest.raises(ValueError, match=r"sigma has \d scales but the embedding has in_dim=2"):
        FourierFeatures(2, 16, sigma=sigma)


@pytest.mark.parametrize("sigma", [0.0, -1.0, math.nan, math.inf, [1.0, 0.0], [math.nan, 1.0]])
def test_fourier_sigma_not_positive_raises(sigma):
    with pytest.raises(ValueError, match=r"sigma must be a finite number > 0, got"):
        FourierFeatures(2, 16, sigma=sigma)


@pytest.mark.parametrize("out_dim", [0, 7, -2])
def test_fourier_odd_out_dim_raises(out_dim):
    with pytest.raises(ValueError, match="out_dim must be an even integer"):
        FourierFeatures(2, out_dim)


def test_periodic_features_and_passthrough_order():
    emb = PeriodicEmbedding(3, dims=[2, 0], periods=[1.0, 4.0], harmonics=2)
    x = torch.randn(6, 3)
    w = 2 * math.pi
    angles = torch.stack(
        [w * x[:, 2], 2 * w * x[:, 2], w * x[:, 0] / 4, 2 * w * x[:, 0] / 4], dim=1
    )
    expected = torch.cat([x[:, 1:2], torch.cos(angles), torch.sin(angles)], dim=1)
    assert emb.out_dim == 9
    torch.testing.assert_close(emb(x), expected)
    assert list(emb.named_parameters()) == []


def test_periodic_trunk_is_exactly_periodic_with_its_derivatives():
    torch.set_default_dtype(torch.float64)
    try:
        period = 2.0
        net = MLP(2, 1, width=16, depth=2, embedding=PeriodicEmbedding(2, [1], [period]))
        t = torch.rand(20, 1)
        left = torch.cat([t, torch.full_like(t, -1.0)], dim=1).requires_grad_(True)
        right = torch.cat([t, torch.full_like(t, -1.0 + period)], dim=1).requires_grad_(True)
        u_l, u_r = net(left), net(right)
        torch.testing.assert_close(u_l, u_r, rtol=0, atol=1e-12)
        du_l, du_r = gradient(u_l, left), gradient(u_r, right)
        torch.testing.assert_close(du_l, du_r, rtol=0, atol=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dims": []}, "dims must be distinct indices"),
        ({"dims": [0, 0], "periods": [1.0, 1.0]}, "dims must be distinct indices"),
        ({"dims": [2], "periods": [1.0]}, r"dims must be distinct indices in \[0, 2\)"),
        ({"dims": [0], "periods": [1.0, 2.0]}, "one finite period > 0 per entry"),
        ({"dims": [0], "periods": [0.0]}, "one finite period > 0 per entry"),
        ({"dims": [0], "periods": [1.0], "harmonics": 0}, "harmonics must be an integer >= 1"),
    ],
)
def test_periodic_bad_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PeriodicEmbedding(2, **kwargs)


@pytest.mark.parametrize(
    "embedding",
    [FourierFeatures(2, 16, 1.5), PeriodicEmbedding(2, [0], [1.0], harmonics=2)],
    ids=["fourier", "periodic"],
)
def test_forward_mode_laplacian_sees_the_embedding(embedding):
    net = MLP(2, 1, width=8, depth=2, embedding=embedding)
    x = torch.rand(10, 2, requires_grad=True)
    reverse = laplacian(net(x), x)
    torch.testing.assert_close(laplacian_fwd(net, x), reverse, rtol=1e-4, atol=1e-4)


def test_embedding_chain_applies_its_links_in_turn():
    periodic = PeriodicEmbedding(2, dims=[0], periods=[2.0])
    fourier = FourierFeatures(3, out_dim=16, sigma=2.0)
    chain = EmbeddingChain([periodic, fourier])
    x = torch.randn(7, 2)
    assert (chain.in_dim, chain.out_dim) == (2, 16)
    torch.testing.assert_close(chain(x), fourier(periodic(x)))
    assert list(chain.named_parameters()) == []
    shifted = x + torch.tensor([2.0, 0.0])  # one period in x: the chain stays exactly periodic
    torch.testing.assert_close(chain(shifted), chain(x), atol=1e-5, rtol=0)


def test_embedding_chain_bad_links_raise():
    with pytest.raises(ValueError, match="needs at least one embedding"):
        EmbeddingChain([])
    with pytest.raises(ValueError, match="link 1 must be a lightning_pinn.networks.Embedding"):
        EmbeddingChain([FourierFeatures(2, 8), torch.nn.Linear(8, 8)])
    with pytest.raises(ValueError, match=r"link 1 \(FourierFeatures\) takes in_dim=2 but link 0"):
        EmbeddingChain([PeriodicEmbedding(2, dims=[0], periods=[2.0]), FourierFeatures(2, 8)])


def _chain_spec(trunk: str, chain: str) -> dict:
    """A recipe's trunk spec: ``trunk`` 8 x 2 behind ``chain`` (periodic x, then 16 Fourier
    features), every ``in_dim`` left for ``build_trunk`` to fill in."""
    link = "lightning_pinn.networks."
    links = [
        {"class_path": link + "PeriodicEmbedding", "init_args": {"dims": [0]}},
        {"class_path": link + "FourierFeatures", "init_args": {"out_dim": 16}},
    ]
    embedding = {"class_path": chain, "init_args": {"embeddings": links}}
    return {"class_path": trunk, "init_args": {"width": 8, "depth": 2, "embedding": embedding}}


def test_embedding_chain_sizes_are_filled_in_from_a_recipe_spec():
    from lightning_pinn.run._recipes import build_trunk

    link = "lightning_pinn.networks."
    spec = _chain_spec(link + "ModifiedMLP", link + "EmbeddingChain")
    torch.manual_seed(0)
    trunk = build_trunk(spec, in_dim=2, out_dim=1)
    after = torch.rand(1)
    torch.manual_seed(0)
    chain = EmbeddingChain([PeriodicEmbedding(2, dims=[0]), FourierFeatures(3, 16)])
    direct = ModifiedMLP(2, 1, 8, 2, embedding=chain)
    assert torch.equal(after, torch.rand(1))  # sizing the links drew nothing from the stream
    for (name, a), b in zip(trunk.state_dict().items(), direct.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    bad = {
        **spec,
        "init_args": {
            **spec["init_args"],
            "embedding": {
                "class_path": link + "EmbeddingChain",
                "init_args": {
                    "embeddings": [
                        {"class_path": link + "FourierFeatures", "init_args": {"sigma": -1.0}}
                    ]
                },
            },
        },
    }
    with pytest.raises(ValueError, match="cannot build trunk"):
        build_trunk(bad, in_dim=2, out_dim=1)


class _UserChain(EmbeddingChain):
    """A user's subclass of the chain: its links' sizes are filled in as the chain's are."""


def test_a_subclass_of_the_chain_gets_its_sizes_filled_in():
    from lightning_pinn.run._recipes import build_trunk

    spec = _chain_spec("lightning_pinn.networks.MLP", f"{__name__}._UserChain")
    trunk = build_trunk(spec, in_dim=2, out_dim=1)
    chain = trunk.net[0]
    assert isinstance(chain, _UserChain)
    assert (chain.in_dim, chain.out_dim) == (2, 16)
    assert trunk(torch.randn(5, 2)).shape == (5, 1)
