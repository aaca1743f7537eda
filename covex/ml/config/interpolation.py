"""``${NAME}`` and ``${NAME:-default}`` in a config's values, filled from the environment as the file is read.

A default is plain text: ``$$`` in it is a ``$`` as anywhere else, and a ``${`` in it (a nested
reference, ``${A:-${B}}``, or ``$${``) is refused wherever the file is read, whatever the environment holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from covex.domain.yaml_reader import Loc, ScalarHook, YamlProblem

_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<body>[^}]*)\}|\$\{")
_VARIABLE = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)
_RESOLVER = Resolver()


def interpolator(env: Mapping[str, str]) -> ScalarHook:
    """A scalar hook for ``read_yaml`` that substitutes variables from ``env``.

    ``$$`` is a literal ``$``. ``${NAME:-default}`` takes the default (plain text) when NAME is
    unset or empty; ``${NAME}`` unset, or a ``${`` inside a default, is an error naming the line.
    """

    def substitute_node(node: ScalarNode, loc: Loc) -> ScalarNode:
        text = _substitute(node, loc, env)
        if text == node.value:
            return node
        tag = node.tag
        if text and node.style is None:
            # A plain (unquoted) value is typed after substitution, as YAML would type the text:
            # `rows: ${ROWS}` is a number; quote it ("${ROWS}") to keep text.
            tag = _RESOLVER.resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        return ScalarNode(tag, text, node.start_mark, node.end_mark, node.style)

    return substitute_node


def _substitute(node: ScalarNode, loc: Loc, env: Mapping[str, str]) -> str:
    value = str(node.value)
    if "$" not in value:
        return value

    def line_of(pos: int) -> int:
        first = int(node.start_mark.line) + 1
        if node.style in ("|", ">"):  # a block scalar's text starts on the line after its key
            return first + 1 + value.count("\n", 0, pos)
        return first

    def one(m: re.Match[str]) -> str:
        if m.group() == "$$":
            return "$"
        body = m.group("body")
        if body is None:
            raise YamlProblem(line_of(m.start()), loc, "unterminated '${'; write ${NAME}, or $$ for a literal '$'")
        var = _VARIABLE.fullmatch(body)
        if var is None:
            raise YamlProblem(
                line_of(m.start()),
                loc,
                f"'${{{body}}}' is not a valid reference; write ${{NAME}} or ${{NAME:-default}}",
            )
        name, default = var.group("name"), var.group("default")
        if default is not None:
            default = _plain_default(name, default, line_of(m.start()), loc)
        found = env.get(name)
        if found:
            return found
        if default is not None:
            return default
        if found is not None:  # set but empty, and no default
            return found
        raise YamlProblem(
            line_of(m.start()),
            loc,
            f"environment variable {name} is not set (write ${{{name}:-default}} to give a default)",
        )

    return _INTERPOLATION.sub(one, value)


def _plain_default(name: str, default: str, line: int, loc: Loc) -> str:
    """The default's text, ``$$`` read as ``$``; a ``${`` in it is refused, even where the default is not needed.

    A default ends at the first ``}``, so no reference fits in one: ``${A:-${B}}`` would give ``${B}``
    and ``${A:-$${B}}`` a stray ``}`` once A is set.
    """
    if "${" in default:
        raise YamlProblem(
            line, loc, f"the default of ${{{name}}} holds '${{': a default is plain text, it cannot hold a reference"
        )
    return default.replace("$$", "$")
