"""The Allen–Cahn reference cache under concurrent writers, an unwritable directory and a
corrupt file."""

from __future__ import annotations

import os
import threading
import warnings

import numpy as np
import pytest

from lightning_pinn.problems import allen_cahn
from lightning_pinn.problems.allen_cahn import load_or_solve

SMALL = {"modes": 32, "dt": 1e-2}  # a solve in well under a second


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty memory cache and no warning given yet, as in a new process."""
    monkeypatch.setattr(allen_cahn, "_MEMO", {})
    monkeypatch.setattr(allen_cahn, "_CACHE_WARNED", False)


def test_concurrent_writers_leave_one_complete_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTNING_PINN_CACHE", str(tmp_path))
    barrier = threading.Barrier(2)
    replace = os.replace

    def replace_together(src, dst):  # both writers have written their file before either moves
        barrier.wait(timeout=30)
        replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_together)
    errors: list[BaseException] = []

    def solve() -> None:
        try:
            load_or_solve(**SMALL)
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    writers = [threading.Thread(target=solve) for _ in range(2)]
    allen_cahn._MEMO.clear()
    for t in writers:
        t.start()
    for t in writers:
        t.join(timeout=60)
    assert errors == []
    assert [p.name for p in tmp_path.iterdir() if "tmp" in p.name] == []
    (path,) = tmp_path.glob("allen_cahn-*.npz")
    with np.load(path) as f:
        np.testing.assert_array_equal(f["coef"], allen_cahn.etdrk4_allen_cahn(**SMALL)["coef"])


def test_unwritable_cache_dir_solves_in_memory_and_warns_once(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")  # a cache path under a regular file: not creatable
    monkeypatch.setenv("LIGHTNING_PINN_CACHE", str(tmp_path / "file" / "cache"))
    with pytest.warns(UserWarning, match="cannot write the Allen-Cahn reference cache") as record:
        first = load_or_solve(**SMALL)
        load_or_solve(**{**SMALL, "t_end": 0.5})
    assert len([w for w in record if "reference cache" in str(w.message)]) == 1
    assert load_or_solve(**SMALL) is first  # kept in memory


def test_write_failure_of_any_kind_falls_back_to_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTNING_PINN_CACHE", str(tmp_path))

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(allen_cahn.tempfile, "mkstemp", read_only)
    with pytest.warns(UserWarning, match="Read-only file system"):
        load_or_solve(**SMALL)
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_cache_file_is_solved_again(tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTNING_PINN_CACHE", str(tmp_path))
    load_or_solve(**SMALL)
    (path,) = tmp_path.glob("allen_cahn-*.npz")
    path.write_bytes(path.read_bytes()[:50])  # truncated by a crash outside this library
    allen_cahn._MEMO.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sol = load_or_solve(**SMALL)
    np.testing.assert_array_equal(sol.coef, allen_cahn.etdrk4_allen_cahn(**SMALL)["coef"])
    with np.load(path) as f:  # and rewritten
        assert "coef" in f.files
