"""The search filter language, parsed into a small syntax tree.

    name = 'churn' AND tags.team IN ('crm', 'ops') AND metrics.auc >= 0.9
    name ILIKE 'churn%' OR (stage = 'Production' AND alias = 'champion')

Comparisons ``= != <> < <= > >=``, ``[NOT] IN (...)``, ``[NOT] LIKE`` and ``[NOT] ILIKE``
are joined by ``AND`` and ``OR`` with parentheses; ``AND`` binds tighter. Strings are
quoted with ``'`` or ``"``; keys with dots or spaces may be quoted with backticks or
quotes (``tags.`my key```). The tree holds values only; the store turns it into SQL
with bound parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from covex.domain.errors import InvalidInput

Value = str | float | int
Op = Literal["=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN", "LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE"]

KEYED_FIELDS = ("tags", "metrics", "params")


@dataclass(frozen=True)
class Field:
    """A searchable attribute: ``name``, or a keyed one such as ``metrics.auc``."""

    kind: str
    key: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}.{self.key}" if self.key is not None else self.kind


@dataclass(frozen=True)
class Comparison:
    field: Field
    op: Op
    value: Value | tuple[Value, ...]
    position: int


@dataclass(frozen=True)
class BoolOp:
    op: Literal["AND", "OR"]
    terms: tuple[Node, ...]


Node = Comparison | BoolOp

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
  | (?P<backtick>`[^`]*`)
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<dot>\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_\-]*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper()


def _unquote(text: str) -> str:
    quote = text[0]
    body = text[1:-1]
    body = body.replace(quote * 2, quote)
    return re.sub(r"\\(.)", r"\1", body)


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise InvalidInput(f"invalid filter: unexpected character {text[pos]!r} at position {pos}")
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    tokens.append(_Tok("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str, fields: dict[str, str]) -> None:
        self.text = text
        self.fields = fields
        self.tokens = _tokenize(text)
        self.i = 0

    def error(self, message: str, tok: _Tok | None = None) -> InvalidInput:
        tok = tok or self.peek()
        where = "at the end" if tok.kind == "end" else f"at position {tok.pos} ({tok.text!r})"
        return InvalidInput(f"invalid filter: {message} {where}")

    def peek(self) -> _Tok:
        return self.tokens[self.i]

    def next(self) -> _Tok:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok.kind == "ident" and tok.upper == word:
            self.i += 1
            return True
        return False

    def parse(self) -> Node:
        node = self.parse_or()
        if self.peek().kind != "end":
            raise self.error("expected AND, OR or the end of the filter")
        return node

    def parse_or(self) -> Node:
        terms = [self.parse_and()]
        while self.keyword("OR"):
            terms.append(self.parse_and())
        return terms[0] if len(terms) == 1 else BoolOp("OR", tuple(terms))

    def parse_and(self) -> Node:
        terms = [self.parse_term()]
        while self.keyword("AND"):
            terms.append(self.parse_term())
        return terms[0] if len(terms) == 1 else BoolOp("AND", tuple(terms))

    def parse_term(self) -> Node:
        if self.peek().kind == "lparen":
            self.next()
            node = self.parse_or()
            if self.peek().kind != "rparen":
                raise self.error("expected ')'")
            self.next()
            return node
        return self.parse_comparison()

    def parse_field(self) -> Field:
        tok = self.next()
        if tok.kind != "ident":
            raise self.error("expected a field name such as name, tags.<key> or metrics.<name>", tok)
        kind = tok.text.lower()
        if kind in ("tag", "metric", "param"):
            kind += "s"
        if kind not in self.fields:
            known = ", ".join(sorted(self.fields))
            raise self.error(f"unknown field {tok.text!r} (known: {known})", tok)
        if kind not in KEYED_FIELDS:
            return Field(kind)
        if self.peek().kind != "dot":
            raise self.error(f"{kind} needs a key, e.g. {kind}.<key>")
        self.next()
        key_tok = self.next()
        if key_tok.kind == "ident":
            key = key_tok.text
            # Keys may hold dots: tags.mlflow.source
            while self.peek().kind == "dot" and self.tokens[self.i + 1].kind == "ident":
                self.next()
                key += "." + self.next().text
        elif key_tok.kind == "backtick":
            key = key_tok.text[1:-1]
        elif key_tok.kind == "string":
            key = _unquote(key_tok.text)
        else:
            raise self.error(f"expected a key after '{kind}.'", key_tok)
        if not key:
            raise self.error("empty key", key_tok)
        return Field(kind, key)

    def parse_value(self) -> Value:
        tok = self.next()
        if tok.kind == "string":
            return _unquote(tok.text)
        if tok.kind == "number":
            return float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
        raise self.error("expected a quoted string or a number", tok)

    def parse_comparison(self) -> Comparison:
        start = self.peek()
        field = self.parse_field()
        negate = self.keyword("NOT")
        tok = self.peek()
        if tok.kind == "op" and not negate:
            self.next()
            op: Op = "!=" if tok.text == "<>" else tok.text  # type: ignore[assignment]
            value = self.parse_value()
            return self.checked(Comparison(field, op, value, start.pos), tok)
        if self.keyword("IN"):
            if self.peek().kind != "lparen":
                raise self.error("expected '(' after IN")
            self.next()
            values = [self.parse_value()]
            while self.peek().kind == "comma":
                self.next()
                values.append(self.parse_value())
            if self.peek().kind != "rparen":
                raise self.error("expected ',' or ')' in the IN list")
            self.next()
            in_op: Op = "NOT IN" if negate else "IN"
            return self.checked(Comparison(field, in_op, tuple(values), start.pos), tok)
        for word in ("LIKE", "ILIKE"):
            if self.keyword(word):
                value = self.parse_value()
                like_op: Op = f"NOT {word}" if negate else word  # type: ignore[assignment]
                return self.checked(Comparison(field, like_op, value, start.pos), tok)
        raise self.error("expected a comparison (=, !=, <, <=, >, >=, IN, LIKE, ILIKE)")

    def checked(self, cmp: Comparison, tok: _Tok) -> Comparison:
        value_type = self.fields[cmp.field.kind]
        values = cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)
        if "LIKE" in cmp.op and value_type != "string":
            raise self.error(f"{cmp.op} applies to text fields, not {cmp.field}", tok)
        for v in values:
            if value_type == "number" and not isinstance(v, int | float):
                raise self.error(f"{cmp.field} compares with numbers, not {v!r}", tok)
            if value_type == "string" and not isinstance(v, str):
                raise self.error(f"{cmp.field} compares with quoted strings, not {v!r}", tok)
        if value_type == "string" and cmp.op in ("<", "<=", ">", ">="):
            raise self.error(f"{cmp.field} supports =, !=, IN and LIKE, not {cmp.op}", tok)
        return cmp


MODEL_FIELDS = {
    "name": "string",
    "description": "string",
    "tags": "string",
    "alias": "string",
    "created_by": "string",
    "creation_timestamp": "number",
    "last_updated_timestamp": "number",
}

VERSION_FIELDS = {
    "name": "string",
    "version": "number",
    "stage": "string",
    "status": "string",
    "alias": "string",
    "description": "string",
    "source": "string",
    "run_id": "string",
    "created_by": "string",
    "tags": "string",
    "params": "string",
    "metrics": "number",
    "creation_timestamp": "number",
    "last_updated_timestamp": "number",
}


def parse_filter(text: str | None, fields: dict[str, str]) -> Node | None:
    """Parse a filter string; an empty filter means "everything"."""
    if text is None or not text.strip():
        return None
    return _Parser(text, fields).parse()


@dataclass(frozen=True)
class OrderKey:
    field: Field
    descending: bool


def parse_order_by(clauses: list[str] | None, fields: dict[str, str], sortable: set[str]) -> list[OrderKey]:
    """Parse ``["metrics.auc DESC", "name"]`` into order keys."""
    keys: list[OrderKey] = []
    for clause in clauses or []:
        parts = clause.strip().rsplit(None, 1)
        direction = "ASC"
        if len(parts) == 2 and parts[1].upper() in ("ASC", "DESC"):
            body, direction = parts[0], parts[1].upper()
        else:
            body = clause.strip()
        sortable_fields = {k: v for k, v in fields.items() if k in sortable}
        parser = _Parser(body, sortable_fields)
        try:
            field = parser.parse_field()
        except InvalidInput as exc:
            hint = " (a metric is sorted as metrics.<name>)" if "metrics" in sortable else ""
            raise InvalidInput(
                f"invalid order_by {clause!r}: {exc.message.removeprefix('invalid filter: ')}{hint}"
            ) from None
        if parser.peek().kind != "end":
            raise InvalidInput(f"invalid order_by {clause!r}: expected '<field> [ASC|DESC]'")
        if field.kind not in sortable:
            raise InvalidInput(f"invalid order_by {clause!r}: can sort by {', '.join(sorted(sortable))}")
        keys.append(OrderKey(field, direction == "DESC"))
    return keys
