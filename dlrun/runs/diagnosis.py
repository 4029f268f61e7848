"""Read a run's learning curves as the course teaches: underfit, overfit, unstable, plateau, or healthy.

`diagnose` is the one reader: the end of `dlrun train`, summary.json's `diagnosis`, `dlrun diagnose`,
the `fit` column of compare and sweep tables, and the loss plot all take their reading from it. It
works on a history alone (any Keras CSVLogger file) and says more with the run's summary.json (its
best epoch, epoch limit, status and baseline) and config (for `--set` lines with real values).

The best epoch is `dlrun.runs.history.best_of`'s, never a second rule. Every finding carries its
evidence (epochs and numbers) and the spec changes worth trying. Pure Python: no TensorFlow, no pandas.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from dlrun.runs.history import VAL, History, best_of
from dlrun.spec.yamltext import node_at

# --- thresholds --------------------------------------------------------------------------------
# An epoch's training loss is a mean over all its batches, so in healthy training it falls (or
# wobbles a little) from one epoch to the next; these say how much more than that is a symptom.

JUMP = 0.5
"""A rise of the training loss by more than half its previous epoch's value is a jump (dropout and
small batches wobble it by a few percent, not by half)."""
JUMP_OF_PROGRESS = 0.1
"""...and only when the rise also undoes a tenth of the progress made since epoch 1, so that noise
near zero (1e-5 -> 2e-5) is not a jump."""
JUMPS = 2
"""Jumps needed to call training unstable: one spike that recovers happens (a bad batch); repeated
ones mean the steps are too large."""
DIVERGED = 2.0
"""A training loss above twice the first epoch's mean has diverged: the first epoch averages the
untrained model's loss, which training only lowers."""

OVERFIT_RISE = 0.10
"""val_loss must end at least 10% above its best for overfitting: epoch-to-epoch noise of a few
hundred validation rows is a few percent (the course's diabetes runs wobble by 3-9%)."""
OVERFIT_MIN_EPOCHS = 3
"""Epochs after the best one needed to see a rise rather than one noisy epoch."""
TAIL = 3
"""The rise is measured to the lowest val_loss of the last 3 epochs, so one spike at the end is not a trend."""
OVERFIT_NOISE = 3.0
"""...and it must be over 3 times the curve's noise after the best epoch (the median distance of a value
from the middle of its neighbours: a straight trend has none), so that a flat, noisy curve is not read
as a climb."""
OVERFIT_OF_SCALE = 0.01
"""...and over 1% of what the model gained: the gap from the best val_loss to the baseline, or, without
a baseline, its fall since epoch 1. A val_loss near zero can rise 29% (0.0059 -> 0.0077 at accuracy
1.0) while being 0.2% of the gap: nothing a user would see in the predictions."""

STILL_IMPROVING_WINDOW = 0.1
"""The last tenth of the epochs (at least one) is where "still improving" is looked for."""
STILL_IMPROVING_SHARE = 0.03
"""...and it must bring 3% of the whole fall since epoch 1: a converged curve brings well under 1%
there (the course's lessons: 0.1-0.2%); an exponential decay stopped within two time constants
(with over 13% of its fall still to come) brings 3.5% or more."""
STRAIGHT = 0.5
"""A descent whose last stretch still falls at half its average rate or more has not started to
level off: a slow, straight descent, the course's sign of a learning rate too low."""
STRAIGHT_MIN_EPOCHS = 5
"""Fewer epochs than this cannot tell a straight descent from a curve."""
NEAR_LAST = 0.02
"""A best epoch in the last 2% of the epochs (the last two at least) is at the last epoch: a long curve
still falling often has its best a step before the end by noise."""
TREND_EPOCHS = 10
"""The trend at the end is a straight line fitted to the last tenth of the epochs, 10 at least..."""
TREND_NOISE = 3.0
"""...which must fall over that stretch by more than 3 times the scatter around it (pure noise does
that about once in a thousand curves)..."""
TREND_OF_SCALE = 0.01
"""...and by 1% of the scale that matters (the gap to the baseline, or the fall since epoch 1): a curve
that still slides by a hair is converged. A run whose best epoch is at the last one and whose curve
passes both was stopped by its epoch limit, not by the data: "still improving at the last epoch"."""

NEAR_BASELINE = 0.10
"""A best val_loss less than 10% better than the best constant prediction has learned little (the
course's diabetes models beat the median by about 30%)."""
NO_BETTER = 0.01
"""Within 1% of the baseline is no better than it: validation noise alone moves val_loss that much."""
GAP_OPENING = 0.05
"""A training loss that falls 5% more after the best epoch, while val_loss does not improve, is the
start of overfitting (said in a healthy reading, not a finding of its own)."""

PLATEAU_MIN_EPOCHS = 10
"""A plateau is at least 10 epochs past the best one..."""
PLATEAU_SHARE = 0.25
"""...and a quarter of the run: a shorter tail is what early stopping's patience leaves anyway."""

MIN_EPOCHS = 2
"""A single epoch is a point, not a curve: nothing but a NaN can be read from it."""

EARLY_STOPPING = {"patience": 20, "restore_best_weights": True}
"""The early stopping suggested when a spec has none: the course's patience (lesson 4)."""
DROPOUT_RATE = 0.3
"""The dropout rate suggested: the course's (lesson 5)."""
MAX_DROPOUT_RATE = 0.5


class Kind(str, Enum):
    """What a finding says about the curves."""

    UNSTABLE = "unstable"
    OVERFIT = "overfit"
    UNDERFIT = "underfit"
    PLATEAU = "plateau"
    HEALTHY = "healthy"

    def __str__(self) -> str:
        return self.value


FIT_ORDER = (Kind.UNSTABLE, Kind.OVERFIT, Kind.UNDERFIT)
"""The `fit` column names the first of these a run shows; plateau and healthy runs are `ok`."""
OK = "ok"


@dataclass
class Suggestion:
    """A spec change worth trying: one `--set` override and why."""

    override: str
    """PATH=VALUE, as `--set` takes it."""
    why: str

    @property
    def option(self) -> str:
        """The override as a shell word: `--set 'training.early_stopping={patience: 20}'`."""
        return f"--set {shlex.quote(self.override)}"

    def to_dict(self) -> dict[str, str]:
        return {"set": self.override, "why": self.why}


@dataclass
class Finding:
    """One reading of the curves: what, the evidence in epochs and numbers, and what to try."""

    kind: Kind
    summary: str
    """One line: what the curves show."""
    evidence: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    """The evidence as data (epochs from 1, values as logged), for summary.json and tests."""
    suggestions: list[Suggestion] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "summary": self.summary,
            "evidence": list(self.evidence),
            "numbers": dict(self.numbers),
            "suggestions": [s.to_dict() for s in self.suggestions],
        }


@dataclass
class Diagnosis:
    """Every finding about one run, the most pressing first."""

    findings: list[Finding]
    epochs: int
    """Epochs the history holds."""

    @property
    def fit(self) -> str | None:
        """underfit / overfit / unstable / ok for a table; None when too few epochs to read."""
        kinds = {f.kind for f in self.findings}
        for kind in FIT_ORDER:
            if kind in kinds:
                return str(kind)
        return OK if self.findings else None

    def find(self, kind: Kind) -> Finding | None:
        return next((f for f in self.findings if f.kind == kind), None)

    def to_dict(self) -> dict[str, Any]:
        return {"fit": self.fit, "findings": [f.to_dict() for f in self.findings]}


# --- the reading -------------------------------------------------------------------------------


@dataclass
class _Reading:
    """One sign of underfitting, before the finding is put together."""

    summary: str
    evidence: list[str]
    numbers: dict[str, Any]
    suggestions: list[Suggestion]


@dataclass
class _Curves:
    """What the reading works on: positions 0..n-1, epochs as logged, and what the run's files add."""

    epochs: list[int]
    loss: list[float]
    val: list[float] | None
    """val_loss, or None when the run logged no validation."""
    best: int | None
    """Position of the best epoch (`best_of`)."""
    monitor: str
    monitored: list[float] | None
    """The monitor's values, None when the history has none."""
    mode: str
    min_delta: float
    summary: dict[str, Any]
    config: dict[str, Any] | None

    @property
    def n(self) -> int:
        return len(self.epochs)

    @property
    def watched(self) -> list[float]:
        """The loss curve the reading speaks of: val_loss, or the training loss without validation."""
        return self.val if self.val is not None else self.loss

    def lower_better(self) -> list[float] | None:
        """The monitored quantity (the one the best epoch is chosen on), negated when higher is better."""
        values = self.monitored
        if values is None:
            return None
        return list(values) if self.mode == "min" else [-v for v in values]

    def setting(self, *path: str | int) -> Any:
        """A value of the run's config.yaml, None when unknown."""
        return node_at(self.config, path)


def diagnose(history: History, summary: dict | None = None, config: dict | None = None) -> Diagnosis:
    """Read a run's learning curves.

    Args:
        history: The run's history (`dlrun.runs.history.read_history`).
        summary: Its summary.json, when there is one: the best epoch, the epoch limit, the status and
            the baseline sharpen the reading.
        config: Its config.yaml as data, when known: suggestions then carry real values.

    Returns:
        The findings, most pressing first: unstable, overfit, underfit, plateau; or one "healthy"
        finding; none for fewer than `MIN_EPOCHS` epochs without a NaN.
    """
    summary = summary or {}
    c = _curves(history, summary, config)
    unstable = _unstable(c)
    if unstable is None and c.n < MIN_EPOCHS:
        return Diagnosis([], c.n)
    overfit = _overfit(c) if unstable is None else None
    # A jumpy or overfitting curve is not "still improving"; a best val_loss near the baseline is
    # worth saying whatever else is wrong (an unstable run often ends up predicting the prior).
    cut = _still_improving(c) if unstable is None and overfit is None else None
    near = _near_baseline(c)
    findings = [f for f in (unstable, overfit, _underfit(cut, near, unstable is None)) if f is not None]
    if not findings:
        findings.append(_plateau(c) or _healthy(c))
    return Diagnosis(findings, c.n)


def _curves(history: History, summary: dict, config: dict | None) -> _Curves:
    best = best_of(history, summary)
    val = history.values.get(VAL + "loss") if history.has_values(VAL + "loss") else None
    position = history.epochs.index(best.epoch) if best.epoch is not None else None
    return _Curves(
        list(history.epochs),
        list(history.values.get("loss", [math.nan] * len(history))),
        list(val) if val is not None else None,
        position,
        best.monitor,
        list(history.values[best.monitor]) if history.has_values(best.monitor) else None,
        best.mode,
        best.min_delta,
        summary,
        config,
    )


def _unstable(c: _Curves) -> Finding | None:
    """Training loss that became NaN, diverged, ended above its start, or jumped up again and again."""
    loss = c.loss
    bad = next((i for i, v in enumerate(loss) if not math.isfinite(v)), None)
    if bad is None and c.summary.get("status") == "nan":
        bad = c.n - 1
    evidence, numbers = [], {}
    if bad is not None:
        evidence.append(f"the loss became NaN or infinite at epoch {c.epochs[bad]}")
        numbers["nan_epoch"] = c.epochs[bad]
    finite = [(i, v) for i, v in enumerate(loss) if math.isfinite(v)]
    if len(finite) >= 2:
        first = finite[0][1]
        top_i, top = max(finite[1:], key=lambda t: t[1])
        if first > 0 and top > DIVERGED * first:
            evidence.append(
                f"the loss rose from {_num(first)} at epoch {c.epochs[0]} to {_num(top)} at epoch "
                f"{c.epochs[top_i]}, {top / first:.3g} times the first epoch's"
            )
            numbers |= {"diverged_epoch": c.epochs[top_i], "diverged_loss": top, "first_loss": first}
        jumps = _jumps(finite)
        if len(jumps) >= JUMPS:
            biggest = max(r for _, r in jumps)
            where = ", ".join(str(c.epochs[i]) for i, _ in jumps[:6]) + (", ..." if len(jumps) > 6 else "")
            evidence.append(f"the loss jumped up {len(jumps)} times (epochs {where}), {_rise(biggest)} in one epoch")
            numbers |= {"jumps": len(jumps), "jump_epochs": [c.epochs[i] for i, _ in jumps]}
        last_i, last = finite[-1]
        if evidence and last > first:  # on its own, a flat curve that ends a little higher is not unstable
            evidence.append(f"the loss ended above where it started ({_num(last)} at epoch {c.epochs[last_i]})")
            numbers["final_loss"] = last
    if not evidence:
        return None
    lr = c.setting("training", "optimizer", "learning_rate")
    suggestions = []
    if isinstance(lr, (int, float)):
        suggestions.append(
            Suggestion(f"training.optimizer.learning_rate={lr / 10:g}", f"steps a tenth as large (it is {lr:g})")
        )
    if c.setting("data", "scale") == "none":
        suggestions.append(Suggestion("data.scale=standard", "features of very different sizes make steps uneven"))
    what = "diverged" if bad is not None or "diverged_epoch" in numbers else "jumps up and down"
    return Finding(
        Kind.UNSTABLE,
        f"unstable: the training loss {what}; the learning rate is likely too high",
        evidence,
        numbers,
        suggestions,
    )


def _jumps(finite: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Positions where the training loss rose by a jump, with the rise as a fraction of the previous value."""
    first = finite[0][1]
    progress = first - min(v for _, v in finite)
    found = []
    for (_, before), (i, value) in zip(finite, finite[1:]):
        rise = value - before
        if before > 0 and rise > JUMP * before and rise > JUMP_OF_PROGRESS * max(progress, 0.0):
            found.append((i, rise / before))
    return found


def _overfit(c: _Curves) -> Finding | None:
    """val_loss climbing away from its best while the training loss keeps falling."""
    if c.val is None or c.best is None or c.n - 1 - c.best < OVERFIT_MIN_EPOCHS:
        return None
    b, val, loss = c.best, c.val, c.loss
    tail = [i for i in range(max(b + 1, c.n - TAIL), c.n) if math.isfinite(val[i])]
    if not tail or not math.isfinite(val[b]) or val[b] == 0:
        return None
    end = min(tail, key=lambda i: val[i])
    rise = val[end] - val[b]
    if rise <= max(OVERFIT_RISE * abs(val[b]), c.min_delta) or not loss[end] < loss[b]:
        return None
    if rise <= OVERFIT_NOISE * _noise(val[b:]) or rise < OVERFIT_OF_SCALE * _scale(c, val, b, True):
        return None
    epoch = c.epochs[b]
    fell = (loss[b] - loss[end]) / loss[b] if loss[b] > 0 else None
    by = "" if c.monitor == VAL + "loss" else f" (the best epoch by {c.monitor})"
    evidence = [
        f"val_loss was {_num(val[b])} at epoch {epoch}{by} and {_num(val[end])} at epoch {c.epochs[end]} "
        f"(+{rise / abs(val[b]):.0%}), while the training loss fell from {_num(loss[b])} to {_num(loss[end])}"
        + (f" (-{fell:.0%})" if fell is not None else "")
    ]
    held = c.summary.get("model_epoch")
    if held == epoch and epoch != c.epochs[-1]:
        evidence.append(f"model.keras holds epoch {epoch}'s weights (restore_best_weights): from before the rise")
    elif held is not None:
        evidence.append(f"model.keras holds epoch {held}, {c.epochs[-1] - epoch} epochs into the rise")
    numbers = {
        "from_epoch": epoch,
        "to_epoch": c.epochs[-1],
        "best_val_loss": val[b],
        "val_loss": val[end],
        "val_loss_epoch": c.epochs[end],
        "rise": rise / abs(val[b]),
        "loss_at_best": loss[b],
        "loss": loss[end],
    }
    return Finding(
        Kind.OVERFIT,
        f"overfit from epoch {epoch}: val_loss rose {rise / abs(val[b]):.0%} while the training loss fell",
        evidence,
        numbers,
        _overfit_suggestions(c, epoch),
    )


def _overfit_suggestions(c: _Curves, epoch: int) -> list[Suggestion]:
    if c.config is None:
        return []
    found = []
    if c.setting("training", "early_stopping") is None:
        found.append(
            Suggestion(
                f"training.early_stopping={_flow(EARLY_STOPPING)}",
                "stop once val_loss has not improved for 20 epochs and keep the best epoch's weights",
            )
        )
        found.append(Suggestion(f"training.epochs={epoch}", f"or simply stop at epoch {epoch}, the best one"))
    layers = c.setting("model", "layers") or []
    dropouts = [i for i, layer in enumerate(layers) if isinstance(layer, dict) and layer.get("type") == "dropout"]
    if dropouts:
        for i in dropouts:
            rate = layers[i].get("rate", 0)
            if isinstance(rate, (int, float)) and rate < MAX_DROPOUT_RATE:
                new = min(MAX_DROPOUT_RATE, round(rate + 0.2, 2))
                found.append(Suggestion(f"model.layers[{i}].rate={new:g}", f"more dropout (it is {rate:g})"))
    else:
        with_dropout = _with_dropout(layers)
        if with_dropout is not None:
            found.append(
                Suggestion(
                    f"model.layers={with_dropout}",
                    f"dropout (rate {DROPOUT_RATE:g}) after each hidden layer, as the course's lesson 5",
                )
            )
    return found


def _underfit(cut: _Reading | None, near: _Reading | None, suggest_near: bool) -> Finding | None:
    """Combine the two signs of underfitting: still improving at the end, and close to the baseline."""
    parts = [r for r in (cut, near) if r is not None]
    if not parts:
        return None
    # Still improving: more epochs or larger steps come first; a wider layer only helps a stuck curve.
    suggestions = cut.suggestions if cut is not None else near.suggestions if suggest_near else []
    numbers: dict[str, Any] = {}
    for part in parts:
        numbers |= part.numbers
    return Finding(
        Kind.UNDERFIT,
        parts[-1].summary if near is not None and near.numbers["better_than_baseline"] <= 0 else parts[0].summary,
        [line for part in parts for line in part.evidence],
        numbers,
        _unique(suggestions),
    )


def _still_improving(c: _Curves) -> _Reading | None:
    """Training stopped by its epoch count while the monitored quantity was still getting better."""
    values = c.lower_better()
    if values is None or c.best is None or c.summary.get("status") == "early-stopped":
        return None
    return _late_share(c, values) or _falling_at_the_end(c, values)


def _late_share(c: _Curves, values: list[float]) -> _Reading | None:
    """The best epoch in the last stretch, with a real share of the monitored quantity's progress still coming."""
    n, b = c.n, c.best
    window = min(n - 1, max(1, math.ceil(STILL_IMPROVING_WINDOW * n)))
    start = n - window
    before = [v for v in values[:start] if math.isfinite(v)]
    if b < start or not before or not math.isfinite(values[0]):
        return None
    gain = min(before) - values[b]
    fall = values[0] - values[b]
    rises = [values[i] - values[i - 1] for i in range(start, n) if values[i] > values[i - 1]]
    if fall <= 0 or gain <= max([c.min_delta, *rises]) or gain < STILL_IMPROVING_SHARE * fall:
        return None
    sign = 1 if c.mode == "min" else -1
    evidence = [
        f"{c.monitor} was still {'falling' if sign == 1 else 'rising'} {_ended(c)}: from {_num(sign * min(before))} "
        f"(its best before epoch {c.epochs[start]}) to {_num(sign * values[b])} at epoch {c.epochs[b]}; "
        f"{_last(window)} brought {gain / fall:.0%} of its progress since epoch {c.epochs[0]}"
    ]
    numbers: dict[str, Any] = {"still_improving": True, "last_share": gain / fall, "window": window}
    straight = False
    if n >= STRAIGHT_MIN_EPOCHS and b > 0:
        rate, average = gain / window, fall / b
        straight = rate >= STRAIGHT * average
        numbers["straight"] = straight
        if straight:
            evidence.append(
                f"the progress has not started to level off ({_last(window)} moved at {rate / average:.0%} of the "
                "average rate): a slow, steady descent is the sign of a learning rate too low"
            )
    summary = f"underfit: still improving {'at the epoch limit' if _hit_limit(c) else 'when training ended'}"
    return _Reading(summary, evidence, numbers, _more_epochs(c, straight))


def _falling_at_the_end(c: _Curves, values: list[float]) -> _Reading | None:
    """The best epoch at the last one, on a trend still falling by more than its noise and the scale's 1%."""
    n, b = c.n, c.best
    if n < STRAIGHT_MIN_EPOCHS or b < n - 1 - max(1, math.floor(NEAR_LAST * n)):
        return None
    window = min(n, max(TREND_EPOCHS, math.ceil(STILL_IMPROVING_WINDOW * n)))
    stretch = values[n - window :]
    if not all(math.isfinite(v) for v in stretch) or not math.isfinite(values[0]):
        return None
    slope, scatter = _line(stretch)
    fall = -slope * (window - 1)
    scale = _scale(c, values, b, c.monitor == VAL + "loss")
    if fall <= max(c.min_delta, TREND_NOISE * scatter) or fall < TREND_OF_SCALE * scale:
        return None
    sign = 1 if c.mode == "min" else -1
    first = c.epochs[n - window]
    evidence = [
        f"{c.monitor} was still {'falling' if sign == 1 else 'rising'} {_ended(c)}: its best is epoch {c.epochs[b]} "
        f"of {c.epochs[-1]} ({_num(sign * values[b])}), and a straight line through epochs {first}-{c.epochs[-1]} "
        f"{'falls' if sign == 1 else 'rises'} by {_num(fall)}"
        + (f", {fall / scatter:.3g} times the scatter around it" if scatter > 0 else "")
    ]
    numbers = {"still_improving": True, "trend": sign * -fall, "trend_epochs": window, "scatter": scatter}
    return _Reading("underfit: still improving at the last epoch", evidence, numbers, _more_epochs(c, False))


def _hit_limit(c: _Curves) -> bool:
    limit = c.summary.get("epochs")
    return isinstance(limit, int) and c.epochs[-1] >= limit


def _ended(c: _Curves) -> str:
    if _hit_limit(c):
        return f"at epoch {c.epochs[-1]}, the limit (training.epochs)"
    return f"when training ended (epoch {c.epochs[-1]})"


def _more_epochs(c: _Curves, straight: bool) -> list[Suggestion]:
    """More epochs (and larger steps for a straight descent), with early stopping to end them."""
    suggestions = []
    lr = c.setting("training", "optimizer", "learning_rate")
    epochs = c.setting("training", "epochs") or c.summary.get("epochs")
    if straight and isinstance(lr, (int, float)):
        suggestions.append(Suggestion(f"training.optimizer.learning_rate={lr * 10:g}", f"larger steps (it is {lr:g})"))
    if isinstance(epochs, int):
        suggestions.append(Suggestion(f"training.epochs={2 * epochs}", f"twice the epochs (it is {epochs})"))
    if c.config is not None and c.setting("training", "early_stopping") is None:
        suggestions.append(
            Suggestion(
                f"training.early_stopping={_flow(EARLY_STOPPING)}",
                "with more epochs, stop once val_loss stops improving and keep the best weights",
            )
        )
    return suggestions


def _near_baseline(c: _Curves) -> _Reading | None:
    """A best val_loss no better, or little better, than always predicting one constant."""
    baseline = (c.summary.get("baseline") or {}).get("loss")
    if c.val is None or c.best is None or not isinstance(baseline, (int, float)) or baseline <= 0:
        return None
    best = c.val[c.best]
    if not math.isfinite(best):
        return None
    share = (baseline - best) / baseline
    if share >= NEAR_BASELINE:
        return None
    constant = (c.summary.get("baseline_constants") or {}).get("loss") or {}
    always = f"always predicting {constant['rule']}" if constant.get("rule") else "the best constant prediction"
    epoch = c.epochs[c.best]
    if share < NO_BETTER:
        summary = "underfit: no better than a constant prediction; the model learned nothing usable"
        line = f"best val_loss {_num(best)} (epoch {epoch}) is no better than the baseline {_num(baseline)}"
    else:
        summary = f"underfit: only {share:.0%} better than a constant prediction"
        line = f"best val_loss {_num(best)} (epoch {epoch}) is only {share:.0%} below the baseline {_num(baseline)}"
    line += f", the score of {always} on the validation rows"
    evidence = [line]
    numbers = {"baseline": baseline, "best_val_loss": best, "better_than_baseline": share}
    suggestions = []
    lr = c.setting("training", "optimizer", "learning_rate")
    if isinstance(lr, (int, float)):
        suggestions.append(Suggestion(f"training.optimizer.learning_rate={lr * 10:g}", f"larger steps (it is {lr:g})"))
    layers = c.setting("model", "layers") or []
    hidden = [i for i, layer in enumerate(layers[:-1]) if isinstance(layer, dict) and layer.get("type") == "dense"]
    if hidden:
        units = layers[hidden[0]].get("units")
        if isinstance(units, int):
            suggestions.append(Suggestion(f"model.layers[{hidden[0]}].units={2 * units}", "a wider first layer"))
    return _Reading(summary, evidence, numbers, suggestions)


def _plateau(c: _Curves) -> Finding | None:
    """Many epochs past the best one without improving or rising: epochs spent learning nothing."""
    if c.best is None or c.summary.get("status") == "early-stopped":
        return None
    after = c.n - 1 - c.best
    if after < max(PLATEAU_MIN_EPOCHS, PLATEAU_SHARE * c.n):
        return None
    epoch = c.epochs[c.best]
    value = c.monitored[c.best] if c.monitored is not None else math.nan
    evidence = [
        f"{c.monitor} was best at epoch {epoch} ({_num(value)}); the {after} epochs after it neither improved "
        "on it nor got clearly worse"
    ]
    suggestions = []
    if c.config is not None:
        stop = c.setting("training", "early_stopping")
        if stop is None:
            suggestions.append(
                Suggestion(
                    f"training.early_stopping={_flow(EARLY_STOPPING)}",
                    "stop once val_loss has not improved for 20 epochs",
                )
            )
        elif isinstance(stop, dict) and isinstance(stop.get("patience"), int) and stop["patience"] > after:
            suggestions.append(
                Suggestion(
                    "training.early_stopping.patience=20", f"a patience of {stop['patience']} never ends the run"
                )
            )
    return Finding(
        Kind.PLATEAU,
        f"plateau: no improvement in the last {after} epochs",
        evidence,
        {"best_epoch": epoch, "epochs_after": after},
        suggestions,
    )


def _healthy(c: _Curves) -> Finding:
    """No symptom: say what the curve did, so "healthy" comes with its numbers too."""
    values = c.watched
    if c.best is None or not math.isfinite(values[c.best]):
        return Finding(Kind.HEALTHY, "looks healthy", [], {})
    epoch = c.epochs[c.best]
    column = VAL + "loss" if c.val is not None else "loss"
    line = f"{column} fell from {_num(values[0])} at epoch {c.epochs[0]} to {_num(values[c.best])} at epoch {epoch}"
    baseline = (c.summary.get("baseline") or {}).get("loss")
    numbers: dict[str, Any] = {"best_epoch": epoch, "best_val_loss": values[c.best]}
    if c.val is not None and isinstance(baseline, (int, float)) and baseline > 0:
        share = (baseline - values[c.best]) / baseline
        line += f", {share:.0%} below the baseline {_num(baseline)}"
        numbers["better_than_baseline"] = share
    evidence = [line]
    after = c.n - 1 - c.best
    stopped = c.summary.get("status") == "early-stopped"
    if stopped:
        evidence.append(f"early stopping ended the run {after} epochs later")
    loss = c.loss
    if c.val is not None and after > 0 and math.isfinite(loss[-1]) and loss[c.best] > 0:
        fell = (loss[c.best] - loss[-1]) / loss[c.best]
        if fell >= GAP_OPENING:
            evidence.append(
                f"meanwhile the training loss fell another {fell:.0%} ({_num(loss[c.best])} to {_num(loss[-1])}) "
                "while val_loss did not improve: the start of overfitting"
                + (", which early stopping cut short" if stopped else "")
            )
            numbers["loss_fell_after_best"] = fell
            if stopped:
                return Finding(
                    Kind.HEALTHY, "looks healthy: early stopping cut the start of overfitting short", evidence, numbers
                )
    return Finding(Kind.HEALTHY, "looks healthy", evidence, numbers)


# --- helpers -----------------------------------------------------------------------------------


def _noise(values: list[float]) -> float:
    """A curve's epoch-to-epoch noise: the median distance of a value from the middle of its neighbours."""
    found = sorted(
        abs(mid - (before + after) / 2)
        for before, mid, after in zip(values, values[1:], values[2:])
        if math.isfinite(before) and math.isfinite(mid) and math.isfinite(after)
    )
    return found[len(found) // 2] if found else 0.0


def _line(values: list[float]) -> tuple[float, float]:
    """The least-squares slope of values over their positions, and the scatter (standard deviation) around it."""
    n = len(values)
    x_mean, y_mean = (n - 1) / 2, sum(values) / n
    sxx = sum((x - x_mean) ** 2 for x in range(n))
    slope = sum((x - x_mean) * (y - y_mean) for x, y in enumerate(values)) / sxx
    residuals = [y - (y_mean + slope * (x - x_mean)) for x, y in enumerate(values)]
    return slope, math.sqrt(sum(r * r for r in residuals) / max(1, n - 2))


def _scale(c: _Curves, values: list[float], best: int, val_loss: bool) -> float:
    """What the model gained, the scale a change is judged on: the gap from the best val_loss to the
    baseline, or, without one (or for another quantity), the fall since epoch 1 (0 when it did not fall)."""
    baseline = (c.summary.get("baseline") or {}).get("loss")
    if val_loss and isinstance(baseline, (int, float)) and baseline > values[best]:
        return baseline - values[best]
    return max(0.0, values[0] - values[best]) if math.isfinite(values[0]) else 0.0


def _with_dropout(layers: list) -> str | None:
    """The layer list with a dropout layer after each hidden dense layer, as one YAML flow value."""
    from dlrun.spec.models import ModelSpec  # pydantic: only when a suggestion needs the layers

    try:
        parsed = ModelSpec.model_validate({"layers": layers}).layers
    except ValueError:
        return None
    plain = [layer.model_dump(mode="json", exclude_defaults=True) for layer in parsed]
    for layer, model in zip(plain, parsed):
        layer["type"] = model.type  # a Literal with no default: kept, but say it explicitly
    last = max(i for i, layer in enumerate(plain) if layer["type"] == "dense")
    out = []
    for i, layer in enumerate(plain):
        out.append(layer)
        if layer["type"] == "dense" and i < last:
            out.append({"type": "dropout", "rate": DROPOUT_RATE})
    if len(out) == len(plain):
        return None  # no hidden layer to put dropout after
    return _flow(out)


def _flow(value: Any) -> str:
    """A value as one line of YAML flow style, as `--set` reads it."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6).strip()


def _unique(suggestions: list[Suggestion]) -> list[Suggestion]:
    seen: dict[str, Suggestion] = {}
    for s in suggestions:
        seen.setdefault(s.override.partition("=")[0], s)
    return list(seen.values())


def _num(value: float) -> str:
    return f"{value:.4g}"


def _last(window: int) -> str:
    return "the last epoch" if window == 1 else f"the last {window} epochs"


def _rise(fraction: float) -> str:
    """Word a rise: `by up to 80%`, or `up to 17 times the previous value` for a big one."""
    return f"by up to {fraction:.0%}" if fraction < 1 else f"up to {fraction + 1:.3g} times the previous value"
