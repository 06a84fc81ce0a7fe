"""GPU check of mixed precision: ``16-mixed`` with the gradient scaler, ``bf16-mixed``,
and the conflict statistics, on Burgers. Prints one line per check and exits non-zero if a
check fails. Run by ``benchmarks/gpu_check.sh`` on a CUDA machine.
"""

from __future__ import annotations

import sys
import time

import lightning as L
import torch

from lightning_pinn import ConflictCallback, problems


class _Track(L.Callback):
    def __init__(self):
        self.first = None
        self.finite = []

    def on_train_batch_end(self, trainer, pl_module, *args):
        jac = pl_module.loss_jacobian
        if self.first is None:
            self.first = jac.detach().clone()
        self.finite.append(bool(torch.isfinite(jac).all()))


def _fit(precision, steps, probe, **module_kw):
    p = problems.get("burgers")
    L.seed_everything(0)
    module = p.module(**module_kw)
    dm = p.datamodule(seed=0)
    track = _Track()
    conflict = ConflictCallback(probe_steps=probe, auto_switch=False)
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cuda",
        devices=1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[conflict, track],
    )
    start = sum(v.item() for v in module.losses(dm.sample(10_000)).values())
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    module = module.cuda()
    end = sum(
        v.item()
        for v in module.losses({k: v.cuda() for k, v in dm.sample(10_000).items()}).values()
    )
    return module, track, conflict, start, end, wall


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 1
    print(torch.cuda.get_device_name(0), "torch", torch.__version__)
    ok = True
    ref_mod, ref, ref_cb, s32, e32, w32 = _fit("32-true", 300, 100)
    for prec, kw in [("16-mixed", {}), ("bf16-mixed", {}), ("16-mixed", {"fp32_losses": False})]:
        mod, tr, cb, s, e, w = _fit(prec, 300, 100, **kw)
        rel = ((tr.first - ref.first).norm(dim=1) / ref.first.norm(dim=1)).max().item()
        finite = sum(tr.finite) / len(tr.finite)
        scaler = getattr(mod.trainer.precision_plugin, "scaler", None)
        scale = scaler.get_scale() if scaler is not None else None
        good = (
            mod.loss_jacobian.dtype == torch.float32
            and e < s
            and cb.report is not None
            and (rel < 1e-5 if kw.get("fp32_losses", True) else True)
        )
        ok &= good
        print(
            f"{prec:10s} fp32_losses={kw.get('fp32_losses', True)!s:5s} first-step J rel diff "
            f"vs 32-true {rel:.2e}; finite J share {finite:.3f}; loss {s:.3e} -> {e:.3e}; "
            f"regime {cb.report.regime if cb.report else None}; scale {scale}; "
            f"wall {w:.1f}s (32-true {w32:.1f}s) -> {'OK' if good else 'FAIL'}"
        )
    print(f"32-true    loss {s32:.3e} -> {e32:.3e}; regime {ref_cb.report.regime}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
