"""The search filter language, parsed into a small syntax tree.

    name = 'churn' AND tags.team IN ('crm', 'ops') AND metrics.auc >= 0.9
    name ILIKE 'churn%' OR (stage = 'Production' AND alias = 'champion')

Comparisons ``= != <> < <= > >=``, ``[NOT] IN (...)``, ``[NOT] LIKE`` and ``[NOT] ILIKE``
are joined by ``AND`` and ``OR`` with parentheses; ``AND`` binds tighter. Strings are
quoted with ``'`` or ``"``; keys with dots or spaces may be quoted with backticks or
quotes (``tags.`my key```). The tree holds values only; the store turns it into SQL
with bound parameters.

Every filter is bounded (length, nesting, comparisons, IN lists, numbers) so that whatever a
caller sends is either a tree the databases can run or ``InvalidInput`` saying which limit it broke.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from covex.domain.errors import InvalidInput
from covex.domain.names import MAX_KEY_LENGTH

Value = str | float | int
Op = Literal["=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN", "LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE"]

KEYED_FIELDS = ("tags", "metrics", "params")

# The limits keep every filter far inside what the databases accept. SQLite refuses expressions
# nested more than 1000 deep ("Expression tree is too large"), and it nests an AND/OR chain one
# level per term, plus a few per EXISTS subquery (tags, metrics, params, alias); it also refuses
# LIKE patterns over 50,000 bytes and statements with over 32,766 parameters (PostgreSQL: 65,535).
# 10,000 characters hold at most ~5,000 values, whatever the IN lists, and 40,000 bytes.
MAX_FILTER_LENGTH = 10_000
# Parentheses: the parser recurses per level; 32 is more than any hand-written filter needs.
MAX_NESTING = 32
MAX_COMPARISONS = 100
MAX_IN_VALUES = 1_000
MAX_ORDER_BY = 10
# A field, a key of at most MAX_KEY_LENGTH characters (quoted, escapes doubled) and a direction.
MAX_ORDER_BY_LENGTH = 1_000
# Both databases store and bind integers as signed 64-bit.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Longer tokens are cut short when quoted in a message.
_SHOWN = 40


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


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


# PostgreSQL refuses NUL in text; a lone surrogate is not Unicode and no driver encodes it.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _check_text(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise InvalidInput(f"{what}: must be a string, got {type(text).__name__}")
    m = _UNSTORABLE.search(text)
    if m:
        found = "a NUL character" if m.group() == "\x00" else "a lone surrogate (not valid Unicode)"
        raise InvalidInput(f"{what}: {found} at position {m.start()}")
    return text


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
        self.depth = 0
        self.comparisons = 0

    def error(self, message: str, tok: _Tok | None = None) -> InvalidInput:
        tok = tok or self.peek()
        where = "at the end" if tok.kind == "end" else f"at position {tok.pos} ({_shown(tok.text)!r})"
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
            if self.depth == MAX_NESTING:
                raise self.error(f"parentheses nest more than {MAX_NESTING} deep")
            self.depth += 1
            self.next()
            node = self.parse_or()
            if self.peek().kind != "rparen":
                raise self.error("expected ')'")
            self.next()
            self.depth -= 1
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
        if len(key) > MAX_KEY_LENGTH:
            raise self.error(f"the key is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}", key_tok)
        return Field(kind, key)

    def parse_value(self) -> Value:
        tok = self.next()
        if tok.kind == "string":
            return _unquote(tok.text)
        if tok.kind == "number":
            return self.number(tok)
        raise self.error("expected a quoted string or a number", tok)

    def number(self, tok: _Tok) -> float | int:
        if any(c in tok.text for c in ".eE"):
            real = float(tok.text)
            # float() turns what it cannot hold into infinity, which would compare as if it were meant.
            if math.isinf(real):
                raise self.error(f"number {_shown(tok.text)} is out of range (beyond about 1.8e308)", tok)
            return real
        # int() refuses over 4,300 digits with a ValueError of its own; 20 digits already overflow.
        digits = tok.text.lstrip("+-").lstrip("0")
        integer = int(tok.text) if len(digits) <= 19 else None
        if integer is None or not INT64_MIN <= integer <= INT64_MAX:
            raise self.error(
                f"integer {_shown(tok.text)} is out of range ({INT64_MIN} to {INT64_MAX}); "
                "write it with a decimal point or exponent to compare as a floating-point number",
                tok,
            )
        return integer

    def parse_comparison(self) -> Comparison:
        start = self.peek()
        if self.comparisons == MAX_COMPARISONS:
            raise self.error(f"more than {MAX_COMPARISONS} comparisons")
        self.comparisons += 1
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
                if len(values) == MAX_IN_VALUES:
                    raise self.error(f"an IN list holds more than {MAX_IN_VALUES} values")
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
    if text is None:
        return None
    text = _check_text(text, "invalid filter")
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidInput(f"invalid filter: it is {len(text)} characters long; the limit is {MAX_FILTER_LENGTH}")
    if not text.strip():
        return None
    return _Parser(text, fields).parse()


@dataclass(frozen=True)
class OrderKey:
    field: Field
    descending: bool


def parse_order_by(clauses: list[str] | None, fields: dict[str, str], sortable: set[str]) -> list[OrderKey]:
    """Parse ``["metrics.auc DESC", "name"]`` into order keys."""
    clauses = clauses or []
    if len(clauses) > MAX_ORDER_BY:
        raise InvalidInput(f"invalid order_by: {len(clauses)} clauses; the limit is {MAX_ORDER_BY}")
    keys: list[OrderKey] = []
    for clause in clauses:
        if not isinstance(clause, str):
            raise InvalidInput(f"invalid order_by: each clause must be a string, got {type(clause).__name__}")
        if len(clause) > MAX_ORDER_BY_LENGTH:
            raise InvalidInput(
                f"invalid order_by {_shown(clause)!r}: it is {len(clause)} characters long; "
                f"the limit is {MAX_ORDER_BY_LENGTH}"
            )
        _check_text(clause, f"invalid order_by {clause!r}")
        parts = clause.strip().rsplit(None, 1)
        direction = "ASC"
        if len(parts) == 2 and parts[1].upper() in ("ASC", "DESC"):
            body, direction = parts[0], parts[1].upper()
        else:
            body = clause.strip()
        sortable_fields = {k: v for k, v in fields.items() if k in sortable}
        try:
            parser = _Parser(body, sortable_fields)
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
