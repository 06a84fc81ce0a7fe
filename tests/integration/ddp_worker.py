"""Worker for test_ddp.py: a 2-process gloo DDP run that dumps what each rank saw.

Usage: python ddp_worker.py OUT_DIR STRATEGY [LAUNCHER [trial|trial-loader|escalate]]

With ``trial`` the callback runs the guarded switch (3 candidates x 2 steps after the probe);
``trial-loader`` does the same on a plain DataLoader (each rank its own points), whose batches
the trials record and replay;
with ``escalate`` it reweights first and profiles a 3-step window before adding adapters;
with ``relobralo`` (STRATEGY ``reweight``) the weights come from the loss values (ReLoBRaLo).
"""

import json
import os
import sys

import lightning as L
import torch

from lightning_pinn import ConflictCallback, problems


class Points(torch.utils.data.IterableDataset):
    """A plain stream of this rank's collocation batches: no rewind, no held-out points."""

    def __init__(self, datamodule, rank):
        self.datamodule, self.rank = datamodule, rank

    def __iter__(self):
        index = 0
        while True:
            yield self.datamodule.sample(index, rank=self.rank)
            index += 1


class Dump(L.Callback):
    def __init__(self, out):
        self.out = out

    def on_train_batch_end(self, trainer, pl_module, *args):
        if pl_module.train_steps == 1:
            torch.save(pl_module.loss_jacobian, f"{self.out}/J{trainer.global_rank}.pt")
            losses = pl_module.last_record.losses
            torch.save(losses, f"{self.out}/losses{trainer.global_rank}.pt")

    def on_train_end(self, trainer, pl_module):
        state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        torch.save(state, f"{self.out}/final{trainer.global_rank}.pt")
        report = trainer.callbacks[0].report
        with open(f"{self.out}/report{trainer.global_rank}.json", "w") as f:
            json.dump(report.to_dict() if report is not None else None, f)


def main():
    out, strategy = sys.argv[1], sys.argv[2]
    launcher = sys.argv[3] if len(sys.argv) > 3 else "ddp"
    mode = sys.argv[4] if len(sys.argv) > 4 else None
    trial, escalate = mode in ("trial", "trial-loader"), mode == "escalate"
    L.seed_everything(0)
    p = problems.get("burgers", n_residual=128, n_initial=32, n_boundary=32)
    rule = {"reweighting": "relobralo"} if mode == "relobralo" else {}
    module = p.module(strategy=strategy, aggregator="pcgrad", **rule)
    torch.save(module.state_dict(), f"{out}/init.pt")
    trainer = L.Trainer(
        max_steps=14 if trial else 10 if escalate else 8,
        accelerator="cpu",
        devices=2,
        strategy=launcher,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[
            ConflictCallback(
                probe_steps=4,
                auto_switch=strategy == "none",
                output_dir=out,
                trial_steps=2 if trial else None,
                escalate=escalate,
                reprobe_steps=3 if escalate else None,
            ),
            Dump(out),
        ],
    )
    if mode == "trial-loader":
        rank = int(os.environ.get("LOCAL_RANK", "0"))
        loader = torch.utils.data.DataLoader(Points(p.datamodule(seed=0), rank), batch_size=None)
        trainer.fit(module, train_dataloaders=loader)
    else:
        trainer.fit(module, datamodule=p.datamodule(seed=0))


if __name__ == "__main__":
    main()
