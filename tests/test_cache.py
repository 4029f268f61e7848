"""The columnar cache of streamed data: written on the first pass, read after, never stale or half-written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.data import cache, preprocess
from dlrun.data.prepare import prepare
from dlrun.spec.loader import load_spec

from conftest import binary_spec, mixed_frame, write_spec

runner = CliRunner()


def write_data(folder: Path, rows: int = 200, seed: int = 0) -> None:
    frame = mixed_frame(rows=rows, seed=seed).drop(columns=["id"])
    frame.to_csv(folder / "data.csv", index=False)
    valid = mixed_frame(rows=40, seed=9).drop(columns=["id"])
    valid.loc[0, "city"] = "Lima"  # an unseen category, counted on every pass
    valid.to_csv(folder / "valid.csv", index=False)


def spec_data(**data) -> dict:
    spec = binary_spec(epochs=3, batch_size=16)
    spec["data"] = {
        "path": "data.csv",
        "target": "target",
        "validation_path": "valid.csv",
        "scale": "standard",
        "missing": "mean",
        "streaming": True,
        "chunk_rows": 23,
        **data,
    }
    return spec


def prepared(folder: Path, **data):
    spec = load_spec(write_spec(folder, spec_data(**data)))
    return prepare(spec.data, spec.seed, spec.training.loss)


def one_pass(data, part: str = "train", shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
    batches = list(data.stream.batches(part, 16, shuffle=shuffle))
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def caches(folder: Path) -> list[Path]:
    root = folder / "cache" / "stream"
    return sorted(root.iterdir()) if root.is_dir() else []


def refuse_parsing(monkeypatch) -> None:
    def parse(*args, **kwargs):
        raise AssertionError("the file was parsed again")

    monkeypatch.setattr(preprocess, "read_chunks", parse)  # how a Stream reads the file


def test_later_passes_read_the_cache_and_give_the_batches_of_parsing(tmp_path, monkeypatch):
    write_data(tmp_path)
    cached, parsed = prepared(tmp_path), prepared(tmp_path, streaming_cache=False)
    first = one_pass(cached), one_pass(cached, "validation")
    folders = caches(tmp_path)
    assert len(folders) == 2 and not any(".partial-" in f.name for f in folders)
    assert set(cached.stream.caches.values()) == {str(f) for f in folders}
    manifest = json.loads((folders[0] / "manifest.json").read_text())
    assert manifest["sha256"] in cached.sha256.values() and sum(manifest["blocks"]) == manifest["rows"]
    expected = [(one_pass(parsed), one_pass(parsed, "validation")) for _ in range(3)]
    np.testing.assert_array_equal(first[0][0], expected[0][0][0])
    refuse_parsing(monkeypatch)
    for (x, y), (vx, vy) in expected[1:]:  # shuffled differently on every pass, as when parsing
        again, valid = one_pass(cached), one_pass(cached, "validation")
        np.testing.assert_array_equal(again[0], x)
        np.testing.assert_array_equal(again[1], y)
        np.testing.assert_array_equal(valid[0], vx)
        np.testing.assert_array_equal(valid[1], vy)
    assert not np.array_equal(expected[1][0][0], expected[2][0][0])
    assert cached.stream.unseen["validation"] == parsed.stream.unseen["validation"] == {"city": 1}
    assert caches(tmp_path) == folders and parsed.stream.caches == {}


def test_a_changed_file_never_reuses_a_stale_cache(tmp_path):
    write_data(tmp_path)
    before = prepared(tmp_path)
    one_pass(before)
    old = caches(tmp_path)
    frame = pd.read_csv(tmp_path / "data.csv")
    frame["income"] += 1000.0  # the new rows scale otherwise; a stale cache would hold the old inputs
    frame.to_csv(tmp_path / "data.csv", index=False)
    after = prepared(tmp_path)
    x, _ = one_pass(after, shuffle=False)
    parsed, _ = one_pass(prepared(tmp_path, streaming_cache=False), shuffle=False)
    np.testing.assert_array_equal(x, parsed)
    new = caches(tmp_path)
    assert len(new) == 1 and new != old  # the old file's cache is gone once the new one is complete
    frame["income"] -= 1.0
    frame.to_csv(tmp_path / "data.csv", index=False)
    hashed = prepared(tmp_path)
    frame["income"] -= 1.0
    frame.to_csv(tmp_path / "data.csv", index=False)  # changed after its sha256 was taken: no cache is kept
    one_pass(hashed)
    assert caches(tmp_path) == new and hashed.stream.caches == {}


KILLED = """
import os, sys
sys.path.insert(0, {root!r})
from dlrun.data.prepare import prepare
from dlrun.spec.loader import load_spec
spec = load_spec({spec!r})
data = prepare(spec.data, spec.seed, spec.training.loss)
for number, batch in enumerate(data.stream.batches("train", 16)):
    if number == 5:
        os._exit(9)  # killed mid-pass: no clean-up runs
"""


def test_a_cache_half_written_by_a_killed_run_is_never_read(tmp_path, monkeypatch):
    write_data(tmp_path)
    spec = write_spec(tmp_path, spec_data())
    code = KILLED.format(root=str(Path(__file__).resolve().parents[1]), spec=str(spec))
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 9, result.stderr
    (partial,) = caches(tmp_path)
    assert ".partial-" in partial.name and (partial / "x.bin").stat().st_size > 0
    assert not (partial / "manifest.json").exists()
    data = prepared(tmp_path)
    parsed, _ = one_pass(prepared(tmp_path, streaming_cache=False), shuffle=False)
    np.testing.assert_array_equal(one_pass(data, shuffle=False)[0], parsed)  # read from the file, not the scraps
    (complete,) = caches(tmp_path)  # the dead run's folder is deleted once a cache is complete
    assert ".partial-" not in complete.name
    (complete / "x.bin").write_bytes((complete / "x.bin").read_bytes()[:-4])  # cut short on disk
    assert cache.open_cache(data.stream.cache_key("train"), data.rows["train"], data.preprocessing.width) is None
    np.testing.assert_array_equal(one_pass(data, shuffle=False)[0], parsed)


def test_a_full_disk_abandons_the_cache_and_the_pass_goes_on(tmp_path, monkeypatch):
    write_data(tmp_path)
    calls = []

    def full(array, handle):
        calls.append(len(array))
        if len(calls) > 2:
            raise OSError(28, "No space left on device")
        array.tofile(handle)

    monkeypatch.setattr(cache, "_write", full)
    data = prepared(tmp_path)
    x, _ = one_pass(data, shuffle=False)
    parsed, _ = one_pass(prepared(tmp_path, streaming_cache=False), shuffle=False)
    np.testing.assert_array_equal(x, parsed)
    assert calls and caches(tmp_path) == [] and data.stream.caches == {}


def test_training_with_the_cache_gives_the_history_of_parsing_every_epoch(tmp_path):
    write_data(tmp_path, rows=150)
    histories = {}
    for cached in (True, False):
        path = write_spec(tmp_path, spec_data(streaming_cache=cached), f"spec{cached}.yaml")
        result = runner.invoke(app, ["train", str(path), "--quiet", "--out", "runs"])
        assert result.exit_code == 0, result.output
        run_dir = next(Path(f"runs/spec{cached}").iterdir())
        histories[cached] = pd.read_csv(run_dir / "history.csv")
        summary = json.loads((run_dir / "summary.json").read_text())
        assert sorted(summary["streaming_cache"]) == (["train", "validation"] if cached else [])
        assert summary["unseen_categories"] == {"validation": {"city": 1}}
    assert len(histories[True]) == 3
    pd.testing.assert_frame_equal(histories[True], histories[False])


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DLRUN_CACHE_DIR": "/data/cache"}, Path("/data/cache")),
        ({"XDG_CACHE_HOME": "/xdg"}, Path("/xdg/dlrun")),
        ({}, Path.home() / ".cache" / "dlrun"),
    ],
)
def test_the_cache_lives_outside_the_project(monkeypatch, env, expected):
    monkeypatch.delenv("DLRUN_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert cache.cache_root() == expected
