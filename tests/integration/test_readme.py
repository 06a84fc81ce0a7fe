"""The README's python snippets run as written and its two set-up commands are present."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
COMMANDS = (
    "pip install torch==2.13.0 && pip install -e . && lightning-pinn run burgers",
    'pip install torch==2.13.0 && pip install -e ".[dev]" && python -m pytest',
)


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_readme_has_the_two_commands():
    shell = "\n".join(_blocks(README, "bash"))
    for command in COMMANDS:
        assert command in shell


@pytest.mark.parametrize("index", range(len(_blocks(README, "python"))))
def test_readme_python_snippet_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # anything a snippet writes lands here
    code = _blocks(README, "python")[index]
    exec(compile(code, f"README.md[python {index}]", "exec"), {"__name__": "__readme__"})
    if "report.regime" in code:
        assert capsys.readouterr().out.strip().splitlines()[-1] in (
            "directional",
            "magnitude",
            "low",
        )


def test_docs_python_snippets_run(tmp_path, monkeypatch):
    """Every ```python block in docs/ (each file's blocks run in order, in one module)."""
    monkeypatch.chdir(tmp_path)
    for path in sorted((ROOT / "docs").glob("*.md")):
        blocks = _blocks(path.read_text(), "python")
        # A real module in sys.modules: dataclasses look their class's module up there.
        module = types.ModuleType(f"docs_{path.stem}")
        monkeypatch.setitem(sys.modules, module.__name__, module)
        for i, code in enumerate(blocks):
            exec(compile(code, f"{path.name}[python {i}]", "exec"), module.__dict__)
