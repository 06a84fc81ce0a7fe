"""ConflictCallback: setup checks, probe → report → files → switch, resume, W&B offline."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import Tensor, nn

from lightning_pinn.callbacks import ConflictCallback
from lightning_pinn.data import Box, CollocationDataModule, PointSet
from lightning_pinn.diagnostics import ConflictReport
from lightning_pinn.module import PINNModule

LOSS_NAMES = ("residual", "left", "right")
ALWAYS_REWEIGHT = {"directional": "reweight", "magnitude": "reweight", "low": "reweight"}


class Poisson1D(PINNModule):
    """-u'' = pi^2 sin(pi x) on (0, 1), u(0) = u(1) = 0; exact u = sin(pi x)."""

    def losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x = batch["residual"].requires_grad_(True)
        u = self(x)
        (u_x,) = torch.autograd.grad(u.sum(), x, create_graph=True)
        (u_xx,) = torch.autograd.grad(u_x.sum(), x, create_graph=True)
        r = -u_xx - torch.pi**2 * torch.sin(torch.pi * x)
        out = {"residual": r.pow(2).mean()}
        for name in self.loss_names[1:]:
            out[name] = self(batch[name]).pow(2).mean()
        return out


def make_module(loss_names: tuple[str, ...] = LOSS_NAMES) -> Poisson1D:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1))
    return Poisson1D(net, loss_names=loss_names, lr=1e-3)


def make_datamodule() -> CollocationDataModule:
    return CollocationDataModule(
        {
            "residual": PointSet(Box((0.0,), (1.0,)), 64),
            "left": PointSet(Box((0.0,), (0.0,)), 1),
            "right": PointSet(Box((1.0,), (1.0,)), 1),
        },
        seed=0,
    )


def make_trainer(tmp_path: Path, callbacks: list, max_steps: int = 30, **kwargs: Any) -> L.Trainer:
    kwargs.setdefault("logger", CSVLogger(tmp_path))
    kwargs.setdefault("enable_checkpointing", False)
    return L.Trainer(
        max_steps=max_steps,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=5,
        accelerator="cpu",
        **kwargs,
    )


class _Spy:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict, int]] = []

    def attach(self, module: PINNModule, monkeypatch: pytest.MonkeyPatch) -> None:
        def set_strategy(name: str, **options: Any) -> None:
            self.calls.append((name, options, module.train_steps))

        monkeypatch.setattr(module, "set_strategy", set_strategy)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("steps", [0, -3])
def test_probe_steps_must_be_positive(steps):
    with pytest.raises(ValueError, match="probe_steps must be a positive integer"):
        ConflictCallback(probe_steps=steps)


def test_a_one_step_probe_is_refused_because_it_can_never_diagnose():
    # before: accepted, and every run ended with an invalid report and no switch
    with pytest.raises(ValueError, match=r"probe_steps=1 can never diagnose.*at least 2"):
        ConflictCallback(probe_steps=1)
    assert ConflictCallback(probe_steps=2).probe_steps == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [  # before: each was accepted; "no" is truthy, so auto_switch="no" switched
        ({"auto_switch": "no"}, TypeError, "auto_switch must be True or False"),
        ({"log_every_n_steps": 2.5}, ValueError, "log_every_n_steps must be an integer"),
        ({"rate_window": 2.5}, ValueError, "rate_window must be an integer"),
        ({"trial_steps": 2, "candidates": ["none", "none"]}, ValueError, "names 'none' twice"),
    ],
)
def test_mistyped_arguments_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        ConflictCallback(probe_steps=5, **kwargs)


def test_thresholds_validated_in_constructor():
    with pytest.raises(ValueError, match="tau_dir"):
        ConflictCallback(tau_dir=2.0)
    with pytest.raises(ValueError, match="unknown intervention"):
        ConflictCallback(interventions={"low": "nothing"})


def test_setup_rejects_plain_lightning_module(tmp_path):
    class Plain(L.LightningModule):
        pass

    trainer = make_trainer(tmp_path, [ConflictCallback(probe_steps=5)])
    with pytest.raises(TypeError, match="needs a lightning_pinn.PINNModule.*got Plain"):
        trainer.callbacks[0].setup(trainer, Plain(), "fit")


def test_setup_rejects_single_loss(tmp_path):
    trainer = make_trainer(tmp_path, [ConflictCallback(probe_steps=5)])
    with pytest.raises(ValueError, match=r"needs K >= 2.*1 loss \(\['residual'\]\)"):
        trainer.fit(make_module(("residual",)), make_datamodule())


def test_setup_rejects_max_steps_shorter_than_probe(tmp_path):
    trainer = make_trainer(tmp_path, [ConflictCallback(probe_steps=50)], max_steps=20)
    with pytest.raises(ValueError, match=r"max_steps=20\) ends before the probe.*probe_steps=50"):
        trainer.fit(make_module(), make_datamodule())


# --------------------------------------------------------------------------- full run
def test_probe_builds_report_writes_files_logs_and_switches(tmp_path, monkeypatch):
    model, spy = make_module(), _Spy()
    spy.attach(model, monkeypatch)
    cb = ConflictCallback(
        probe_steps=20, interventions=ALWAYS_REWEIGHT, strategy_options={"reweighting": "fixed"}
    )
    trainer = make_trainer(tmp_path, [cb], max_steps=30)
    trainer.fit(model, make_datamodule())

    report = cb.report
    assert report is not None and report.regime in {"directional", "magnitude", "low"}
    assert report.probe_steps == 20 and report.finite_steps == 20
    assert report.loss_names == LOSS_NAMES and len(report.pairs) == 3
    assert spy.calls == [("reweight", {"reweighting": "fixed"}, 20)]

    log_dir = Path(trainer.log_dir)
    assert cb.report_dir == log_dir
    assert (
        ConflictReport.from_dict(json.loads((log_dir / "conflict_report.json").read_text()))
        == report
    )
    assert f"**Regime: {report.regime}**" in (log_dir / "conflict_report.md").read_text()
    assert (log_dir / "conflict_probe.png").read_bytes()[:4] == b"\x89PNG"

    header = (log_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    for key in (
        "conflict/cos/residual-left",
        "conflict/rate/left-right",
        "conflict/imbalance",
        "conflict/update_cos/right",
        "conflict/report/late_rate/residual-right",
    ):
        assert key in header
    metrics = trainer.logged_metrics
    assert 0.0 <= float(metrics["conflict/rate/residual-left"]) <= 1.0  # logged after the probe


def test_output_dir_and_no_switch(tmp_path, monkeypatch):
    model, spy = make_module(), _Spy()
    spy.attach(model, monkeypatch)
    cb = ConflictCallback(probe_steps=10, auto_switch=False, output_dir=tmp_path / "report")
    make_trainer(tmp_path, [cb], max_steps=12).fit(model, make_datamodule())
    assert spy.calls == []
    assert (tmp_path / "report" / "conflict_report.json").exists()


def test_output_dir_that_cannot_be_a_directory_fails_in_setup(tmp_path):
    (tmp_path / "a_file").write_text("x")
    model = make_module()
    cb = ConflictCallback(probe_steps=10, output_dir=tmp_path / "a_file" / "report")
    with pytest.raises(ValueError, match="ConflictCallback output_dir .* is a file, not a dir"):
        make_trainer(tmp_path, [cb], max_steps=12).fit(model, make_datamodule())
    assert model.train_steps == 0  # before: NotADirectoryError after the probe's 10 steps


def test_resume_mid_probe_gives_identical_report(tmp_path, monkeypatch):
    def run(root: Path, ckpt_path: str | None = None) -> ConflictCallback:
        model = make_module()
        _Spy().attach(model, monkeypatch)  # keep strategy "none" so both runs train alike
        cb = ConflictCallback(probe_steps=20)
        ckpt = ModelCheckpoint(
            dirpath=root / "ckpt", every_n_train_steps=10, save_top_k=-1, filename="{step}"
        )
        trainer = make_trainer(
            root, [cb, ckpt], max_steps=25, logger=CSVLogger(root), enable_checkpointing=True
        )
        trainer.fit(model, make_datamodule(), ckpt_path=ckpt_path)
        return cb

    full = run(tmp_path / "full")
    ckpt = tmp_path / "full" / "ckpt" / "step=10.ckpt"
    assert ckpt.exists()
    state = torch.load(ckpt, weights_only=False)["callbacks"]
    assert any("ConflictCallback" in key for key in state)
    resumed = run(tmp_path / "resumed", str(ckpt))
    assert resumed.report is not None and full.report is not None
    assert resumed.report.to_dict() == full.report.to_dict()


# ----------------------------------------------------------------------------------- W&B
def _wandb_records(run_dir: Path) -> list:
    """Parse the offline ``.wandb`` file (LevelDB-log framing of ``Record`` protobufs)."""
    from wandb.proto import wandb_internal_pb2

    data = next(run_dir.glob("*.wandb")).read_bytes()
    block, records, chunks = 32768, [], b""
    pos = 7  # file header: ":W&B" + magic (2 bytes) + version (1 byte)
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer padding
            pos += left
            continue
        length = int.from_bytes(data[pos + 4 : pos + 6], "little")
        kind = data[pos + 6]
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        chunks = chunk if kind in (1, 2) else chunks + chunk
        if kind in (1, 4):  # FULL or LAST
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(chunks)
            records.append(rec)
    return records


def test_wandb_offline_run_contains_conflict_keys_and_table(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from lightning.pytorch.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    model = make_module()
    _Spy().attach(model, monkeypatch)
    logger = WandbLogger(save_dir=tmp_path, offline=True, project="lightning-pinn-test")
    cb = ConflictCallback(probe_steps=10)
    make_trainer(tmp_path, [cb], max_steps=15, logger=logger).fit(model, make_datamodule())
    import wandb

    wandb.finish()
    wandb.teardown()  # the service socket it put in os.environ goes with it

    (run_dir,) = list((tmp_path / "wandb").glob("offline-run-*"))
    # wandb-core stores media values flattened: nested_key = [key, field], e.g. ("path").
    keys: set[str] = set()
    table_json: dict[str, Any] = {}
    for rec in _wandb_records(run_dir):
        if rec.WhichOneof("record_type") == "history":
            for item in rec.history.item:
                path = [item.key] if item.key else list(item.nested_key)
                keys.add(path[0])
                if path[0] == "conflict/report_table" and len(path) == 2:
                    table_json[path[1]] = json.loads(item.value_json)
    assert {
        "conflict/cos/residual-left",
        "conflict/rate/residual-right",
        "conflict/imbalance",
        "conflict/update_cos/left",
        "conflict/report_table",
        "conflict/probe_figure",
    } <= keys, f"history keys seen: {sorted(keys)}"
    assert table_json.get("_type") == "table-file"
    table = json.loads((run_dir / "files" / table_json["path"]).read_text())
    assert table["columns"][:3] == ["pair", "conflict_rate", "late_conflict_rate"]
    assert sorted(row[0] for row in table["data"]) == sorted(p.name for p in cb.report.pairs)
    assert list((run_dir / "files" / "media" / "images").rglob("*.png"))


def test_training_survives_wandb_errors(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    from lightning.pytorch.loggers import WandbLogger

    def broken_table(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("wandb is having a bad day")

    monkeypatch.setattr(wandb, "Table", broken_table)
    model = make_module()
    _Spy().attach(model, monkeypatch)
    cb = ConflictCallback(probe_steps=10)
    logger = WandbLogger(save_dir=tmp_path, offline=True)
    trainer = make_trainer(tmp_path, [cb], max_steps=15, logger=logger)
    with pytest.warns(UserWarning, match="W&B failed.*bad day"):
        trainer.fit(model, make_datamodule())
    wandb.finish()
    wandb.teardown()  # the service socket it put in os.environ goes with it
    assert cb.report is not None and model.train_steps == 15
    assert os.path.exists(Path(cb.report_dir) / "conflict_report.json")


def test_without_logger_or_output_dir_the_report_stays_in_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = make_module()
    _Spy().attach(model, monkeypatch)
    cb = ConflictCallback(probe_steps=5)
    make_trainer(tmp_path, [cb], max_steps=6, logger=False).fit(model, make_datamodule())
    assert cb.report is not None and cb.report_dir is None
    assert list(tmp_path.iterdir()) == []


def test_cosine_margin_reaches_the_rule_and_the_report():
    from _support import tiny_burgers, tiny_trainer

    def probe(**kw):
        torch.manual_seed(0)
        problem = tiny_burgers()
        cb = ConflictCallback(probe_steps=6, auto_switch=False, **kw)
        tiny_trainer(6, [cb]).fit(problem.module(), problem.datamodule())
        return cb.report

    plain, strict = probe(), probe(tau_cos=0.99)
    assert plain.regime == "directional" and plain.tau_cos == 0.0
    assert strict.regime != "directional" and strict.tau_cos == 0.99
    assert strict.pairs == plain.pairs  # the same statistics, a stricter rule
    with pytest.raises(ValueError, match="tau_cos"):
        ConflictCallback(probe_steps=6, tau_cos=1.5)


def test_two_switching_callbacks_are_refused_in_setup(tmp_path):
    first, second = ConflictCallback(probe_steps=5), ConflictCallback(probe_steps=6)
    trainer = make_trainer(tmp_path, [first, second])
    module = make_module()
    match = r"2 ConflictCallbacks with auto_switch=True.*auto_switch=False"
    with pytest.raises(ValueError, match=match):
        trainer.fit(module, make_datamodule())
    assert trainer.global_step == 0


def test_a_watching_callback_may_join_a_switching_one(tmp_path):
    watcher = ConflictCallback(probe_steps=5, auto_switch=False)
    switcher = ConflictCallback(probe_steps=6)
    trainer = make_trainer(tmp_path, [watcher, switcher])
    for callback in (watcher, switcher):
        callback.setup(trainer, make_module(), "fit")  # no error
