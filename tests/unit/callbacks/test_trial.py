"""The guarded switch's candidate list (the diagnosis's prior)."""

from __future__ import annotations

import pytest

from lightning_pinn.callbacks._trial import check_candidates, rank_candidates
from lightning_pinn.strategies import ReweightStrategy


def test_rank_candidates_prior():
    assert rank_candidates("adapters", None) == ["adapters", "none", "reweight"]
    assert rank_candidates("reweight", None) == ["reweight", "none"]
    assert rank_candidates("none", ["surgery"]) == ["none", "surgery"]
    assert rank_candidates("surgery", ["reweight"]) == ["surgery", "reweight", "none"]
    obj = ReweightStrategy(reweighting="fixed")
    assert rank_candidates(obj, ["none", obj]) == [obj, "none"]


def test_check_candidates():
    assert check_candidates(None) is None
    with pytest.raises(ValueError, match="non-empty"):
        check_candidates([])
    with pytest.raises(ValueError, match="non-empty"):
        check_candidates("none")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="strategy name or object"):
        check_candidates([3])  # type: ignore[list-item]
