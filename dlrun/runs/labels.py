"""Labels by what differs: the one rule that names runs in compare and sweep tables, plot legends and diff.

Runs are told apart by the spec values that differ between them, with short names for the paths
users sweep most (`lr=0.01 units=8`); a layer stack that differs in shape is one compact `model`
value (`64relu-d0.3-bn-1sigmoid`). Runs of different specs (another `name`) are named by it first.
Only when nothing differs does a run fall back to its folder's timestamp.

Works on flattened configs (`dlrun.runs.reading.flatten`): pure Python, no TensorFlow, no pandas.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MODEL = "model"
"""The key of the compact layer stack, in labels and in compare's columns."""

ALIASES = {
    "training.optimizer.learning_rate": "lr",
    "training.optimizer.name": "optimizer",
    "training.batch_size": "batch",
    "training.epochs": "epochs",
    "training.loss": "loss",
    "training.metrics": "metrics",
    "training.early_stopping.patience": "patience",
    "training.early_stopping.min_delta": "min_delta",
    "data.path": "data",
    "data.target": "target",
    "data.validation_split": "val_split",
    "data.scale": "scale",
    "data.features": "features",
    "seed": "seed",
    "name": "name",
}
"""Short names of the paths users vary most; any other path is named by its last steps that are unique."""

STACK_LEGEND = "16relu = dense(16, relu), d0.2 = dropout(0.2), bn = batch normalization"
"""How to read `layer_stack`'s codes, for the line under a table with a `model` column."""

PATHS = ("data.path", "data.validation_path", "data.test_path")
"""Spec values that are files: labels name them by file name."""

CODED_FIELDS = ("type", "units", "activation", "rate")
"""The layer fields the compact stack spells out (see `layer_stack`)."""

MAX_LAYER_PATHS = 2
"""Up to this many differing layer fields (in stacks of one shape) are labelled one by one, like `units=8`."""

_LAYER = re.compile(r"^model\.layers\[(\d+)\]\.(.+)$")
_MISSING = object()


def differing(params: Sequence[dict[str, Any]], exclude: Sequence[str] = ()) -> list[str]:
    """Return the dotted paths whose values are not the same in every run (absent counts as a value)."""
    keys = list(dict.fromkeys(k for p in params for k in p))
    return [k for k in keys if k not in exclude and len({_hashable(p.get(k, _MISSING)) for p in params}) > 1]


def label_keys(params: Sequence[dict[str, Any]], exclude: Sequence[str] = ("name",)) -> list[str]:
    """Return what tells the runs apart: differing paths, with a stack of another shape as one `model` key.

    Layer paths are kept one by one when the stacks have the same shape (layer count and types) and at
    most `MAX_LAYER_PATHS` of their fields differ; otherwise they collapse into `MODEL`, placed where
    the first layer path was.
    """
    paths = differing(params, exclude)
    layer_paths = [p for p in paths if _LAYER.match(p)]
    if not layer_paths or not _collapse(params, layer_paths):
        return paths
    first = paths.index(layer_paths[0])
    rest = [p for p in paths if p not in layer_paths]
    return rest[:first] + [MODEL] + rest[first:]


def _collapse(params: Sequence[dict[str, Any]], layer_paths: list[str]) -> bool:
    shapes = {tuple(layer.get("type") for layer in layers_of(p)) for p in params}
    return len(shapes) > 1 or len(layer_paths) > MAX_LAYER_PATHS


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """Name each key as briefly as stays unique among `keys`: an alias, else its last dotted steps.

    `model.layers[0].units` is `units`, or `layers[0].units` when another layer's units is a key too.
    """
    steps = {key: _steps(key) for key in keys}
    names: dict[str, str] = {}
    for key in keys:
        alias = ALIASES.get(key)
        if alias and not any(other != key and _suffix(steps[other], 1) == alias for other in keys):
            names[key] = alias
            continue
        for length in range(1, len(steps[key]) + 1):
            candidate = _suffix(steps[key], length)
            clash = any(
                other != key and (_suffix(steps[other], length) == candidate or ALIASES.get(other) == candidate)
                for other in keys
            )
            if not clash:
                names[key] = candidate.removeprefix("model.")
                break
        else:
            names[key] = key
    return names


def _steps(key: str) -> list[str]:
    return key.split(".")


def _suffix(steps: list[str], length: int) -> str:
    return ".".join(steps[-length:])


def is_layer_path(key: str) -> bool:
    """Tell whether a dotted path is a layer's field (`model.layers[2].rate`)."""
    return bool(_LAYER.match(key))


def stamps(run_dirs: Sequence[Path]) -> list[str]:
    """Name runs when nothing else tells them apart: their folder's timestamp, or more of the path if shared."""
    names = [Path(d).name for d in run_dirs]
    if len(set(names)) == len(names):
        return names
    longer = [f"{Path(d).resolve().parent.name}/{Path(d).name}" for d in run_dirs]
    return longer if len(set(longer)) == len(longer) else [str(d) for d in run_dirs]


def value_of(params: dict[str, Any], key: str) -> Any:
    """Return a run's value of a label key: a spec value, or the compact stack for `MODEL`."""
    return layer_stack(params) if key == MODEL else params.get(key)


def layers_of(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Rebuild the layer list from a flattened config: `[{"type": "dense", "units": 8, ...}, ...]`."""
    layers: dict[int, dict[str, Any]] = {}
    for key, value in params.items():
        match = _LAYER.match(key)
        if match:
            layers.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return [layers[i] for i in sorted(layers)]


def layer_stack(params: dict[str, Any]) -> str:
    """Spell a layer stack compactly, one dash-separated code per layer.

    `64relu` is dense with 64 units and relu (a linear dense layer is its units alone, `1`),
    `d0.3` dropout at rate 0.3, `bn` batch normalization, an activation layer its activation's name.
    Other layer fields (initializers, regularizers, momentum) are not spelled.
    """
    codes = []
    for layer in layers_of(params):
        kind = layer.get("type")
        if kind == "dense":
            activation = layer.get("activation")
            codes.append(f"{layer.get('units')}{'' if activation in (None, 'linear') else activation}")
        elif kind == "dropout":
            codes.append(f"d{text(layer.get('rate'))}")
        elif kind == "batch_normalization":
            codes.append("bn")
        elif kind == "activation":
            codes.append(str(layer.get("activation")))
        else:
            codes.append(str(kind))
    return "-".join(codes) or "-"


def shown(key: str, value: Any) -> str:
    """Write a label key's value for a person: a file by its name, anything else as `text` does."""
    if key in PATHS and isinstance(value, str):
        return Path(value).name
    return text(value)


def text(value: Any) -> str:
    """Write a value for a label: numbers briefly (`0.001`, `1e-05`), lists without spaces (`[a,b]`)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(text(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return str(value)


def run_labels(params: Sequence[dict[str, Any] | None], stamps: Sequence[str]) -> list[str]:
    """Label runs by what differs between them; `stamps` name a run when nothing does.

    A run whose config could not be read (None) is named by its stamp. Runs of several specs are
    named by spec name, then by what differs among the runs of that name. Two runs that would
    share a label get their stamp appended.
    """
    known = [i for i, p in enumerate(params) if p is not None]
    labels = list(stamps)
    names = {params[i].get("name") for i in known}
    if len(names) > 1:
        for name in dict.fromkeys(params[i].get("name") for i in known):
            group = [i for i in known if params[i].get("name") == name]
            parts = _parts([params[i] for i in group])
            for i, part in zip(group, parts):
                labels[i] = f"{name} {part}" if part else str(name)
    else:
        for i, part in zip(known, _parts([params[i] for i in known])):
            labels[i] = part or stamps[i]
    return _unique(labels, stamps)


def _parts(params: list[dict[str, Any]]) -> list[str]:
    """The `key=value` words of each run's label, empty when nothing differs."""
    if len(params) < 2:
        return [""] * len(params)
    keys = label_keys(params)
    names = short_names(keys)
    return [" ".join(f"{names[k]}={shown(k, value_of(p, k))}" for k in keys) for p in params]


def _unique(labels: list[str], stamps: Sequence[str]) -> list[str]:
    out = []
    for label, stamp in zip(labels, stamps):
        out.append(label if labels.count(label) == 1 or label == stamp else f"{label} {stamp}")
    if len(set(out)) < len(out):  # the same stamp in two trees: number them
        out = [f"{label} #{i + 1}" if out.count(label) > 1 else label for i, label in enumerate(out)]
    return out


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, (list, dict)) else value
