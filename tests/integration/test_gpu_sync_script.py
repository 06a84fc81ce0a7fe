"""benchmarks/gpu_sync.py imports and, without CUDA, says so and exits 0."""

import importlib.util
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_sync.py"


def test_gpu_sync_script_without_cuda(capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_sync", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert module.main([]) == 0
    assert "no CUDA device" in capsys.readouterr().out
