import builtins

import pytest
import torch
from _asserts import (
    assert_finite_shape,
    assert_permutation_equivariant,
    assert_scale_invariant,
    sequence,
)

pytest.importorskip("torchjd")
from torchjd import aggregation  # noqa: E402

from lightning_pinn.strategies import AGGREGATOR_NAMES, SurgeryStrategy, build_strategy  # noqa: E402
from lightning_pinn.strategies.surgery import build_aggregator  # noqa: E402

K, P = 3, 8
REQUIRED = {"upgrad": "UPGrad", "pcgrad": "PCGrad", "config": "ConFIG", "mgda": "MGDA"}
RANDOMISED = {"pcgrad", "graddrop", "random"}
DETERMINISTIC = [a for a in AGGREGATOR_NAMES if a not in RANDOMISED]


def _factory(name, **options):
    def make():
        strategy = SurgeryStrategy(K, aggregator=name, **options)
        return lambda jac, losses: strategy.update(jac, losses)

    return make


def test_required_aggregators_available():
    assert set(REQUIRED) <= set(AGGREGATOR_NAMES)


@pytest.mark.parametrize("name", AGGREGATOR_NAMES)
def test_equals_torchjd(name):
    jac = sequence(K, P)[0][0]
    reference = build_aggregator(name)
    torch.manual_seed(0)  # randomised aggregators draw from the global RNG
    expected = reference(jac)
    strategy = SurgeryStrategy(K, aggregator=name.upper(), surgery_seed=0)
    d, w = strategy.update(jac, torch.ones(K))
    torch.testing.assert_close(d, expected, rtol=1e-5, atol=1e-5)
    assert w.shape == (K,)


@pytest.mark.parametrize(("name", "cls"), REQUIRED.items())
def test_equals_torchjd_class(name, cls):
    jac = torch.tensor([[1.0, 0.0, 2.0], [-1.0, 1.0, 0.5], [0.2, -2.0, 1.0]])
    torch.manual_seed(5)
    expected = getattr(aggregation, cls)()(jac)
    d, _ = SurgeryStrategy(3, aggregator=name, surgery_seed=5).update(jac, torch.ones(3))
    torch.testing.assert_close(d, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", AGGREGATOR_NAMES)
def test_finite_shape(name):
    # ConFIG and GradDrop report ones, weighted aggregators their (non-negative) weights
    assert_finite_shape(_factory(name), K, P, positive=False)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_permutation_equivariant(name):
    # AlignedMTL's eigendecomposition of an ill-conditioned Gramian is accurate to ~1e-2 in fp32
    rtol = 2e-2 if name == "alignedmtl" else 1e-4
    assert_permutation_equivariant(
        _factory(name), sequence(K, P, steps=1), [2, 0, 1], atol=1e-4, rtol=rtol
    )


@pytest.mark.parametrize("name", AGGREGATOR_NAMES)
@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_homogeneous_in_common_scale(name, scale):
    assert_scale_invariant(_factory(name), sequence(K, P, steps=1), scale, rtol=1e-3)


@pytest.mark.parametrize("name", ["upgrad", "pcgrad", "mgda"])
def test_blockwise_differs_when_blocks_conflict_differently(name):
    # block 1: rows conflict; block 2: rows agree
    jac = torch.tensor([[1.0, 0.0, 1.0, 0.0], [-1.0, 0.5, 0.0, 1.0]])
    blocks = [slice(0, 2), slice(2, 4)]
    full, _ = SurgeryStrategy(2, aggregator=name).update(jac, torch.ones(2), blocks)
    block, _ = SurgeryStrategy(2, aggregator=name, blockwise=True).update(
        jac, torch.ones(2), blocks
    )
    assert not torch.allclose(full, block, atol=1e-3)
    torch.testing.assert_close(block[2:], build_aggregator(name)(jac[:, 2:]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["upgrad", "config", "pcgrad"])
def test_blockwise_with_one_block_equals_full(name):
    jac = sequence(K, P, steps=1)[0][0]
    full = SurgeryStrategy(K, aggregator=name).update(jac, torch.ones(K))
    one = SurgeryStrategy(K, aggregator=name, blockwise=True).update(
        jac, torch.ones(K), [slice(0, P)]
    )
    torch.testing.assert_close(one, full)


def test_bad_blocks():
    strategy = SurgeryStrategy(2, blockwise=True)
    with pytest.raises(ValueError, match="contiguous slices covering"):
        strategy.update(torch.randn(2, 4), torch.ones(2), [slice(0, 2), slice(3, 4)])


def test_randomised_is_seeded_and_leaves_global_rng_alone():
    jac = torch.randn(4, 6)
    a = SurgeryStrategy(4, aggregator="pcgrad", surgery_seed=7)
    b = SurgeryStrategy(4, aggregator="pcgrad", surgery_seed=7)
    torch.manual_seed(1)
    before = torch.get_rng_state()
    da = [a.update(jac, torch.ones(4))[0] for _ in range(3)]
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(99)
    db = [b.update(jac, torch.ones(4))[0] for _ in range(3)]
    for x, y in zip(da, db, strict=True):
        torch.testing.assert_close(x, y)
    resumed = SurgeryStrategy(4, aggregator="pcgrad", surgery_seed=7)
    resumed.load_state_dict({"step": 2})
    torch.testing.assert_close(resumed.update(jac, torch.ones(4))[0], da[2])


def test_unknown_aggregator_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown aggregator 'nash'.*'upgrad'.*'pcgrad'"):
        SurgeryStrategy(3, aggregator="nash")


def test_missing_torchjd_raises_install_hint(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("torchjd"):
            raise ImportError("No module named 'torchjd'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r'pip install "lightning_pinn\[surgery\]"'):
        SurgeryStrategy(3, aggregator="upgrad")


def test_registered_with_options():
    s = build_strategy("surgery", num_losses=3, aggregator="MGDA", blockwise=True, rank=4)
    assert isinstance(s, SurgeryStrategy) and s.blockwise
    assert s.options() == {
        "num_losses": 3,
        "aggregator": "MGDA",
        "blockwise": True,
        "surgery_seed": 0,
    }


def test_blockwise_must_be_a_bool():
    with pytest.raises(TypeError, match="blockwise must be True or False, got 'no'"):
        SurgeryStrategy(blockwise="no")  # bool("no") turned blockwise on before
