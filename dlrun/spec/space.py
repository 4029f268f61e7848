"""The search space's small grammar: `loguniform(1e-4,1e-1)`, `int(4,256,log)`, `choice(32,64,256)`.

A distribution written as text (in a spec's `search:` section or in `dlrun tune --set PATH=DIST`) is
read here into the mapping form the spec models validate (`{type: float, low: ..., high: ..., log: true}`),
and written back for display. Values are read as YAML, never evaluated: `choice([a,b],[a,c])` is two
lists. The ranges themselves (low below high, a log scale above 0, ...) are checked by the models.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from dlrun.spec.yamltext import parse_value, split_values, value_text

NAMES = ("float", "uniform", "loguniform", "int", "choice")
"""The distributions the grammar knows: uniform is float, loguniform is float with log."""
EXAMPLES = "loguniform(1e-4,1e-1), float(0,0.5), float(0,0.5,step=0.1), int(4,256,log), int(1,9,step=2), choice(32,64)"

_CALL = re.compile(r"^\s*([A-Za-z_]+)\s*\((.*)\)\s*$", re.DOTALL)


def looks_like_distribution(text: str) -> bool:
    """Tell whether override text is meant as a distribution: one of `NAMES` called with arguments."""
    match = _CALL.match(text)
    return bool(match) and match.group(1) in NAMES


def misspelled_distribution(text: str) -> str | None:
    """Return the distribution a call with an unknown name was likely meant as (`logunifrom(...)`), or None."""
    from dlrun.spec.names import closest

    match = _CALL.match(text)
    if not match or match.group(1) in NAMES:
        return None
    return closest(match.group(1), NAMES)


def split_sets(sets: list[str]) -> tuple[list[str], list[str]]:
    """Split `--set` texts into overrides (`PATH=VALUE`) and distributions (`PATH=DIST`, for the search)."""
    distributions = [text for text in sets if looks_like_distribution(text.partition("=")[2])]
    return [text for text in sets if text not in distributions], distributions


def parse_distribution(text: str) -> dict[str, Any]:
    """Read a distribution's text into its mapping form (`type`, `low`, `high`, `log`, `step`, or `choices`).

    Raises:
        ValueError: not a known distribution, or arguments it does not take; the message says what was expected.
    """
    match = _CALL.match(text)
    if not match or match.group(1) not in NAMES:
        raise ValueError(f"{text!r} is not a distribution; expected one like {EXAMPLES}")
    name, inside = match.group(1), match.group(2)
    parts = [] if not inside.strip() else split_values(inside)
    if any(part == "" for part in parts):
        raise ValueError(f"{text!r}: an empty argument; remove the extra comma")
    try:
        if name == "choice":
            if not parts:
                raise ValueError(f"{text!r}: choice needs at least one value, like choice(32,64,256)")
            return {"type": "choice", "choices": [parse_value(part) for part in parts]}
        positional = [part for part in parts if not _keyword(part)]
        keywords = dict(_keyword(part) for part in parts if _keyword(part))
    except yaml.YAMLError as exc:
        raise ValueError(f"{text!r}: a value is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return _range(text, name, positional, keywords)


def _keyword(part: str) -> tuple[str, str] | None:
    """Split `step=0.1` into ("step", "0.1"); None for a positional argument."""
    key, sep, value = part.partition("=")
    return (key.strip(), value.strip()) if sep and re.fullmatch(r"\s*[A-Za-z_]+\s*", key) else None


def _range(text: str, name: str, positional: list[str], keywords: dict[str, str]) -> dict[str, Any]:
    kind = "int" if name == "int" else "float"
    flags = [p for p in positional[2:] if p.strip() == "log"]
    if len(positional) < 2 or len(positional) - len(flags) != 2:
        raise ValueError(
            f"{text!r}: expected {name}(LOW, HIGH"
            + (")" if name in ("uniform", "loguniform") else ", log) or " + f"{name}(LOW, HIGH, step=STEP)")
        )
    unknown = sorted(set(keywords) - {"step", "log"} if name not in ("uniform", "loguniform") else set(keywords))
    if unknown:
        allowed = "none" if name in ("uniform", "loguniform") else "step=STEP and log"
        raise ValueError(f"{text!r}: unknown argument {unknown[0]!r}; {name} takes {allowed}")
    result: dict[str, Any] = {"type": kind, "low": parse_value(positional[0]), "high": parse_value(positional[1])}
    log = bool(flags) or name == "loguniform"
    if "log" in keywords:
        value = parse_value(keywords["log"])
        if not isinstance(value, bool):
            raise ValueError(f"{text!r}: log={keywords['log']} should be true or false (or write just log)")
        log = log or value
    if log:
        result["log"] = True
    if "step" in keywords:
        result["step"] = parse_value(keywords["step"])
    return result


def distribution_text(distribution: dict[str, Any]) -> str:
    """Write a distribution's mapping form back as grammar text, the shortest that reads the same."""
    if distribution["type"] == "choice":
        return f"choice({', '.join(value_text(v) for v in distribution['choices'])})"
    low, high = value_text(distribution["low"]), value_text(distribution["high"])
    if distribution["type"] == "float" and distribution.get("log"):
        return f"loguniform({low}, {high})"
    extra = ", log" if distribution.get("log") else ""
    step = distribution.get("step")
    if step is not None and not (distribution["type"] == "int" and step == 1):
        extra += f", step={value_text(step)}"
    return f"{distribution['type']}({low}, {high}{extra})"


def expand(value: Any) -> Any:
    """Turn a `search:` entry's short forms into the mapping form: grammar text, or a list (a choice).

    Raises:
        ValueError: text that is not a distribution.
    """
    if isinstance(value, str):
        return parse_distribution(value)
    if isinstance(value, list):
        return {"type": "choice", "choices": value}
    return value
