"""Train the custom advection-diffusion PINN with a plain ``lightning.Trainer``.

    python examples/custom_pde/train.py --max-steps 3000

Logs to Weights & Biases (offline when no API key is configured, so training never fails for
lack of an account; ``wandb sync`` uploads later); falls back to CSV, with a message, when the
``wandb`` package is not installed. Prints the conflict report's regime and the relative L2
error against the exact solution.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger, Logger

sys.path.insert(0, str(Path(__file__).resolve().parent))

from model import AdvectionDiffusion, FourierResNet, datamodule  # noqa: E402

from lightning_pinn import ConflictCallback  # noqa: E402


def make_logger(out: str, use_wandb: bool) -> Logger:
    """W&B (offline without an API key) or, when wandb is missing or not wanted, CSV."""
    if use_wandb:
        try:
            import wandb  # noqa: F401
        except ImportError:
            print("wandb is not installed (pip install wandb); logging to CSV instead")
        else:
            from lightning.pytorch.loggers import WandbLogger

            offline = os.environ.get("WANDB_MODE") in ("offline", "disabled") or not (
                os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") == "online"
            )
            if offline:
                print("W&B: no API key configured, logging offline (upload with `wandb sync`)")
            return WandbLogger(project="lightning_pinn-custom", save_dir=out, offline=offline)
    return CSVLogger(out, name="advection_diffusion")


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--probe-steps", type=int, default=None, help="default: max-steps / 2")
    parser.add_argument("--points", type=int, default=1000, help="residual points per step")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", default="runs/custom_pde")
    parser.add_argument("--no-wandb", action="store_true", help="log to CSV")
    args = parser.parse_args(argv)
    if args.max_steps < 2:
        parser.error(f"--max-steps must be >= 2, got {args.max_steps}")
    probe = args.probe_steps or max(1, min(1000, args.max_steps // 2))

    L.seed_everything(0, verbose=False)
    model = AdvectionDiffusion(FourierResNet(), loss_names=("residual", "boundary"), lr=args.lr)
    data = datamodule(n_residual=args.points, n_boundary=max(8, args.points // 5))
    conflict = ConflictCallback(probe_steps=probe, log_every_n_steps=10)
    trainer = L.Trainer(
        max_steps=args.max_steps,
        val_check_interval=min(500, args.max_steps),  # the collocation stream is infinite
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        log_every_n_steps=10,
        logger=make_logger(args.out, not args.no_wandb),
        callbacks=[conflict],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=data)
    rel_l2 = float(trainer.validate(model, datamodule=data, verbose=False)[0]["val/rel_l2"])
    report = conflict.report
    print(f"regime: {report.regime} -> {report.strategy} ({report.reason})")
    print(f"strategy now: {model.strategy_name}")
    print(f"relative L2 error: {rel_l2:.4e}")
    return rel_l2


if __name__ == "__main__":
    main()
