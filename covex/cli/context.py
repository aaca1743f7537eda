"""What every ``covex`` command shares: the global options, the client, settings and error mapping.

``covex.cli.main`` assembles the commands; the command modules import this module, never
``main`` (which imports them).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.markup import escape
from typer.core import TyperGroup

from covex.cli import output
from covex.client import Client
from covex.domain import errors
from covex.settings import Settings

if TYPE_CHECKING:
    from covex.service import RegistryService

EXIT_CODES: dict[type[errors.CovexError], int] = {
    errors.InvalidInput: 2,
    errors.NotFound: 3,
    errors.AlreadyExists: 4,
    errors.InvalidState: 4,
    errors.Unauthenticated: 5,
    errors.PermissionDenied: 5,
    errors.ServiceUnavailable: 6,
}


class State:
    """The global options of one invocation (``--uri``, ``--token``, ``--artifacts``) and its client."""

    def __init__(self) -> None:
        self.uri: str | None = None
        self.token: str | None = None
        self.artifacts: str | None = None
        self.client: Client | None = None

    def reset(self, uri: str | None, token: str | None, artifacts: str | None) -> None:
        """Start an invocation with these options (a previous one's client is forgotten, not reused)."""
        self.uri, self.token, self.artifacts, self.client = uri, token, artifacts, None

    def close(self) -> None:
        """Release the client, if one was made."""
        if self.client is not None:
            self.client.close()
            self.client = None

    @property
    def given(self) -> dict[str, Any]:
        """The storage options given on the command line or in the environment."""
        return {k: v for k, v in (("uri", self.uri), ("artifacts", self.artifacts)) if v}


state = State()


class CovexGroup(TyperGroup):
    """Turns Covex errors from any command into one line on stderr and an exit code."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]  # Typer vendors its Context base
        try:
            return super().invoke(ctx)
        except errors.CovexError as exc:
            code = next((c for cls, c in EXIT_CODES.items() if isinstance(exc, cls)), 1)
            hint = " (set COVEX_TOKEN or pass --token)" if exc.message.startswith("no API token") else ""
            fail(exc.message + hint, code)
        except ValidationError as exc:  # a bad COVEX_* variable, read by a command itself
            fail(invalid(exc), 2)
        except BrokenPipeError:
            # The reader went away (`covex ... | head`): stop quietly, as cat does, with 141 (SIGPIPE).
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None
        except OSError as exc:
            # The local file system refused something no command foresaw (a full disk, a read-only
            # folder): the reason and the file, not a traceback.
            where = f" ({exc.filename})" if exc.filename else ""
            fail(f"{exc.strerror or exc}{where}", 1)


def listed(values: list[str] | None) -> list[str]:
    """Repeated options, each of which may also hold a comma-separated list (``--key a --key b`` or ``a,b``)."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def fail(message: str, code: int) -> NoReturn:
    """Print ``message`` as one ``error:`` line on stderr and exit with ``code``."""
    line = re.sub(r"\s*\n\s*", " ", message.strip())  # one line whatever the message holds
    output.err_console.print(f"[red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code) from None


def invalid(exc: ValidationError) -> str:
    """A pydantic ValidationError in one line; for settings, named by their COVEX_* variables."""
    parts = []
    for e in exc.errors():
        message = e["msg"].removeprefix("Value error, ")
        if exc.title == "Settings" and e["loc"]:
            name = "COVEX_" + "_".join(map(str, e["loc"])).upper()
            parts.append(message if message.startswith(name) else f"{name}: {message}")
        else:
            parts.append(f"{'.'.join(map(str, e['loc'])) or exc.title}: {message}")
    return "; ".join(parts)


def settings(values: dict[str, Any]) -> Settings:
    """Settings from the environment and ``values``; a bad value is ``InvalidInput`` naming its variable."""
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise errors.InvalidInput(invalid(exc)) from None


def client() -> Client:
    """The invocation's client, made on first use from the global options."""
    if state.client is None:
        state.client = Client(settings=settings(state.given), token=state.token, on_create=announce_created)
    return state.client


def announce_created(where: str) -> None:
    """The one line every command prints when it made a new registry (so a mistyped --uri shows)."""
    output.err_console.print(f"created a new Covex registry at {where}", highlight=False, soft_wrap=True)


def local_settings(command: str, **values: Any) -> Settings:
    """Settings from --uri/--artifacts for a command that needs the storage itself, not a server."""
    found = settings({**state.given, **values})
    if found.is_remote:
        raise errors.InvalidInput(f"'--uri' for '{command}' must be a data folder or a database URL, not a server URL")
    return found


def open_local(found: Settings) -> RegistryService:
    """Open the registry's service on its own storage, creating the registry (and saying so) if there is none."""
    from covex.service.factory import open_service, registry_exists, registry_location

    existed = registry_exists(found)
    service = open_service(found, create=True)
    if not existed:
        announce_created(registry_location(found))
    return service


def pairs(items: list[str] | None, what: str) -> dict[str, str]:
    """``KEY=VALUE`` options (``--what``) as a mapping."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise errors.InvalidInput(f"'--{what}' expects KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def numbers(items: list[str] | None) -> dict[str, float]:
    """``NAME=NUMBER`` metric options as a mapping."""
    out: dict[str, float] = {}
    for key, value in pairs(items, "metric").items():
        try:
            out[key] = float(value)
        except ValueError:
            raise errors.InvalidInput(f"'--metric {key}' must be a number, got {value!r}") from None
    return out


def version_number(value: str) -> int | str:
    """A version argument: a number, or an alias, stage or ``latest`` as given."""
    return int(value) if value.isascii() and value.isdigit() else value


def read_text_file(path: Path, what: str) -> str:
    """A text file the user named (``what``: the option or argument), or one line saying what is wrong with it."""
    if not path.is_file():
        raise errors.InvalidInput(f"{what} {str(path)!r} is not a file" + ("" if path.exists() else " (no such file)"))
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise errors.InvalidInput(f"{what} {str(path)!r} is not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        raise errors.InvalidInput(f"{what} {str(path)!r} cannot be read: {exc.strerror}") from None
