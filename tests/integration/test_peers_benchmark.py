"""benchmarks/peers.py keeps running: its own systems for a few steps, a table that parses."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "peers.py"
ROW = re.compile(r"^(\S+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+)$")


@pytest.fixture(scope="module")
def peers():
    spec = importlib.util.spec_from_file_location("peers_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_own_systems_give_a_parsable_table(peers):
    times = {
        "plain": peers.speed_plain(steps=4, seed=0),
        "pinn-none": peers.speed_pinn_none(steps=4, seed=0),
    }
    assert all(len(ts) >= 3 and min(ts) > 0 for ts in times.values())
    header, *rows = peers.speed_table(times)
    assert header.split()[0] == "system"
    parsed = {m[1]: m for m in (ROW.match(r) for r in rows) if m}
    assert set(parsed) == {"plain", "pinn-none"}
    assert float(parsed["plain"][4]) == pytest.approx(1.0)
    assert 1e3 / float(parsed["pinn-none"][2]) == pytest.approx(
        float(parsed["pinn-none"][3]), rel=0.01
    )


def test_accuracy_table_reports_first_hit_and_final_error(peers):
    rows = peers.accuracy_table({"pinn": [(0.0, 0.5), (5.0, 0.009), (10.0, 0.008)]}, 1e-2)
    assert rows[1].split() == ["pinn", "5.0s", "8.000e-03"]
    assert "not reached" in peers.accuracy_table({"pina": [(0.0, 0.5)]}, 1e-2)[1]


def test_missing_peer_is_named(peers, monkeypatch):
    monkeypatch.setitem(peers.PEER_PACKAGES, "pina", "surely_not_an_installed_module_xyz")
    assert peers.missing_package("pina") == "surely_not_an_installed_module_xyz"
    assert peers.missing_package("plain") is None


def test_allocator_modes(peers, monkeypatch):
    import lightning_pinn._allocator as allocator

    monkeypatch.setattr(allocator, "_applied", None)
    peers._set_allocator("default")  # every system under glibc's defaults
    assert allocator.tune_allocator() is False  # PINNModule's call then changes nothing
    monkeypatch.setattr(allocator, "_applied", None)
    peers._set_allocator("each")  # as shipped: nothing done up front
    assert allocator._applied is None


def test_speed_mode_passes_the_allocator_to_its_workers(peers, capsys):
    peers.main(
        ["speed", "--systems", "plain", "--rounds", "1", "--steps", "4", "--warmup", "0"]
        + ["--allocator", "tuned"]
    )
    out = capsys.readouterr().out
    assert "allocator: tuned" in out
    assert "plain" in out.splitlines()[-1]
