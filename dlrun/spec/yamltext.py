"""YAML text as a spec reads it: the safe loader (`1e-3` a number, aliases capped), one `--set` value, value lists.

Shared by the spec loader (files and overrides), the search grammar (`dlrun.spec.space`) and sweeps.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

MAX_ALIAS_NODES = 10_000
"""Nodes that aliases may add to a document when expanded. A spec that shares a layer or two adds tens; a
billion-laughs document (aliases of aliases, nine deep) adds a billion, which every walk of the data
(positions, validation, config.yaml) would visit."""
MAX_DEPTH = 100
"""Nesting a document may reach, its aliases expanded; a spec is about six levels deep."""


class YAMLLimitError(yaml.MarkedYAMLError):
    """A document whose aliases expand past `MAX_ALIAS_NODES`, nest past `MAX_DEPTH`, or refer to themselves."""


class SpecLoader(yaml.SafeLoader):
    """Safe YAML, reading `1e-3` as a number: YAML 1.1 wants `1.0e-3`, and people write `1e-3`.

    Aliases are counted as they are composed, each by the size of the node it repeats (measured once),
    so a document that would expand past `MAX_ALIAS_NODES` or `MAX_DEPTH` stops at the alias that
    crosses the line, before anything walks the expanded data.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self._expanded = 0
        self._depth = 0
        self._open: list[str | None] = []  # anchors of the nodes being composed: an alias of one is a cycle
        self._sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, depth), aliases expanded

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = self.anchors.get(event.anchor)
            if node is not None:
                self._count_alias(event, node)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YAMLLimitError(problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=event.start_mark)
        self._open.append(getattr(event, "anchor", None))
        try:
            return super().compose_node(parent, index)
        finally:
            self._open.pop()
            self._depth -= 1

    def construct_object(self, node, deep=False):
        """Build a value; one whose explicit tag it does not fit (`!!float data`) is a YAML error at its place."""
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # PyYAML's own constructors raise ValueError, TypeError, binascii.Error, ...
            value = node.value if isinstance(node, yaml.ScalarNode) else type(node).__name__.replace("Node", "").lower()
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"{value!r} cannot be read as {node.tag.replace('tag:yaml.org,2002:', '!!')} ({exc}); remove the tag "
                "or fix the value",
                node.start_mark,
            ) from None

    def _count_alias(self, event, node) -> None:
        if event.anchor in self._open:
            raise YAMLLimitError(
                problem=f"alias *{event.anchor} repeats a node that contains it (a structure without end); "
                "write the value out instead",
                problem_mark=event.start_mark,
            )
        nodes, depth = self._size(node)
        self._expanded += nodes
        if self._expanded > MAX_ALIAS_NODES:
            raise YAMLLimitError(
                problem=f"aliases expand to more than {MAX_ALIAS_NODES:,} values by alias *{event.anchor} (aliases "
                "of aliases, like a billion-laughs document); a spec shares a few values with anchors, not more",
                problem_mark=event.start_mark,
            )
        if self._depth + depth > MAX_DEPTH:
            raise YAMLLimitError(
                problem=f"alias *{event.anchor} nests the document more than {MAX_DEPTH} levels deep",
                problem_mark=event.start_mark,
            )

    def _size(self, node) -> tuple[int, int]:
        """Return how many nodes `node` holds, and how deep, its aliases expanded (measured once per node)."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = []
        sizes = [self._size(child) for child in children]
        found = (1 + sum(n for n, _ in sizes), 1 + max((d for _, d in sizes), default=0))
        self._sizes[id(node)] = found
        return found


SpecLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_value(text: str):
    """Read one `--set` value as YAML: `5`, `0.01`, `1e-3`, `[a, b]`, `{patience: 2}`.

    Raises:
        yaml.YAMLError: the text is not valid YAML.
    """
    if not text.strip():
        return None
    try:
        return yaml.load(text, Loader=SpecLoader)
    except YAMLLimitError as exc:  # the caller names the file or the override; this names the place in it
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if "\n" in text.strip() else ""
        raise YAMLLimitError(problem=exc.problem + where, problem_mark=mark) from None


def split_values(text: str) -> list[str]:
    """Split `0.01,0.001` at top-level commas only: `[a,b],[a,c]` is two values, `'x,y'` one."""
    values: list[str] = []
    depth, quote, start = 0, "", 0
    for position, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            values.append(text[start:position].strip())
            start = position + 1
    values.append(text[start:].strip())
    return values


def value_text(value: Any) -> str:
    """Write a YAML value back as override text that reads as the same value."""
    if isinstance(value, str) and "," not in value and _safe_scalar(value):
        return value
    return json.dumps(value)  # JSON is YAML, and quotes what needs quoting


def _safe_scalar(text: str) -> bool:
    try:
        return parse_value(text) == text
    except yaml.YAMLError:
        return False


def node_at(data: Any, path) -> Any:
    """Return the value at a path of keys and list indexes in YAML data (a spec, a config.yaml), None where none is."""
    node = data
    for step in path:
        if isinstance(node, dict):
            node = node.get(step)
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        else:
            return None
    return node
