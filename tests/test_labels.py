"""Tests of dlrun.runs.labels: runs named by what differs, short names, the compact layer stack."""

from __future__ import annotations

from pathlib import Path

from dlrun.runs import labels
from dlrun.runs.reading import flatten


def spec(lr=0.001, layers=None, name="exp", seed=0, batch=32) -> dict:
    layers = layers or [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 1}]
    return flatten(
        {
            "name": name,
            "seed": seed,
            "data": {"path": "/data/train.csv"},
            "model": {"layers": layers},
            "training": {"optimizer": {"name": "adam", "learning_rate": lr}, "batch_size": batch},
        }
    )


def dense(units, activation="relu"):
    return {"type": "dense", "units": units, "activation": activation}


def test_runs_are_labelled_by_the_values_that_differ_with_short_names():
    runs = [spec(lr=0.01), spec(lr=0.001, batch=64)]
    assert labels.run_labels(runs, ["s1", "s2"]) == ["lr=0.01 batch=32", "lr=0.001 batch=64"]


def test_one_layer_field_is_named_by_its_field_and_several_by_their_layer():
    one = [spec(layers=[dense(4), dense(1, None)]), spec(layers=[dense(16), dense(1, None)])]
    assert labels.run_labels(one, ["s1", "s2"]) == ["units=4", "units=16"]
    two = [spec(layers=[dense(4), dense(2)]), spec(layers=[dense(16), dense(8)])]
    assert labels.run_labels(two, ["s1", "s2"]) == [
        "layers[0].units=4 layers[1].units=2",
        "layers[0].units=16 layers[1].units=8",
    ]


def test_stacks_of_another_shape_are_one_compact_model_value():
    small = [dense(64), {"type": "dropout", "rate": 0.3}, {"type": "batch_normalization"}, dense(1, "linear")]
    big = [dense(16), dense(16), dense(1, "sigmoid")]
    assert labels.layer_stack(spec(layers=small)) == "64relu-d0.3-bn-1"
    assert labels.layer_stack(spec(layers=big)) == "16relu-16relu-1sigmoid"
    assert labels.label_keys([spec(layers=small), spec(layers=big)]) == [labels.MODEL]
    assert labels.run_labels([spec(layers=small), spec(layers=big, lr=0.1)], ["a", "b"]) == [
        "model=64relu-d0.3-bn-1 lr=0.001",
        "model=16relu-16relu-1sigmoid lr=0.1",
    ]


def test_runs_that_differ_in_nothing_fall_back_to_their_stamp_and_twins_get_it_appended():
    assert labels.run_labels([spec(), spec()], ["20240101-120000", "20240101-130000"]) == [
        "20240101-120000",
        "20240101-130000",
    ]
    twins = labels.run_labels([spec(lr=0.1), spec(lr=0.1), spec(lr=0.2)], ["s1", "s2", "s3"])
    assert twins == ["lr=0.1 s1", "lr=0.1 s2", "lr=0.2"]
    assert labels.run_labels([None, spec()], ["x/history.csv", "s2"]) == ["x/history.csv", "s2"]


def test_runs_of_several_specs_are_named_by_spec_then_by_what_differs_within_it():
    runs = [spec(name="a", lr=0.1), spec(name="a", lr=0.2), spec(name="b", batch=8)]
    assert labels.run_labels(runs, ["1", "2", "3"]) == ["a lr=0.1", "a lr=0.2", "b"]


def test_short_names_stay_unique_and_files_show_their_name():
    names = labels.short_names(["training.optimizer.learning_rate", "model.layers[0].rate", "model.layers[2].rate"])
    assert names == {
        "training.optimizer.learning_rate": "lr",
        "model.layers[0].rate": "layers[0].rate",
        "model.layers[2].rate": "layers[2].rate",
    }
    assert labels.short_names(["training.optimizer.beta_1"]) == {"training.optimizer.beta_1": "beta_1"}
    assert labels.shown("data.path", "/very/long/folder/train.csv") == "train.csv"
    assert labels.text([1e-05, "a"]) == "[1e-05,a]" and labels.text(True) == "true"


def test_stamps_grow_until_they_tell_runs_apart():
    assert labels.stamps([Path("runs/a/20240101"), Path("runs/b/20240102")]) == ["20240101", "20240102"]
    assert labels.stamps([Path("runs/a/20240101"), Path("runs/b/20240101")]) == ["a/20240101", "b/20240101"]
