"""training.distribute: mirrored on two logical CPU devices, and training.mixed_precision."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dlrun.cli import app

from conftest import binary_spec, make_binary_csv, write_spec

# Its runs are trained once (session-scoped fixtures): every test of this file runs in the same pytest-xdist worker
pytestmark = pytest.mark.xdist_group("devices")

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]

# TensorFlow splits the CPU in two only before it initializes, so the runs happen in a fresh process.
TWO_CPUS = """
import json, os, sys
sys.path.insert(0, {root!r})
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from typer.testing import CliRunner
from dlrun.cli import app
codes = {{}}
for out, overrides in {runs!r}.items():
    args = ["train", "spec.yaml", "--quiet", "--out", out]
    for override in overrides:
        args += ["--set", override]
    result = CliRunner().invoke(app, args)
    codes[out] = [result.exit_code, result.output]
print(json.dumps(codes))
"""

MIRRORED = ["training.distribute=mirrored", "training.devices=[/cpu:0,/cpu:1]"]


@pytest.fixture(scope="session")  # kept for the whole worker: xdist may run other files between this file's tests
def two_devices(tmp_path_factory) -> Path:
    """Train one spec on one device, mirrored on two, streamed and mirrored, and mixed and mirrored."""
    folder = tmp_path_factory.mktemp("devices")
    make_binary_csv(folder / "data.csv", rows=128)  # 96 training rows: three whole batches of 32, 16 per device
    write_spec(folder, binary_spec(epochs=3, shuffle=False))
    runs = {
        "single": [],
        "mirrored": MIRRORED,
        "streamed": [
            "training.distribute=mirrored",
            "training.shuffle=true",
            "data.streaming=true",
            "data.chunk_rows=20",
        ],
        "mixed": [*MIRRORED, "training.mixed_precision=true"],
        "absent": ["training.distribute=mirrored", "training.devices=[/cpu:0,/gpu:3]"],
    }
    code = TWO_CPUS.format(root=str(ROOT), runs=runs)
    env = {**os.environ, "DLRUN_CACHE_DIR": str(folder / "cache")}  # module fixtures run before conftest sets it
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    codes = json.loads(result.stdout.strip().splitlines()[-1])
    for name in ("single", "mirrored", "streamed", "mixed"):
        assert codes[name][0] == 0, codes[name][1]
    (folder / "absent.txt").write_text(" ".join(codes["absent"][1].split()))
    return folder


def run_of(folder: Path, out: str) -> Path:
    return next((folder / out / "spec").iterdir())


def test_a_mirrored_run_matches_one_device_up_to_float_rounding(two_devices):
    single, mirrored = run_of(two_devices, "single"), run_of(two_devices, "mirrored")
    summary = json.loads((mirrored / "summary.json").read_text())
    assert [device.rsplit("/", 1)[-1] for device in summary["devices"]] == ["device:CPU:0", "device:CPU:1"]
    assert "devices" not in json.loads((single / "summary.json").read_text())
    a, b = pd.read_csv(single / "history.csv"), pd.read_csv(mirrored / "history.csv")
    assert len(a) == len(b) == 3
    # The same global batches and starting weights: each device takes the mean loss of its 16 rows over
    # 2 devices and the gradients are summed, which is the mean over 32 rows summed in another order.
    # Float32 rounding (~1e-7 per sum; ~1e-7 apart here) stays far below 1e-5 over 9 Adam steps, while
    # 32 rows per device (batch_size misread as per device) would train on other batches and differ far more.
    for key in ("loss", "val_loss", "binary_accuracy", "val_binary_accuracy"):
        np.testing.assert_allclose(b[key], a[key], atol=1e-5, rtol=0)
    assert abs(a["loss"].iloc[-1] - a["loss"].iloc[0]) > 1e-3  # it did learn


def test_a_mirrored_model_is_saved_and_predicts_like_the_single_device_one(two_devices, tmp_path):
    outputs = {}
    for name in ("single", "mirrored"):
        out = tmp_path / f"{name}.csv"
        result = runner.invoke(
            app, ["predict", str(run_of(two_devices, name)), str(two_devices / "data.csv"), "--out", str(out)]
        )
        assert result.exit_code == 0, result.output
        outputs[name] = pd.read_csv(out)["probability"].to_numpy()
    np.testing.assert_allclose(outputs["mirrored"], outputs["single"], atol=1e-5)


def test_a_streamed_mirrored_run_trains_every_epoch_from_its_cache(two_devices):
    run_dir = run_of(two_devices, "streamed")
    history = pd.read_csv(run_dir / "history.csv")
    assert len(history) == 3 and np.isfinite(history[["loss", "val_loss"]].to_numpy()).all()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["streaming"] and len(summary["devices"]) == 2
    assert sorted(summary["streaming_cache"]) == ["train", "validation"]
    assert all(Path(folder).parent.parent == two_devices / "cache" for folder in summary["streaming_cache"].values())


def test_mixed_precision_computes_in_float16_and_keeps_the_outputs_float32(two_devices):
    from dlrun.backend import import_keras

    keras = import_keras()
    run_dir = run_of(two_devices, "mixed")
    history = pd.read_csv(run_dir / "history.csv")
    assert np.isfinite(history[["loss", "val_loss"]].to_numpy()).all()
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    assert [layer.dtype_policy.name for layer in model.layers] == ["mixed_float16", "float32"]
    assert model.layers[0].compute_dtype == "float16" and model.layers[0].kernel.dtype == "float32"
    outputs = model.predict(np.zeros((2, 4), "float32"), verbose=0)
    assert outputs.dtype == np.float32
    assert type(model.optimizer).__name__ == "LossScaleOptimizer"  # against float16 underflow, restored on load
    assert keras.config.dtype_policy().name == "float32"  # the policy does not outlive the build


def test_a_device_this_machine_lacks_is_named_before_anything_is_written(two_devices):
    message = (two_devices / "absent.txt").read_text()
    assert message.startswith("error: training.devices: '/gpu:3' is not a device of this machine")
    assert "/device:CPU:1" in message
    assert not (two_devices / "absent").exists()


@pytest.mark.parametrize(
    ("training", "expected"),
    [
        ({"devices": ["/gpu:0"]}, "devices lists the devices of distribute: mirrored, but distribute is not set"),
        ({"distribute": "mirrored", "devices": ["gpu0"]}, "'gpu0' is not a device name; expected one like '/gpu:0'"),
        ({"distribute": "mirrored", "devices": ["/gpu:0", "GPU:0"]}, "/gpu:0, GPU:0 name the same device"),
        ({"distribute": "horovod"}, "distribute"),
    ],
)
def test_distribute_and_devices_are_checked_with_the_spec(tmp_path, training, expected):
    make_binary_csv(tmp_path / "data.csv")
    result = runner.invoke(app, ["validate", str(write_spec(tmp_path, binary_spec(**training)))])
    assert result.exit_code == 1
    assert expected in " ".join(result.output.split())
