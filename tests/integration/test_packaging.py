"""A non-editable install carries the recipes (package data), not only the repository."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lightning_pinn.run._recipes import RECIPE_DIR, recipe_names

ROOT = Path(__file__).resolve().parents[2]


def test_recipes_live_in_the_package_and_examples_links_to_them():
    assert RECIPE_DIR.parent == ROOT / "lightning_pinn"
    assert (ROOT / "examples" / "recipes").resolve() == RECIPE_DIR.resolve()
    assert {"default", "vanilla", "burgers"} <= set(recipe_names())


@pytest.mark.slow
def test_the_wheel_contains_every_recipe(tmp_path):
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    out = subprocess.run([*cmd, "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    if out.returncode != 0 and "No module named" in out.stderr:  # pragma: no cover
        pytest.fail(f"building the wheel needs setuptools and wheel: {out.stderr[-500:]}")
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("lightning_pinn-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in recipe_names():
        assert f"lightning_pinn/recipes/{name}.yaml" in names
