"""ConflictReport serialisation, markdown and the probe figure."""

from __future__ import annotations

import json

import torch

from lightning_pinn.diagnostics import (
    ConflictReport,
    ProbeRecorder,
    aggregate_window,
    build_report,
    pair_names,
    plot_probe,
)

NAMES = ("residual", "initial", "boundary")


def _recorder() -> ProbeRecorder:
    gen = torch.Generator().manual_seed(0)
    rec = ProbeRecorder(30, 3)
    for t in range(30):
        jac = torch.randn(3, 20, generator=gen) * torch.tensor([[50.0], [1.0], [0.5]])
        rec.record(jac, jac.sum(0), index=t)
    return rec


def _report() -> ConflictReport:
    return build_report(aggregate_window(**_recorder().buffers()), NAMES, tau_mag=1.0)


def test_to_dict_is_json_ready_and_round_trips():
    report = _report()
    data = json.loads(json.dumps(report.to_dict()))
    assert data == report.to_dict()
    assert ConflictReport.from_dict(data) == report
    assert set(data) >= {
        "regime",
        "strategy",
        "probe_steps",
        "pairs",
        "losses",
        "tau_dir",
        "tau_mag",
    }
    assert data["probe_steps"] == 30 and data["loss_names"] == list(NAMES)
    assert data["interventions"]["directional"] == "adapters"
    assert all(isinstance(p["conflict_rate"], float) for p in data["pairs"])


def test_cosine_margin_is_recorded_and_older_reports_read_as_zero():
    stats = aggregate_window(**_recorder().buffers())
    report = build_report(stats, NAMES, tau_cos=0.4)
    assert report.tau_cos == 0.4 and "tau_cos = 0.4" in report.to_markdown()
    assert report == build_report(stats, NAMES, tau_cos=0.4)
    old = _report().to_dict()
    del old["tau_cos"]  # a report saved before the margin existed
    assert ConflictReport.from_dict(old).tau_cos == 0.0


def test_markdown_contains_table_regime_reason_and_intervention():
    report = _report()
    md = report.to_markdown()
    assert "| loss pair | conflict rate | late rate | mean cosine |" in md
    for p in report.pairs:
        assert f"| {p.name} | {p.conflict_rate:.2f} | {p.late_conflict_rate:.2f} |" in md
    for name in NAMES:
        assert f"| {name} |" in md
    assert f"**Regime: {report.regime}**" in md and report.reason in md
    assert f"**Intervention: {report.strategy}**" in md


def test_plot_probe_writes_png(tmp_path):
    buf = _recorder().buffers()
    path = tmp_path / "probe.png"
    fig = plot_probe(
        buf["cosines"],
        buf["norms"],
        buf["finite"],
        pair_names=pair_names(NAMES),
        loss_names=NAMES,
        path=path,
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) == 3 and fig.axes[1].get_yscale() == "log"
