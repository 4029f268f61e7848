"""Checkpoints: what they keep (and what Keras's own model.save does not), when they are written, shuffle order."""

from __future__ import annotations

import numpy as np
import pytest

from dlrun.backend import import_keras
from dlrun.data.datasets import fit_datasets
from dlrun.data.prepare import prepare
from dlrun.runs import layout
from dlrun.spec.loader import load_spec
from dlrun.training import checkpoint as checkpoints
from dlrun.training.fit import train

from conftest import binary_spec, make_binary_csv, write_spec

keras = import_keras()


def dropout_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dropout(0.5), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse")
    return model


def trained_dropout_model():
    model = dropout_model()
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    model.fit(x, x.sum(axis=1), epochs=2, batch_size=16, verbose=0)
    return model


def seed_state(model) -> np.ndarray:
    (state,) = [v.numpy() for v in model.variables if "seed_generator" in v.path]
    return state


def test_model_save_keeps_the_optimizer_iterations_but_not_the_dropout_seed_state(tmp_path):
    # Why checkpoints are not .keras files: Keras 3 saves the optimizer's iteration count, but a
    # loaded model's dropout draws a fresh seed, so a run resumed from model.save would drop other units.
    model = trained_dropout_model()
    assert seed_state(model)[1] == 8  # 8 steps drew 8 dropout masks
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) == 8
    assert not np.array_equal(seed_state(loaded), seed_state(model))


def test_a_checkpoint_restores_every_variable_the_seed_state_included(tmp_path):
    model = trained_dropout_model()
    early = keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)
    early.set_model(model)
    early.on_train_begin()
    early.on_epoch_end(0, {"val_loss": 0.5})
    early.on_epoch_end(1, {"val_loss": 0.7})
    checkpoints.write_checkpoint(tmp_path / layout.CHECKPOINT, checkpoints.capture(model, early, 1, 12.5))

    state = checkpoints.read_checkpoint(tmp_path / layout.CHECKPOINT)
    assert (state.epoch, state.epochs_done, state.wall, state.stopped) == (1, 2, 12.5, False)
    assert state.early == {"wait": 1, "stopped_epoch": 0, "best": 0.5, "best_epoch": 0}
    fresh = dropout_model()
    checkpoints.restore_model(fresh, state)
    for restored, saved in zip(
        fresh.variables + fresh.optimizer.variables, model.variables + model.optimizer.variables
    ):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy())
    other = keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)
    other.on_train_begin()
    checkpoints.restore_early(other, state)
    assert (other.wait, other.best, other.best_epoch) == (1, 0.5, 0)
    assert all(np.array_equal(a, b) for a, b in zip(other.best_weights, early.best_weights))


def test_a_checkpoint_of_another_model_or_a_damaged_one_is_refused(tmp_path):
    from dlrun.errors import DlrunError

    model = trained_dropout_model()
    path = tmp_path / layout.CHECKPOINT
    checkpoints.write_checkpoint(path, checkpoints.capture(model, None, 0, 1.0))
    wider = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    wider.compile(optimizer="adam", loss="mse")
    with pytest.raises(DlrunError, match="do not match the spec's model"):
        checkpoints.restore_model(wider, checkpoints.read_checkpoint(path))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DlrunError, match="cannot be read .* delete it to resume from the first epoch"):
        checkpoints.read_checkpoint(path)


@pytest.mark.parametrize("every, writes", [(600, 1), (0, 6)])
def test_checkpoints_are_written_every_few_seconds_and_at_the_end(tmp_path, monkeypatch, every, writes):
    # A run shorter than the interval is checkpointed once, at its end: saving costs more than a small epoch.
    written = []
    real_write = checkpoints.write_checkpoint

    def write(path, state):
        written.append(state.epoch)
        real_write(path, state)

    monkeypatch.setattr(checkpoints, "write_checkpoint", write)
    make_binary_csv(tmp_path / "data.csv")
    outcome = train(
        load_spec(write_spec(tmp_path, binary_spec(epochs=6))), tmp_path / "runs", quiet=True, checkpoint_every=every
    )
    assert written == list(range(6 - writes, 6))
    assert not (outcome.run_dir / layout.CHECKPOINT).exists()  # removed once the run finished
    assert (outcome.run_dir / layout.START).is_file()


def first_epoch_batches(dataset, steps: int) -> list[np.ndarray]:
    iterator = iter(dataset)
    return [next(iterator)[0].numpy() for _ in range(steps)]


def test_each_epochs_shuffle_depends_on_the_seed_and_the_epoch_alone(tmp_path):
    make_binary_csv(tmp_path / "data.csv", rows=100)
    spec = load_spec(write_spec(tmp_path, binary_spec()))
    data = prepare(spec.data, spec.seed, spec.training.loss)
    steps = fit_datasets(data, 16, True, 3).steps
    epochs = first_epoch_batches(fit_datasets(data, 16, True, 3).train, 4 * steps)
    by_epoch = [np.concatenate(epochs[i * steps : (i + 1) * steps]) for i in range(4)]
    rows = np.sort(data.x_train, axis=0)
    for epoch in by_epoch:  # every epoch is the training rows, once each, in its own order
        np.testing.assert_array_equal(np.sort(epoch, axis=0), rows)
    assert not np.array_equal(by_epoch[1], by_epoch[2])
    resumed = first_epoch_batches(fit_datasets(data, 16, True, 3, first_epoch=2).train, steps)
    np.testing.assert_array_equal(np.concatenate(resumed), by_epoch[2])  # epoch 2 as the full run drew it
    other_seed = first_epoch_batches(fit_datasets(data, 16, True, 4, first_epoch=2).train, steps)
    assert not np.array_equal(np.concatenate(other_seed), by_epoch[2])
    unshuffled = first_epoch_batches(fit_datasets(data, 16, False, 3, first_epoch=2).train, steps)
    np.testing.assert_array_equal(np.concatenate(unshuffled), data.x_train)


@pytest.mark.parametrize(
    "content, reason",
    [
        (bytes(range(256)) * 4, "it is not a NumPy .npz archive"),
        (b"\x80\x04K\x01.", "it is not a NumPy .npz archive"),  # a pickle: NumPy would advise allow_pickle
        ("npz", "no 'state' in the archive"),
        ("npy", "a single array, not an .npz archive"),
    ],
)
def test_a_file_that_is_no_checkpoint_is_one_line_without_numpys_pickle_advice(tmp_path, content, reason):
    from dlrun.errors import DlrunError

    path = tmp_path / layout.CHECKPOINT
    if content == "npz":
        with path.open("wb") as handle:
            np.savez(handle, weights=np.zeros(3))
    elif content == "npy":
        with path.open("wb") as handle:
            np.save(handle, np.zeros(3))
    else:
        path.write_bytes(content)
    with pytest.raises(DlrunError) as caught:
        checkpoints.read_checkpoint(path)
    assert str(caught.value) == (
        f"{path} cannot be read (it is damaged or not a dlrun checkpoint: {reason}); delete it to resume from the "
        "first epoch"
    )
