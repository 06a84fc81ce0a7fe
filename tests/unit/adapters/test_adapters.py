import time
import warnings

import pytest
import torch
from torch import nn

from lightning_pinn.adapters import AdapterLinear, PerLossAdapter, inject_adapters

K = 3


class Nested(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(2, 16), nn.Tanh())
        self.body = nn.Sequential(nn.Sequential(nn.Linear(16, 16), nn.Tanh()))
        self.head = nn.Linear(16, 1)

    def forward(self, x):
        return self.head(self.body(self.encoder(x)))


class Listed(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(2, 16), nn.Linear(16, 16), nn.Linear(16, 2)])

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = torch.tanh(layer(x))
        return self.layers[-1](x)


class Dicted(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleDict(
            {"inp": nn.Linear(2, 16), "hid": nn.Linear(16, 16), "out": nn.Linear(16, 1)}
        )

    def forward(self, x):
        x = torch.sin(self.layers["inp"](x))
        return self.layers["out"](torch.sin(self.layers["hid"](x)))


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc_in = nn.Linear(2, 12)
        self.fc_mid = nn.Linear(12, 12, bias=False)
        self.fc_out = nn.Linear(12, 1)
        self.register_buffer("shift", torch.tensor(0.3))

    def forward(self, x):
        return self.fc_out(torch.tanh(self.fc_mid(torch.tanh(self.fc_in(x) + self.shift))))


class Residual(nn.Module):
    def __init__(self, width=16, blocks=2):
        super().__init__()
        self.lift = nn.Linear(2, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, width))
            for _ in range(blocks)
        )
        self.proj = nn.Linear(width, 1)

    def forward(self, x):
        h = self.lift(x)
        for block in self.blocks:
            h = h + torch.tanh(block(h))
        return self.proj(h)


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(2, 8)
        self.shared = nn.Linear(8, 8)
        self.again = self.shared  # the same layer registered twice
        self.out = nn.Linear(8, 1)

    def forward(self, x):
        return self.out(torch.tanh(self.again(torch.tanh(self.shared(torch.tanh(self.inp(x)))))))


def mlp():
    return nn.Sequential(
        nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1)
    )


ZOO = {
    "sequential": mlp,
    "nested": Nested,
    "module_list": Listed,
    "module_dict": Dicted,
    "custom": Custom,
    "residual": Residual,
    "tied": Tied,
}


@pytest.fixture(params=list(ZOO))
def make_trunk(request):
    return ZOO[request.param]


def _x(n=32):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(7))


def _train_adapters(model, steps=5):
    params = [p for k in range(K) for p in model.adapter_parameters(k)]
    opt = torch.optim.Adam(params, lr=1e-2)
    x = _x()
    for _ in range(steps):
        loss = model(x).pow(2).mean() + (model(x) - 1).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_output_unchanged_at_insertion(make_trunk):
    trunk = make_trunk()
    x = _x()
    before = trunk(x)
    model = PerLossAdapter(trunk, K, rank=2)
    assert model.adapted_layer_names
    torch.testing.assert_close(model(x), before, rtol=0, atol=0)


def test_merged_equals_after_training(make_trunk):
    model = PerLossAdapter(make_trunk(), K, rank=2, alpha=3.0)
    _train_adapters(model)
    assert any(p.abs().sum() > 0 for p in model.adapter_parameters(1)[1::2])  # B moved
    merged = model.merged()
    assert not any(isinstance(m, AdapterLinear) for m in merged.modules())
    x = _x()
    torch.testing.assert_close(merged(x), model(x), rtol=1e-5, atol=1e-6)
    # the wrapper is untouched by merging
    assert any(isinstance(m, AdapterLinear) for m in model.modules())


def test_state_dict_round_trip(make_trunk):
    model = PerLossAdapter(make_trunk(), K, rank=2, seed=1)
    _train_adapters(model)
    torch.manual_seed(123)  # a differently initialised trunk and adapters
    fresh = PerLossAdapter(make_trunk(), K, rank=2, seed=2)
    fresh.load_state_dict(model.state_dict())
    x = _x()
    torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)


def test_parameter_partition_keeps_trunk_tensors(make_trunk):
    trunk = make_trunk()
    original = list(trunk.parameters())
    model = PerLossAdapter(trunk, K, rank=2)
    shared = model.shared_parameters()
    assert [id(p) for p in shared] == [id(p) for p in original]
    adapters = [model.adapter_parameters(k) for k in range(K)]
    ids = [{id(p) for p in group} for group in adapters]
    assert all(len(g) == 2 * len(model.adapted_layer_names) for g in ids)
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2])
    every = {id(p) for p in model.parameters()}
    assert every == {id(p) for p in shared}.union(*ids)


def test_adapter_parameters_order():
    model = PerLossAdapter(mlp(), K, rank=2)
    params = model.adapter_parameters(1)
    layers = [m for m in model.modules() if isinstance(m, AdapterLinear)]
    expected = [p for layer in layers for p in (layer.lora_A[1], layer.lora_B[1])]
    assert [id(p) for p in params] == [id(p) for p in expected]
    assert params[0].shape == (2, 2) and params[1].shape == (16, 2)
    with pytest.raises(IndexError, match="out of range"):
        model.adapter_parameters(K)


def test_optimizer_state_survives_wrapping():
    trunk = mlp()
    opt = torch.optim.Adam(trunk.parameters(), lr=1e-3)
    trunk(_x()).pow(2).mean().backward()
    opt.step()
    moments = {id(p): opt.state[p]["exp_avg"].clone() for p in trunk.parameters()}
    model = PerLossAdapter(trunk, K, rank=2)
    for p in model.shared_parameters():
        torch.testing.assert_close(opt.state[p]["exp_avg"], moments[id(p)])


def test_forward_matches_per_adapter_sum():
    layer = AdapterLinear(nn.Linear(5, 4), num_losses=3, rank=2, alpha=6.0)
    with torch.no_grad():
        for b in layer.lora_B:
            b.normal_()
    x = torch.randn(7, 5)
    expected = layer.base_layer(x) + 3.0 * sum(
        x @ a.T @ b.T for a, b in zip(layer.lora_A, layer.lora_B, strict=True)
    )
    torch.testing.assert_close(layer(x), expected)
    w = layer.base_layer.weight + 3.0 * sum(
        b @ a for a, b in zip(layer.lora_A, layer.lora_B, strict=True)
    )
    torch.testing.assert_close(layer.merged_weight(), w)


def test_init_kaiming_and_zero_b():
    layer = AdapterLinear(nn.Linear(64, 32), num_losses=2, rank=4, alpha=4.0)
    bound = 1 / 64**0.5
    for a, b in zip(layer.lora_A, layer.lora_B, strict=True):
        assert a.abs().max() <= bound and a.abs().max() > 0.5 * bound
        assert torch.count_nonzero(b) == 0
    assert layer.scaling == 1.0


def test_same_seed_same_adapters_regardless_of_global_rng():
    torch.manual_seed(0)
    a = PerLossAdapter(mlp(), K, rank=2, seed=5)
    state = torch.get_rng_state()
    b_trunk = mlp()
    torch.manual_seed(999)
    b = PerLossAdapter(b_trunk, K, rank=2, seed=5)
    c = PerLossAdapter(mlp(), K, rank=2, seed=6)
    for k in range(K):
        for pa, pb, pc in zip(
            a.adapter_parameters(k), b.adapter_parameters(k), c.adapter_parameters(k), strict=True
        ):
            assert torch.equal(pa, pb)
            if pa.abs().sum() > 0:
                assert not torch.equal(pa, pc)
    # wrapping does not consume the global RNG
    torch.set_rng_state(state)
    PerLossAdapter(mlp(), K, rank=2, seed=5)


def test_wrapping_does_not_touch_global_rng():
    trunk = mlp()
    before = torch.get_rng_state()
    PerLossAdapter(trunk, K, rank=2)
    assert torch.equal(torch.get_rng_state(), before)


def test_default_scaling_and_attributes():
    model = PerLossAdapter(mlp(), K, rank=4)
    assert (model.num_losses, model.rank, model.alpha, model.scaling) == (K, 4, 4.0, 1.0)
    # every nn.Linear by default (DESIGN §1), the 2 -> 16 input layer and 16 -> 1 head included
    assert model.adapted_layer_names == ["0", "2", "4"]
    # "wide": the layers with min(in, out) >= r only (the adapters strategy's default)
    assert PerLossAdapter(mlp(), K, rank=4, target="wide").adapted_layer_names == ["2"]
    model = PerLossAdapter(mlp(), K, rank=2, alpha=1.0)
    assert model.scaling == 0.5


@pytest.mark.parametrize(
    ("target", "names"),
    [
        (r"^2$", ["2"]),
        (["0", "4"], ["0", "4"]),
        (lambda name, m: m.in_features == 16, ["2", "4"]),
    ],
)
def test_target(target, names):
    model = PerLossAdapter(mlp(), K, rank=1, target=target)
    assert model.adapted_layer_names == names


def test_target_regex_in_nested_names():
    model = PerLossAdapter(Residual(), K, rank=2, target=r"blocks\.\d+\.0")
    assert model.adapted_layer_names == ["blocks.0.0", "blocks.1.0"]


def test_linear_root_and_tied_layer():
    model = PerLossAdapter(nn.Linear(6, 6), K, rank=2)
    assert isinstance(model.trunk, AdapterLinear)
    assert isinstance(model.merged(), nn.Linear)
    tied = PerLossAdapter(Tied(), K, rank=2)
    assert tied.trunk.shared is tied.trunk.again
    assert isinstance(tied.trunk.again, AdapterLinear)
    merged = tied.merged()
    assert merged.shared is merged.again and isinstance(merged.again, nn.Linear)


def test_bf16_autocast_forward(make_trunk):
    model = PerLossAdapter(make_trunk(), K, rank=2)
    _train_adapters(model, steps=2)
    x = _x()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), model(x), rtol=5e-2, atol=5e-2)
    out.float().sum().backward()
    assert model.adapter_parameters(0)[1].grad is not None


@pytest.mark.slow
def test_torch_compile_forward():
    model = PerLossAdapter(Residual(), K, rank=2)
    _train_adapters(model, steps=2)
    x = _x()
    start = time.perf_counter()
    compiled = torch.compile(model)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)
    compiled(x).sum().backward()
    assert model.adapter_parameters(2)[0].grad is not None
    assert time.perf_counter() - start < 300


@pytest.mark.parametrize("num_losses", [1, 0, 2.5])
def test_error_num_losses(num_losses):
    with pytest.raises(ValueError, match=rf"num_losses must be an integer >= 2.*got {num_losses}"):
        PerLossAdapter(mlp(), num_losses)


@pytest.mark.parametrize("rank", [0, -1])
def test_error_rank_nonpositive(rank):
    with pytest.raises(ValueError, match=rf"rank must be a positive integer, got {rank}"):
        PerLossAdapter(mlp(), K, rank=rank)


def test_every_layer_by_default_even_narrower_than_the_rank():
    """DESIGN §1: adapters go into the trunk's nn.Linear layers, all by default. A layer with
    min(in, out) < r (the 2-input first layer, the scalar head) takes A_k (r x in) and
    B_k (out x r) all the same; the function is unchanged at insertion and merged() exact."""
    trunk = mlp()
    x = _x()
    before = trunk(x).detach()
    model = PerLossAdapter(trunk, K, rank=4)
    layers = [m for m in model.trunk.modules() if isinstance(m, AdapterLinear)]
    assert len(layers) == 3
    sizes = sum(4 * (m.in_features + m.out_features) for m in layers)
    assert all(sum(p.numel() for p in model.adapter_parameters(k)) == sizes for k in range(K))
    torch.testing.assert_close(model(x), before, rtol=0, atol=0)
    _train_adapters(model, steps=2)
    torch.testing.assert_close(model.merged()(x), model(x), rtol=1e-5, atol=1e-6)

    # a trunk with no layer as wide as the rank: every layer by default, and "wide" falls
    # back to every trainable layer where none is wide enough (both raised before session 22)
    def tiny():
        return nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))

    assert PerLossAdapter(tiny(), K).adapted_layer_names == ["0", "2"]
    assert PerLossAdapter(tiny(), K, target="wide").adapted_layer_names == ["0", "2"]


def test_a_rank_larger_than_every_layer_an_explicit_target_names_is_refused():
    """Issue 15's bad input: naming layers that cannot hold a rank-r linear update (session
    22 accepted it silently; the update then had rank min(in, out))."""
    with pytest.raises(ValueError, match=r"rank=4 is larger than every layer target=\['4'\]"
                       r" selects.*\('4', 16, 1\).*at most 1"):  # fmt: skip
        PerLossAdapter(mlp(), K, target=["4"])
    with pytest.raises(ValueError, match=r"rank=32 .*at most 16"):
        PerLossAdapter(mlp(), K, rank=32, target=r"^[24]$")
    assert PerLossAdapter(mlp(), K, rank=16, target=r"^[24]$").adapted_layer_names == ["2", "4"]
    # a nonlinear branch of rank r has r hidden units whatever the layer's width
    assert PerLossAdapter(mlp(), K, target=["4"], form="nonlinear").adapted_layer_names == ["4"]


class _Attention(nn.Module):
    """A trunk with an nn.MultiheadAttention, which reads out_proj.weight without calling it."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(2, 16)
        self.att = nn.MultiheadAttention(16, 2, batch_first=True)
        self.out = nn.Linear(16, 1)

    def forward(self, x):
        h = torch.tanh(self.inp(x))[:, None, :]
        h, _ = self.att(h, h, h)
        return self.out(h[:, 0])


def test_attention_out_proj_is_left_out_because_the_attention_never_calls_it():
    """Before: the default wrapped att.out_proj; its adapters never acted (no gradient) and
    merged() folded them into a weight the attention does read, so merged() != the model."""
    model = PerLossAdapter(_Attention(), K, rank=4)
    assert model.adapted_layer_names == ["inp", "out"]
    _train_adapters(model, steps=2)
    x = _x()
    torch.testing.assert_close(model.merged()(x), model(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"names \['att.out_proj'\].*MultiheadAttention"):
        PerLossAdapter(_Attention(), K, target=["att.out_proj", "out"])
    chosen = PerLossAdapter(_Attention(), K, rank=2, target=r".").adapted_layer_names
    assert chosen == ["inp", "out"]  # (rank 2: an explicit target must fit the rank)


def test_error_no_match_lists_module_types():
    with pytest.raises(ValueError, match=r"no nn.Linear layer matches target='conv'.*Tanh"):
        PerLossAdapter(mlp(), K, target="conv")
    conv = nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU())
    with pytest.raises(ValueError, match=r"Conv1d.*nn.Linear layers only"):
        PerLossAdapter(conv, K)
    with pytest.raises(ValueError, match=r"no nn.Linear layer matches target='last:1'.*rank=64"):
        PerLossAdapter(mlp(), K, rank=64, target="last:1")
    frozen = mlp().requires_grad_(False)
    with pytest.raises(ValueError, match=r"no nn.Linear layer matches target=None.*trainable"):
        PerLossAdapter(frozen, K)


def test_error_bad_target_type():
    with pytest.raises(TypeError, match="target must be None, a regex string"):
        PerLossAdapter(mlp(), K, target=3)


def test_error_wrapping_twice():
    model = PerLossAdapter(mlp(), K, rank=2)
    with pytest.raises(ValueError, match="already a PerLossAdapter"):
        PerLossAdapter(model, K)
    with pytest.raises(ValueError, match="already holds adapters"):
        PerLossAdapter(model.trunk, K)
    with pytest.raises(ValueError, match="already holds adapters"):
        inject_adapters(model.trunk, K)


def test_error_alpha():
    with pytest.raises(ValueError, match="alpha must be positive"):
        PerLossAdapter(mlp(), K, alpha=0.0)


class Bypassed(nn.Module):
    """A trunk holding a layer its forward never calls (a leftover head)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(2, 16)
        self.head = nn.Linear(16, 1)
        self.unused = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(torch.tanh(self.body(x)))


def test_adapter_on_a_layer_the_forward_bypasses_is_reported_once():
    model = PerLossAdapter(Bypassed(), K, rank=2)
    x = torch.randn(5, 2)
    with pytest.warns(
        UserWarning,
        match=r"never called the adapted layer\(s\) \['unused'\].*"
        r"\['body', 'head'\]",
    ):
        model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(x)  # once only: later forwards run without hooks
    assert not model.trunk.head._forward_hooks


def test_a_trunk_that_calls_every_adapted_layer_is_not_warned_about():
    model = PerLossAdapter(Nested(), K, rank=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(torch.randn(5, 2))


def test_a_target_name_that_is_no_linear_layer_is_refused():
    # before: silently skipped, so a typo adapted fewer layers than asked
    with pytest.raises(ValueError, match=r"target names \['zz', '1'\].*\['0', '2', '4'\]"):
        PerLossAdapter(mlp(), K, rank=2, target=["0", "zz", "1"])  # "1" is the Tanh


@pytest.mark.parametrize("seed", [1.5, "1", True])
def test_seed_must_be_an_integer(seed):
    with pytest.raises(TypeError, match="seed must be an integer"):
        PerLossAdapter(mlp(), K, seed=seed)
    assert PerLossAdapter(mlp(), K, seed=torch.tensor(3)).seed == 3
