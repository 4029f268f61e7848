"""Read a spec: YAML with every key's line and column, `--set` overrides, errors that point at the place."""

from __future__ import annotations

import copy
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from dlrun.errors import Problem, SpecError
from dlrun.spec import names
from dlrun.spec.models import (
    DEFAULT_OPTIMIZER,
    LAYER_TYPES,
    SEARCH_TYPES,
    KerasMetric,
    KerasOptimizer,
    KerasSchedule,
    Spec,
    is_dataframe,
)
from dlrun.spec.space import NAMES, looks_like_distribution, misspelled_distribution
from dlrun.spec.yamltext import (  # noqa: F401 (re-exported: where the YAML rules were first)
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    SpecLoader,
    YAMLLimitError,
    node_at,
    parse_value,
    value_text,
)

Loc = tuple  # a path into the data: ("model", "layers", 2, "rate")


@dataclass
class Source:
    """A spec's data, and where in the file (or in which override) each value came from."""

    data: Any
    path: Path | None = None
    lines: list[str] = field(default_factory=list)
    marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    """(line, column), both 0-based, of each key (or list item) by its path."""
    overrides: dict[Loc, str] = field(default_factory=dict)
    """Override text (`PATH=VALUE`) by the path it set."""


def read_yaml(path: Path) -> Source:
    """Parse a YAML spec safely, remembering where each key is.

    Raises:
        SpecError: the file is missing, is not valid YAML, or uses tags that build Python objects.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SpecError(
            f"spec file not found: {path} (check the path; specs are YAML files like configs/*.yaml)"
        ) from None
    except IsADirectoryError:
        specs = sorted(p.name for p in path.glob("*.y*ml"))[:3]
        found = f" (it holds {', '.join(specs)}{', ...' if len(specs) == 3 else ''})" if specs else ""
        raise SpecError(f"{path} is a folder, not a spec file: give the path of a YAML spec{found}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"cannot read spec file {path}", [_not_utf8(path, exc)]) from None
    return parse_yaml(text, path)


def parse_yaml(text: str, path: Path) -> Source:
    """Parse YAML spec text safely, remembering where each key is (`path` names it in messages).

    Raises:
        SpecError: the text is empty, is not valid YAML, or uses tags that build Python objects.
    """
    loader = SpecLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError(f"{path}: the spec file is empty; it needs data, model and training sections")
        marks: dict[Loc, tuple[int, int]] = {}
        problems: list[Problem] = []
        _collect_marks(node, (), marks, problems, path, text.splitlines())
        if problems:
            raise SpecError(f"invalid spec {path}", problems)
        data = loader.construct_document(node)
    except YAMLLimitError as exc:
        mark = exc.problem_mark
        problem = Problem("", exc.problem, f"{path}:{mark.line + 1}:{mark.column + 1}", _line(text, mark.line))
        raise SpecError(f"invalid YAML in {path}", [problem]) from None
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        if "python/" in str(exc.problem):
            raise SpecError(
                f"{where}: this YAML tag would construct a Python object; dlrun loads specs safely "
                "(plain YAML only): remove the !!python tag"
            ) from None
        raise SpecError(f"{where}: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
        problem = Problem(
            "",
            f"YAML syntax error: {exc.problem}" + (f" ({exc.context})" if exc.context else ""),
            f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path),
            line.rstrip(),
        )
        raise SpecError(f"invalid YAML in {path}", [problem]) from None
    finally:
        loader.dispose()
    return Source(data=data, path=path, lines=text.splitlines(), marks=marks)


def _kind_of(node) -> str:
    return "list" if isinstance(node, yaml.SequenceNode) else "mapping"


def _line(text: str, number: int) -> str:
    lines = text.splitlines()
    return lines[number].rstrip()[:200] if number < len(lines) else ""


def _collect_marks(node, loc: Loc, marks, problems, path, lines) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):  # `? [a, b]` or `{a: 1}: 2`: YAML allows it, a spec not
                line = key_node.start_mark.line
                problems.append(
                    Problem(
                        _dotted(loc),
                        f"a key must be a name, not a {_kind_of(key_node)}",
                        f"{path}:{line + 1}:{key_node.start_mark.column + 1}",
                        lines[line].rstrip(),
                    )
                )
                continue
            key = key_node.value
            if key in seen:
                line = key_node.start_mark.line
                problems.append(
                    Problem(
                        _dotted(loc + (key,)),
                        f"key {key!r} appears twice at this level; keep one",
                        f"{path}:{line + 1}:{key_node.start_mark.column + 1}",
                        lines[line].rstrip(),
                    )
                )
            seen.add(key)
            marks[loc + (key,)] = (key_node.start_mark.line, key_node.start_mark.column)
            _collect_marks(value_node, loc + (key,), marks, problems, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            marks[loc + (index,)] = (item.start_mark.line, item.start_mark.column)
            _collect_marks(item, loc + (index,), marks, problems, path, lines)


# --- overrides --------------------------------------------------------------------------------

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_override_path(text: str) -> Loc:
    """Split `model.layers[1].rate` into ("model", "layers", 1, "rate")."""
    loc: list = []
    pos = 0
    for match in _STEP.finditer(text):
        between = text[pos : match.start()]
        if between not in ("", ".") or (between == "" and pos and match.group(1)):
            break
        loc.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        pos = match.end()
    if not loc or pos != len(text):
        raise SpecError(f"--set {text!r}: not a path like training.epochs or model.layers[1].rate")
    return tuple(loc)


def resolve_path(data: Any, loc: Loc) -> Loc:
    """Read a number step between dots as a list index where the spec has a list there, as Hydra does:
    `model.layers.0.units` is `model.layers[0].units`. Elsewhere it stays a key (`class_weight.1`)."""
    resolved: list = []
    node = data
    for step in loc:
        if isinstance(node, list) and isinstance(step, str) and step.isdigit():
            step = int(step)
        resolved.append(step)
        if isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        elif isinstance(node, dict):
            node = node.get(step)
        else:
            node = None
    return tuple(resolved)


def apply_overrides(source: Source, overrides: list[str]) -> None:
    """Apply `PATH=VALUE` overrides to the spec data; VALUE is read as YAML (`5`, `0.01`, `[a, b]`).

    Raises:
        SpecError: an override is malformed or points into a list item that does not exist.
    """
    for text in overrides:
        path_text, sep, value_text = text.partition("=")
        if not sep:
            raise SpecError(f"--set {text!r}: expected PATH=VALUE, like training.epochs=5")
        loc = resolve_path(source.data, parse_override_path(path_text.strip()))
        try:
            value = parse_value(value_text)
        except yaml.YAMLError as exc:
            raise SpecError(f"--set {text!r}: the value is not valid YAML ({getattr(exc, 'problem', exc)})") from None
        if not isinstance(source.data, dict):
            source.data = {}
        node = source.data
        for depth, step in enumerate(loc[:-1]):
            nxt = loc[depth + 1]
            if isinstance(node, list):
                if not isinstance(step, int) or step >= len(node):
                    raise SpecError(
                        f"--set {text!r}: {_dotted(loc[: depth + 1])} does not exist "
                        f"(the list has {len(node)} items, counted from 0)"
                    )
                child = node[step]
            elif isinstance(node, dict):
                if isinstance(step, int):
                    raise SpecError(f"--set {text!r}: {_dotted(loc[:depth])} is not a list")
                child = node.get(step)
                if isinstance(child, str) and step == "optimizer" and not isinstance(nxt, int):
                    child = {"name": child}  # `optimizer: adam` given as a bare name
                if child is None:
                    child = [] if isinstance(nxt, int) else {}
                node[step] = child
            else:
                raise SpecError(f"--set {text!r}: {_dotted(loc[:depth])} is not a mapping or a list")
            node = child
        last = loc[-1]
        if isinstance(node, list):
            if not isinstance(last, int) or last > len(node):
                raise SpecError(f"--set {text!r}: {_dotted(loc)} does not exist (the list has {len(node)} items)")
            if last == len(node):
                node.append(value)
            else:
                node[last] = value
        elif isinstance(node, dict) and not isinstance(last, int):
            node[last] = value
        else:
            raise SpecError(f"--set {text!r}: {_dotted(loc[:-1])} is not a mapping or a list")
        source.overrides[loc] = text


# --- loading and error translation -------------------------------------------------------------


def load_spec(
    path: str | Path, overrides: list[str] | None = None, search: list[str] | None = None, check_search: bool = False
) -> Spec:
    """Read, override and validate a spec file; fill in the name and make data paths absolute.

    An override of a path that `search:` holds fixes that path: it leaves the search.

    Args:
        search: `PATH=DIST` texts from `dlrun tune --set`, added to (or replacing entries of) `search:`.
        check_search: Also check that the spec stays valid at the ends of every range and at every
            choice of `search:` (`validate` and `tune` do; `train` ignores the search).

    Raises:
        SpecError: anything wrong with the file or the overrides, every problem at once.
    """
    path = Path(path)
    return _loaded(read_yaml(path), path, overrides, search, check_search)


def load_spec_text(text: str, overrides: list[str] | None = None) -> Spec:
    """Read, override and validate spec text as `load_spec` reads a file named `spec` in the current folder."""
    path = Path(TEXT_NAME)
    return _loaded(parse_yaml(text, path), path, overrides, None, False)


TEXT_NAME = "spec"
"""What spec text (not a file: `dlrun.load_spec(text)`) is called in messages, and its run's name by default."""


def _loaded(source: Source, path: Path, overrides, search, check_search) -> Spec:
    if not isinstance(source.data, dict):
        hint = (
            f"; {path.name} looks like data: write a starter spec for it with `dlrun init {path} --target COLUMN`"
            if path.suffix.lower() in (".csv", ".tsv", ".txt", ".parquet")
            else ""
        )
        raise SpecError(
            f"{path}: the spec must be a mapping with data, model and training sections, "
            f"found {type(source.data).__name__}{hint}"
        )
    apply_overrides(source, overrides or [])
    _fix_searched(source, overrides or [])
    _add_search(source, search or [])
    spec = validate(source)
    if check_search and spec.search:
        _check_search(source, spec)
    if spec.name is None:
        spec.name = re.sub(r"[^A-Za-z0-9._-]", "-", path.stem) or "run"
    absolute_paths(spec, path.resolve().parent)
    return spec


def absolute_paths(spec: Spec, base: Path) -> None:
    """Make the spec's data paths absolute, relative to `base` (a DataFrame's name stays as it is)."""
    for key in ("path", "validation_path", "test_path"):
        value = getattr(spec.data, key)
        if value is not None and not is_dataframe(value):
            setattr(spec.data, key, str((base / value).resolve()))


def validate(source: Source) -> Spec:
    """Validate spec data, turning pydantic's errors into problems that point at the file."""
    try:
        return Spec.model_validate(source.data)
    except ValidationError as exc:
        problems = [_problem(source, error) for error in exc.errors()]
        for problem in problems:
            given = problem.where.partition("=")[2]
            if (
                problem.where.startswith("--set ")
                and looks_like_distribution(given)
                and not problem.path.startswith("search")
            ):
                # a distribution given where one value is needed (train --set); a search entry's own problem
                # (`search.PATH`) is about the distribution, not about giving one
                problem.message += " (a distribution like loguniform(1e-4, 1e-1) is for `dlrun tune`; give one value)"
            elif problem.where.startswith("--set ") and (guess := misspelled_distribution(given)):
                problem.message += f" (did you mean the distribution {guess}(...)? dlrun tune knows {', '.join(NAMES)})"
        raise SpecError(f"invalid spec {source.path or ''}".strip(), problems) from None


# --- the search space (dlrun tune) ------------------------------------------------------------


def _fix_searched(source: Source, overrides: list[str]) -> None:
    """Drop from `search:` each path that an override sets to one value."""
    search = source.data.get("search")
    if not isinstance(search, dict):
        return
    fixed = {resolve_path(source.data, parse_override_path(text.partition("=")[0].strip())) for text in overrides}
    searched = {key: _loc_of(key) for key in search if isinstance(key, str)}
    for key in [k for k, loc in searched.items() if loc is not None and resolve_path(source.data, loc) in fixed]:
        del search[key]


def _add_search(source: Source, texts: list[str]) -> None:
    """Add `PATH=DIST` texts to `search:`, remembering the `--set` each came from (errors name it)."""
    for text in texts:
        path, _, distribution = text.partition("=")
        if not isinstance(source.data.get("search"), dict):
            source.data["search"] = {}
        source.data["search"][path.strip()] = distribution.strip()
        source.overrides[("search", path.strip())] = text


def _loc_of(path: str) -> Loc | None:
    try:
        return parse_override_path(path)
    except SpecError:
        return None


def _check_search(source: Source, spec: Spec) -> None:
    """Check every `search:` path, and the spec at the ends of each range and at each choice.

    Raises:
        SpecError: a path that is not one, or a value of a distribution that makes the spec invalid; each
            problem at the search entry (its file:line:col, or the `--set` it came from).
    """
    problems = []
    rest = {key: value for key, value in source.data.items() if key != "search"}
    for path, distribution in spec.search.items():
        loc = ("search", path)
        if _loc_of(path) is None:
            message = (
                f"{path!r} is not a spec path; write it as --set does, like training.epochs or model.layers[1].rate"
            )
            problems.append(Problem(_dotted(loc), message, *_where(source, loc)))
            continue
        for value, which in _samples(distribution):
            trial = Source(copy.deepcopy(rest), source.path, source.lines)
            override = f"{path}={value_text(value)}"
            try:
                apply_overrides(trial, [override])
                validate(trial)
            except SpecError as exc:
                first = exc.problems[0] if exc.problems else Problem("", str(exc))
                detail = f"{first.path}: {first.message}" if first.path else first.message
                detail = detail.removeprefix(f"--set {override!r}: ")
                message = f"{which} {value_text(value)} makes the spec invalid: {detail}"
                problems.append(Problem(_dotted(loc), message, *_where(source, loc)))
                break
    if problems:
        raise SpecError(f"invalid search in {source.path}", problems)


def _samples(distribution) -> list[tuple[Any, str]]:
    """Return the values that stand for a distribution in checks: a range's ends, every choice."""
    if distribution.type == "choice":
        return [(value, f"choice {i + 1},") for i, value in enumerate(distribution.choices)]
    return [(distribution.low, "its low end"), (distribution.high, "its high end")]


@dataclass(frozen=True)
class _Union:
    """A discriminated union of the spec: its tag key, what its members are called, their tags, a default tag."""

    key: str
    noun: str
    choices: tuple
    default: str | None = None
    model: type[BaseModel] | None = None
    """The members' base model, whose unknown keys are "not an argument of <noun> <tag>"."""
    arguments: dict[str, dict] = field(default_factory=dict)
    """Each member's arguments, to say which members take an unknown key."""


# Every discriminated union of a spec. Several share the tag key `name`; the tags an error expected, or
# the model at its place, tell which one it is.
_UNIONS = (
    _Union("type", "layer type", LAYER_TYPES),
    _Union("name", "optimizer", tuple(names.OPTIMIZERS), DEFAULT_OPTIMIZER, KerasOptimizer, names.OPTIMIZERS),
    _Union("name", "learning-rate schedule", tuple(names.SCHEDULES), None, KerasSchedule, names.SCHEDULES),
    _Union("name", "metric", tuple(names.METRICS), None, KerasMetric, names.METRIC_ARGUMENTS),
    _Union("type", "distribution", SEARCH_TYPES),
)


def _union_for(error: dict, loc: Loc, data: Any) -> _Union:
    """Return the union an error about a missing or unknown tag belongs to."""
    expected = set(re.findall(r"'([^']*)'", error.get("ctx", {}).get("expected_tags", "")))
    candidates = [union for union in _UNIONS if expected and set(union.choices) <= expected]
    if not candidates:  # no tags listed: the union whose members may stand at this place
        members = {t for t in _unwrap(_annotation_at(loc, data)) if isinstance(t, type)}
        candidates = [
            union
            for union in _UNIONS
            if any(union.model is not None and issubclass(m, union.model) for m in members)
            or (union.key == "type" and any(issubclass(m, BaseModel) and "type" in m.model_fields for m in members))
        ]
    return candidates[0] if candidates else _UNIONS[0]


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> Problem:
    """Say where a spec file stops being UTF-8 (its line and column, as an editor counts them) and how to fix it."""
    data = exc.object
    start = data.rfind(b"\n", 0, exc.start) + 1
    end = data.find(b"\n", exc.start)
    line = data[start : end if end >= 0 else len(data)].decode("utf-8", errors="replace").rstrip("\r")
    column = len(data[start : exc.start].decode("utf-8", errors="replace")) + 1
    message = (
        f"byte 0x{data[exc.start]:02x} is not UTF-8 text: save the spec as UTF-8 (an editor's Save with Encoding; "
        "or iconv -f latin1 -t utf-8)"
    )
    number = data.count(b"\n", 0, exc.start) + 1
    return Problem("", message, f"{path}:{number}:{column}", line)


def _problem(source: Source, error: dict) -> Problem:
    loc = _data_loc(source.data, error["loc"])
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        message = _unknown_key(loc, source.data)
    elif kind == "missing":
        message = f"missing required key {loc[-1]!r}: add it"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        union = _union_for(error, loc, source.data)
        node = node_at(source.data, loc)
        tag = node.get(union.key) if isinstance(node, dict) else node
        message = (
            names.unknown_name(union.noun, tag, union.choices)
            if kind == "union_tag_invalid"
            else f"missing required key {union.key!r}: one of {', '.join(union.choices)}"
            if len(union.choices) <= names.FEW
            else f"missing required key {union.key!r}: the {union.noun}'s Keras name, like {union.choices[1]} "
            "(`dlrun schema` lists every valid name)"
        )
        loc = loc + (union.key,)
    elif "detail" in error.get("ctx", {}):  # dlrun's own checks: the message is already written for the user
        message = error["msg"]
    else:
        expected = error["msg"].replace("Input should be ", "expected ").replace("Input should have ", "expected ")
        message = f"{expected}, received {value!r}" if not isinstance(value, (dict, list)) else expected
    return Problem(_dotted(loc), message, *_where(source, loc))


def _unknown_key(loc: Loc, data: Any) -> str:
    """Say that the key at `loc` is not valid there, suggest the closest valid one, and list them all."""
    key = loc[-1]
    model = _model_at(loc[:-1], data)
    allowed = list(model.model_fields) if model else []
    guess = names.closest(str(key), allowed)
    message = f"unknown key {key!r}"
    hint = f"; did you mean {guess!r}?" if guess else "."
    union = next((u for u in _UNIONS if model is not None and u.model and issubclass(model, u.model)), None)
    if union is not None:
        message += f": not an argument of {union.noun} {_tags(model, 'name')[0]!r}"
        takers = [name for name, arguments in union.arguments.items() if key in arguments]
        if takers and not guess:
            hint = f" ({union.noun}s that take it: {', '.join(takers)})."
    return f"{message}{hint} Valid keys here: {', '.join(allowed)}"


def _data_loc(data: Any, loc: tuple) -> Loc:
    """Drop the discriminator tags and model names pydantic puts into an error's location."""
    out: list = []
    node = data
    for step in loc:
        if isinstance(node, dict) and step in node:
            out.append(step)
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            out.append(step)
            node = node[step]
        elif isinstance(step, str) and (
            isinstance(node, dict)
            and _is_tag(node, step)
            or step[:1].isupper()
            or isinstance(node, str)
            and step in SEARCH_TYPES
        ):
            continue  # a union's tag ("dense", "adam", "Number"), a model's name, or a distribution's type in its text
        else:
            out.append(step)
            node = None
    return tuple(out)


def _is_tag(node: dict, step: str) -> bool:
    """Whether `step` names the union member of mapping `node`: its layer type, optimizer name, ..."""
    return any(step in u.choices and node.get(u.key, u.default) == step for u in _UNIONS)


def _where(source: Source, loc: Loc) -> tuple[str, str]:
    for depth in range(len(loc) + 1):  # an override replaced everything below it, the file's marks included
        if loc[:depth] in source.overrides:
            return f"--set {source.overrides[loc[:depth]]}", ""
    for depth in range(len(loc), -1, -1):
        prefix = loc[:depth]
        if prefix in source.marks:
            line, column = source.marks[prefix]
            return f"{source.path}:{line + 1}:{column + 1}", source.lines[line].rstrip()
    return (str(source.path) if source.path else ""), ""


def _model_at(loc: Loc, data: Any) -> type[BaseModel] | None:
    """Return the spec model of the mapping at `loc`, a union's member chosen by the data's tag."""
    return _pick(_annotation_at(loc, data), node_at(data, loc))


def _annotation_at(loc: Loc, data: Any) -> Any:
    """Return the type annotation of the value at `loc`, following union members chosen by the data's tags."""
    annotation: Any = Spec
    node = data
    for step in loc:
        annotation = _child(annotation, step, node)
        node = node_at(node, (step,))
        if annotation is None:
            return None
    return annotation


def _child(annotation: Any, step: Any, node: Any) -> Any:
    """Return the annotation of item `step` (a key or a list index) of a value of type `annotation`."""
    for candidate in _unwrap(annotation):
        if isinstance(step, int) and get_origin(candidate) is list:
            return get_args(candidate)[0]
        if isinstance(step, str) and get_origin(candidate) is dict:
            return get_args(candidate)[1]
    model = _pick(annotation, node)
    return model.model_fields[step].annotation if model is not None and step in model.model_fields else None


def _pick(annotation: Any, node: Any) -> type[BaseModel] | None:
    """Return the model that `annotation` allows for `node`: the only one, or the union member its tag names."""
    models = [t for t in _unwrap(annotation) if isinstance(t, type) and issubclass(t, BaseModel)]
    if len(models) <= 1:
        return models[0] if models else None
    for union in _UNIONS:
        tag = node.get(union.key, union.default) if isinstance(node, dict) else node
        for model in models:
            if union.key in model.model_fields and tag in _tags(model, union.key):
                return model
    return None


def _tags(model: type[BaseModel], key: str) -> tuple:
    """Return the values the Literal field `key` of a union member allows (its tag)."""
    return get_args(model.model_fields[key].annotation)


def _unwrap(annotation: Any) -> list:
    """Flatten Annotated / Optional / Union into the plain types they allow."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [t for arg in get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def _dotted(loc: Loc) -> str:
    text = ""
    for step in loc:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text
