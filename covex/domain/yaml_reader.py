"""YAML read into plain values, keeping the line of every key and list item. Pure: text in, values out.

The files people write by hand (registration configs, policy files) are read here, so that each
reader can name the line and the key of every problem, and so that hostile YAML is refused
cheaply: the number of values and their nesting are bounded, and anchors and aliases (which let
a few bytes expand into millions of values, or a cycle) are refused unless a reader allows them.

    document = read_yaml("policies:\\n  - stage: Test\\n", limits=Limits(name="policy files"))
    document.value                        # {'policies': [{'stage': 'Test'}]}
    document.line(("policies", 0, "stage"))  # 2
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from covex.domain.errors import InvalidInput

Loc = tuple[str | int, ...]
"""Where a value sits: its keys and list indexes from the root, e.g. ``("datasets", 0, "path")``."""

MERGE_TAG = "tag:yaml.org,2002:merge"
INT_TAG = "tag:yaml.org,2002:int"


class YamlProblem(InvalidInput):
    """A problem at one place of the file: its ``line`` (1-based), ``loc`` and the ``problem`` alone.

    The message is ``line <n>: <problem>``; readers that name their file or key their own way
    build their message from the parts.
    """

    def __init__(self, line: int, loc: Loc, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line
        self.loc = loc
        self.problem = problem


@dataclass(frozen=True)
class Limits:
    """How much YAML a reader accepts; ``name`` is how messages call the file ("policy files")."""

    max_nodes: int = 10_000
    max_depth: int = 32
    aliases: bool = False
    name: str = "this file"


@dataclass(frozen=True)
class Document:
    """The file's value (None for an empty file) and the line of each key and list item."""

    value: Any
    lines: Mapping[Loc, int] = field(default_factory=dict)

    def line(self, loc: Loc) -> int:
        """The line of the value at ``loc``, or of its closest enclosing key (1 when none is known)."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return 1


ScalarHook = Callable[[ScalarNode, Loc], ScalarNode]
"""Rewrites a scalar before it is typed (a config's ``${VAR}`` substitution); raises ``YamlProblem``."""


class _Composer(yaml.SafeLoader):
    """PyYAML's composer, bounded: it counts nodes and nesting, and refuses anchors unless allowed."""

    def __init__(self, text: str, limits: Limits) -> None:
        super().__init__(text)
        self.limits = limits
        self.nodes = 0
        self.depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1
        if not self.limits.aliases:
            if isinstance(event, yaml.AliasEvent):
                raise YamlProblem(line, (), self._no_aliases(f"*{event.anchor}"))
            anchor = getattr(event, "anchor", None)
            if anchor is not None:
                raise YamlProblem(line, (), self._no_aliases(f"&{anchor}"))
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            raise YamlProblem(line, (), self._too_many())
        if self.depth >= self.limits.max_depth:
            raise YamlProblem(line, (), f"values are nested more than {self.limits.max_depth} levels deep")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def _no_aliases(self, found: str) -> str:
        return f"YAML aliases are not allowed in {self.limits.name} (found {found})"

    def _too_many(self) -> str:
        return f"the file has more than {self.limits.max_nodes} values; {self.limits.name} are smaller"


class _Builder:
    """Turns composed nodes into plain values, recording lines; bounded again, since aliases repeat nodes."""

    def __init__(self, limits: Limits, scalar: ScalarHook | None) -> None:
        self.limits = limits
        self.scalar = scalar
        self.lines: dict[Loc, int] = {(): 1}
        self.values = 0
        self.constructor = yaml.SafeLoader("")

    def build(self, node: Node, loc: Loc) -> Any:
        line = node.start_mark.line + 1
        self.values += 1
        if self.values > self.limits.max_nodes:
            raise YamlProblem(line, loc, f"the file has more than {self.limits.max_nodes} values")
        if len(loc) >= self.limits.max_depth:  # an alias may point at its own parent: a cycle
            raise YamlProblem(line, loc, f"values are nested more than {self.limits.max_depth} levels deep")
        if isinstance(node, MappingNode):
            return self.mapping(node, loc)
        if isinstance(node, SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                self.lines[(*loc, i)] = item.start_mark.line + 1
                items.append(self.build(item, (*loc, i)))
            return items
        assert isinstance(node, ScalarNode)
        if self.scalar is not None:
            node = self.scalar(node, loc)
        try:
            return self.constructor.construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            # ValueError, OverflowError: e.g. an integer of more digits than Python converts.
            problem = getattr(exc, "problem", None) or str(exc)
            digits = sys.get_int_max_str_digits()  # 0: no limit
            if node.tag == INT_TAG and digits and len(str(node.value)) > digits:
                problem = f"a number of more than {digits} digits (quote it to make it text)"
            raise YamlProblem(line, loc, f"cannot read this value: {problem}") from None

    def mapping(self, node: MappingNode, loc: Loc) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == MERGE_TAG:
                raise YamlProblem(line, loc, "YAML merge keys ('<<') are not supported; write the keys out")
            if not isinstance(key_node, ScalarNode):
                raise YamlProblem(line, loc, "keys must be plain names")
            key = str(key_node.value)
            if key in out:
                raise YamlProblem(line, (*loc, key), f"{key!r} appears twice; give each key once")
            self.lines[(*loc, key)] = line
            out[key] = self.build(value_node, (*loc, key))
        return out


def read_yaml(text: str, *, limits: Limits | None = None, scalar: ScalarHook | None = None) -> Document:
    """Read one YAML document into dicts, lists and scalars, with the line of every key and item.

    Keys are text, each appears once, merge keys (``<<``) are refused. Raises ``YamlProblem``
    (an ``InvalidInput``) naming the line, for bad YAML as for anything over ``limits``.
    """
    limits = limits or Limits()
    try:  # PyYAML checks the characters first: a control character is refused before any parsing
        composer = _Composer(text, limits)
    except yaml.reader.ReaderError as exc:
        line = text[: max(0, exc.position)].count("\n") + 1
        raise YamlProblem(line, (), f"not valid YAML: character #x{exc.character:04x} is not allowed") from None
    try:
        root = composer.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlProblem(mark.line + 1 if mark else 1, (), f"not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(1, (), f"not valid YAML: {exc}") from None
    finally:
        composer.dispose()
    if root is None:
        return Document(None, {(): 1})
    builder = _Builder(limits, scalar)
    value = builder.build(root, ())
    return Document(value, builder.lines)
