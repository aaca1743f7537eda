"""Reading MLflow's requests: a GET's query string or another method's JSON body, checked field by field.

MLflow's clients send reads as query strings (a list as the key repeated) and writes, deletes too, as
JSON bodies. A missing or mistyped field is ``INVALID_PARAMETER_VALUE`` naming it, as MLflow says it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request

from covex.domain.errors import InvalidInput
from covex.server.mlflow.errors import BadRequest

INT64_MAX = 2**63 - 1


class Message:
    """One request's fields."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def __contains__(self, key: str) -> bool:
        return self.fields.get(key) is not None

    def _one(self, key: str) -> Any:
        value = self.fields.get(key)
        if isinstance(value, list) and value and isinstance(value[0], str):
            return value[-1]  # a query string's key given more than once: the last counts, as in MLflow
        return value

    def text(self, key: str, default: str | None = None) -> str:
        """A string field; without ``default`` it is required."""
        value = self._one(key)
        if value is None or (value == "" and default is None):
            if default is not None:
                return default
            raise InvalidInput(f"Missing value for required parameter '{key}'.")
        if not isinstance(value, str):
            raise InvalidInput(f"Invalid value {_shown(value)} for parameter '{key}' supplied: it must be a string.")
        return value

    def optional(self, key: str) -> str | None:
        """A string field that may be left out or empty (MLflow's clients send ``filter=""`` for no filter)."""
        return self.text(key) if self._one(key) not in (None, "") else None

    def integer(self, key: str, default: int | None = None) -> int:
        value = self._one(key)
        if value is None or value == "":
            if default is None:
                raise InvalidInput(f"Missing value for required parameter '{key}'.")
            return default
        try:
            number = int(value) if not isinstance(value, bool) and not isinstance(value, float) else None
        except (TypeError, ValueError):
            number = None
        if number is None or not -INT64_MAX <= number <= INT64_MAX:
            raise InvalidInput(f"Invalid value {_shown(value)} for parameter '{key}' supplied: it must be an integer.")
        return number

    def flag(self, key: str, default: bool = False) -> bool:
        value = self._one(key)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise InvalidInput(f"Invalid value {_shown(value)} for parameter '{key}' supplied: it must be true or false.")

    def strings(self, key: str) -> list[str]:
        value = self.fields.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidInput(
                f"Invalid value {_shown(value)} for parameter '{key}' supplied: it must be a list of strings."
            )
        return value

    def tags(self, key: str = "tags") -> dict[str, str]:
        """MLflow's ``[{"key": ..., "value": ...}]``."""
        value = self.fields.get(key)
        if value is None:
            return {}
        if not isinstance(value, list):
            raise InvalidInput(f"Invalid value {_shown(value)} for parameter '{key}' supplied: it must be a list.")
        tags: dict[str, str] = {}
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                raise InvalidInput(f"Invalid value {_shown(item)} in parameter '{key}': each needs a string 'key'.")
            tag_value = item.get("value", "")
            if not isinstance(tag_value, str):
                raise InvalidInput(f"Invalid value {_shown(tag_value)} for tag {item['key']!r}: it must be a string.")
            tags[item["key"]] = tag_value
        return tags


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


async def read_message(request: Request) -> Message:
    """The request's fields: the query string of a GET, the JSON body (if any) otherwise."""
    if request.method == "GET":
        fields: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            fields.setdefault(key, []).append(value)
        return Message({k: v[0] if len(v) == 1 else v for k, v in fields.items()} | _lists(fields))
    body = await request.body()
    if not body.strip():
        return Message({})
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body must be a JSON object") from None
    except RecursionError:  # nesting deeper than the parser's stack: no MLflow message nests like that
        raise BadRequest("the request body is nested too deeply") from None
    if not isinstance(parsed, dict):
        raise BadRequest("the request body must be a JSON object")
    return Message(parsed)


# Fields that are lists even when a query string gives them once.
_LIST_FIELDS = ("order_by", "stages", "experiment_ids", "run_ids", "model_ids")


def _lists(fields: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k: v for k, v in fields.items() if k in _LIST_FIELDS}


Fields = Annotated[Message, Depends(read_message)]
