"""Every ``covex`` command, given bad arguments, answers with one line and the documented exit code.

The commands are found by walking the Typer app, so a new command is run here without anyone
adding it: with too many arguments, without its required ones, with a word for a number, with
hostile names, and against a registry that does not exist. ``CASES`` adds, per command, inputs
with the exact exit code and message; a command without a row there fails ``test_every_command_has_cases``.

Exit codes (README, "Command line"): 2 bad input, 3 not found, 4 conflict or wrong state,
5 not permitted, 6 unavailable, 1 other.
"""

from __future__ import annotations

import traceback
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import covex
from covex.cli import app
from tests import support
from tests.conftest import Registry

HOSTILE = "../users/x"
BIG = "99999999999999999999"  # more than a 64-bit integer holds
ABSENT_ID = "424242"
# Commands that serve until stopped: only ever run here with arguments that fail before they start.
SERVES = {"server", "webhooks dispatch", "serve"}


def _walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _walk(sub, (*path, name))
    else:
        yield " ".join(path), command


COMMANDS: dict[str, Any] = dict(_walk(typer.main.get_command(app)))


@dataclass(frozen=True)
class Param:
    name: str
    kind: type
    argument: bool
    required: bool
    many: bool


def params(command: str) -> list[Param]:
    cmd = COMMANDS[command]
    hints = typing.get_type_hints(cmd.callback)
    out = []
    for p in cmd.params:
        if p.name == "help":
            continue
        kind = hints[p.name]
        kind = next((a for a in typing.get_args(kind) if a is not type(None)), kind) if typing.get_args(kind) else kind
        kind = typing.get_args(kind)[0] if typing.get_origin(kind) is list else kind
        argument = p.param_type_name == "argument"
        out.append(Param(p.name, kind, argument, p.required, p.nargs == -1 or bool(getattr(p, "multiple", False))))
    return out


def fill(command: str, value: Callable[[Param], str], *, optional: bool = False) -> list[str]:
    """Arguments (and required options) for ``command``, each from ``value``."""
    args: list[str] = []
    for p in params(command):
        if p.argument and (p.required or optional):
            args.append(value(p))
        elif not p.argument and p.required:
            option = next(o for o in COMMANDS[command].params if o.name == p.name).opts[0]
            args += [option, value(p)]
    return [*command.split(), *args]


# -- running and judging ------------------------------------------------------------------


@dataclass
class Ran:
    exit_code: int
    stdout: str
    stderr: str


Run = Callable[..., Ran]


def _embedded_runner(folder: Path) -> Run:
    def run(*args: str, env: dict[str, str] | None = None) -> Ran:
        base = {"COVEX_URI": str(folder), "COVEX_TOKEN": "", "COVEX_ARTIFACTS": "", "COLUMNS": "200"}
        r = CliRunner().invoke(app, list(args), env={**base, **(env or {})})
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            tb = "".join(traceback.format_exception(r.exception))
            pytest.fail(f"covex {' '.join(args)} raised instead of printing one line:\n{tb}")
        return Ran(r.exit_code, r.stdout, r.stderr)

    return run


def _http_runner(reg: Registry) -> Run:
    def run(*args: str, env: dict[str, str] | None = None) -> Ran:
        extra = dict(env or {})
        token = extra.pop("COVEX_TOKEN", None)
        assert not extra, "other environment cases run embedded only"
        r = reg.cli(*args, token=token)  # raises what the command raised, traceback and all
        return Ran(r.exit_code, r.stdout, r.stderr)

    return run


def one_line_error(r: Ran, code: int | set[int], message: str = "") -> str:
    codes = {code} if isinstance(code, int) else code
    assert "Traceback" not in r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert r.exit_code in codes, f"exit {r.exit_code}, wanted {sorted(codes)}: {r.stderr}"
    assert 1 == len(lines), f"stderr is not one line:\n{r.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    assert message in lines[0]
    return lines[0]


def usage_error(r: Ran) -> None:
    """Typer's own report of arguments that do not fit the command: exit code 2, usage shown."""
    assert "Traceback" not in r.stdout + r.stderr
    assert (2, True) == (r.exit_code, "Usage:" in r.stderr), r.stderr


# -- the registries -----------------------------------------------------------------------


def _ensure_churn(c: covex.Client, files: Path) -> None:
    """A model with one READY version, for the cases that need something to exist."""
    try:
        c.get_version("churn", 1)
    except covex.NotFound:
        c.create_model("churn")
        c.create_version("churn", files)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return support.make_tree(tmp_path_factory.mktemp("files"), {"model.pkl": b"weights"})


@pytest.fixture(scope="module")
def embedded_folder(tmp_path_factory: pytest.TempPathFactory, files: Path) -> Path:
    folder = tmp_path_factory.mktemp("embedded") / "data"
    with covex.Client(folder) as c:
        _ensure_churn(c, files)
    return folder


@pytest.fixture(params=["embedded", "http"])
def backend(
    request: pytest.FixtureRequest, embedded_folder: Path, files: Path, registries: Callable[[str, str], Registry]
) -> tuple[str, Run]:
    if request.param == "embedded":
        return "embedded", _embedded_runner(embedded_folder)
    reg = registries("http", "sqlite")
    reg.reset()  # shared with other tests: start from the same state as the embedded registry
    with registries("embedded", "sqlite").client() as c:  # the same database, without the HTTP round trips
        _ensure_churn(c, files)
    return "http", _http_runner(reg)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths (./covex-data, ../users/x) land in a temporary folder, never in the checkout."""
    monkeypatch.chdir(tmp_path)


# -- generated from the app: every command ----------------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help(command: str, embedded_folder: Path) -> None:
    r = _embedded_runner(embedded_folder)(*command.split(), "--help")
    assert (0, True) == (r.exit_code, "Usage:" in r.stdout), r.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_wrong_arity_is_a_usage_error(command: str, embedded_folder: Path) -> None:
    run = _embedded_runner(embedded_folder)
    ps = params(command)
    if not any(p.argument and p.many for p in ps):
        usage_error(run(*fill(command, lambda p: "1", optional=True), "surplus"))
    if any(p.required for p in ps):
        usage_error(run(*command.split()))


@pytest.mark.parametrize("command", sorted(c for c in COMMANDS if any(p.kind in (int, float) for p in params(c))))
def test_a_word_for_a_number_is_a_usage_error(command: str, embedded_folder: Path) -> None:
    run = _embedded_runner(embedded_folder)
    for p in params(command):
        if p.kind not in (int, float):
            continue
        args = fill(command, lambda q, p=p: "x" if q.name == p.name else "1")
        if not p.argument:
            option = next(o for o in COMMANDS[command].params if o.name == p.name).opts[0]
            args = [*fill(command, lambda q: "1"), option, "x"]
        usage_error(run(*args))


def _hostile(p: Param) -> str:
    if p.kind is int:
        return ABSENT_ID
    if p.kind is Path:
        return "missing/file.yaml"
    return HOSTILE


HOSTILE_COMMANDS = sorted(c for c in COMMANDS if c not in SERVES and any(p.required for p in params(c)))


@pytest.mark.parametrize("command", HOSTILE_COMMANDS)
def test_hostile_names_are_refused_in_one_line(command: str, backend: tuple[str, Run]) -> None:
    """``../users/x`` and friends: refused as bad input or found to name nothing, on both backends."""
    _, run = backend
    one_line_error(run(*fill(command, _hostile)), {2, 3})


BIG_COMMANDS = sorted(c for c in COMMANDS if any(p.argument and p.kind is int for p in params(c)))


@pytest.mark.parametrize("command", BIG_COMMANDS)
def test_numbers_out_of_range_are_refused_in_one_line(command: str, embedded_folder: Path) -> None:
    run = _embedded_runner(embedded_folder)
    one_line_error(run(*fill(command, lambda p: BIG if p.kind is int else "churn" if p.argument else "1")), {2, 3})
    one_line_error(run(*fill(command, lambda p: "0" if p.kind is int else "churn" if p.argument else "1")), {2, 3})


@pytest.mark.parametrize("command", sorted(c for c in COMMANDS if c not in SERVES))
def test_nothing_is_created_without_saying_so(command: str, tmp_path: Path) -> None:
    """Against a folder with no registry: reads say so and leave no trace; a write that makes one says it did."""
    absent = tmp_path / "absent"
    r = _embedded_runner(absent)(*fill(command, _hostile))
    assert "Traceback" not in r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    if absent.exists():
        assert [f"created a new Covex registry at {absent}"] == lines[:1], r.stderr
    if "no Covex registry" in r.stderr:
        one_line_error(r, 3, f"no Covex registry at {absent}")
        assert not absent.exists()
    if r.exit_code != 0:
        assert lines[-1].startswith("error: ") or "Usage:" in r.stderr, r.stderr


# -- the table: per command, inputs with their exact answer -------------------------------


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    code: int
    message: str
    where: tuple[str, ...] = ("embedded", "http")
    env: dict[str, str] = field(default_factory=dict, hash=False)


MISSING = "missing/registry.yaml"
NO_SERVER = "http://127.0.0.1:9"  # the discard port: nothing answers
GLOBAL = ("--uri", "--token", "--artifacts")


def C(*args: str, code: int, message: str, where: str = "both", env: dict[str, str] | None = None) -> Case:
    return Case(args, code, message, ("embedded", "http") if where == "both" else (where,), env or {})


def command_of(args: tuple[str, ...]) -> str:
    rest = list(args)
    while rest and rest[0] in GLOBAL:
        rest = rest[2:]
    path = []
    for word in rest:
        if " ".join([*path, word]) in COMMANDS or any(c.startswith(" ".join([*path, word]) + " ") for c in COMMANDS):
            path.append(word)
        else:
            break
    return " ".join(path)


CASES: list[Case] = [
    # set-up and maintenance
    C("init", "/proc/covex", code=2, message="cannot create a Covex registry at /proc/covex", where="embedded"),
    C("init", "afile", code=2, message="afile is a file, not a folder", where="embedded"),
    C("--uri", NO_SERVER, "init", code=2, message="must be a data folder or a database URL", where="embedded"),
    C("--uri", NO_SERVER, "server", code=2, message="'--uri' for 'server' must be a data folder", where="embedded"),
    C("--uri", "/proc/covex", "server", code=2, message="cannot create a Covex registry", where="embedded"),
    C("--uri", NO_SERVER, "db", "upgrade", code=2, message="not a server URL", where="embedded"),
    C("--uri", "/proc/covex", "db", "upgrade", code=2, message="cannot create a Covex registry", where="embedded"),
    C("--uri", NO_SERVER, "webhooks", "dispatch", code=2, message="not a server", where="embedded"),
    C("--uri", NO_SERVER, "admin", "bootstrap", code=2, message="not a server URL", where="embedded"),
    C("admin", "bootstrap", "--name", HOSTILE, code=2, message="'name' must be", where="embedded"),
    C("gc", code=5, message="token", env={"COVEX_TOKEN": "cvx_forged"}),
    C("fsck", code=5, message="token", env={"COVEX_TOKEN": "cvx_forged"}),
    C("fsck", "--after", "../etc", code=2, message="'after'"),
    C("--uri", "/proc/covex", "fsck", code=3, message="no Covex registry at /proc/covex", where="embedded"),
    C("--uri", "/proc/covex", "gc", code=3, message="no Covex registry at /proc/covex", where="embedded"),
    C("--uri", NO_SERVER, "gc", code=6, message="127.0.0.1:9", where="embedded"),
    C("stages", "list", code=2, message="COVEX_STAGES", where="embedded", env={"COVEX_STAGES": "Only"}),
    C("--uri", NO_SERVER, "stages", "list", code=6, message="127.0.0.1:9", where="embedded"),
    C("whoami", code=5, message="token", env={"COVEX_TOKEN": "cvx_forged"}),
    C("--uri", "/proc/covex", "whoami", code=3, message="no Covex registry", where="embedded"),
    # models
    C("models", "create", HOSTILE, code=2, message="'name' must not contain '..'"),
    C("models", "create", "churn", code=4, message="already exists"),
    C("models", "list", "-f", "name = ", code=2, message="invalid filter"),
    C("models", "list", "-n", "0", code=2, message="'max_results'"),
    C("models", "list", "--page-token", "xyz", code=2, message="'page_token'"),
    C("models", "show", "ghost", code=3, message="model 'ghost' does not exist"),
    C("models", "rename", "churn", HOSTILE, code=2, message="'new_name' must not contain '..'"),
    C("models", "rename", "ghost", "ghost2", code=3, message="'ghost'"),
    C("models", "update", "ghost", "-d", "x", code=3, message="'ghost'"),
    C("models", "tag", "churn", "novalue", code=2, message="KEY=VALUE"),
    C("models", "tag", "ghost", "k=v", code=3, message="'ghost'"),
    C("models", "untag", "churn", HOSTILE, code=2, message="'key'"),
    C("models", "untag", "ghost", "k", code=3, message="'ghost'"),
    C("models", "delete", "ghost", "--yes", code=3, message="'ghost'"),
    C("models", "delete", "churn", code=2, message="pass --yes"),
    # versions
    C("versions", "create", "churn", "missing/dir", code=2, message="'path' 'missing/dir' does not exist"),
    C("versions", "create", "ghost", "--source", "s3://b/m", code=3, message="'ghost'"),
    C("versions", "create", "churn", "--source", "s3://b/m", "-m", "auc=high", code=2, message="must be a number"),
    C("versions", "list", "ghost", code=3, message="'ghost'"),
    C("versions", "list", "churn", "-n", "0", code=2, message="'max_results'"),
    C("versions", "search", "name = ", code=2, message="invalid filter"),
    C("versions", "search", "--order-by", "bogus", code=2, message="order_by"),
    C(
        "versions",
        "show",
        "churn",
        "abc",
        code=2,
        message="'abc' of model 'churn' is not a version: give a version number",
    ),
    C("versions", "show", "churn@champion", code=2, message="did you mean models:/churn@champion?"),
    C("versions", "show", "models:/churn/abc", code=2, message="'abc' is not a version"),
    C("versions", "show", "churn", "99", code=3, message="version 99"),
    C("versions", "show", "churn", BIG, code=2, message="'version' must be a number from 1 to"),
    C("versions", "history", "ghost", code=3, message="'ghost'"),
    C("versions", "history", "churn", "--version", "0", code=2, message="'version'"),
    C("versions", "files", "churn", "99", code=3, message="version 99"),
    C("versions", "files", "models:/churn@nope", code=3, message="no alias 'nope'"),
    C("versions", "update", "churn", "99", "-d", "x", code=3, message="version 99"),
    C("versions", "tag", "churn", "99", "k=v", code=3, message="version 99"),
    C("versions", "tag", "churn", "1", "novalue", code=2, message="KEY=VALUE"),
    C("versions", "untag", "churn", BIG, "k", code=2, message="'version'"),
    C("versions", "untag", "churn", "99", "k", code=3, message="version 99"),
    C("versions", "log-metric", "churn", "1", "auc=high", code=2, message="must be a number"),
    C("versions", "log-metric", "ghost", "1", "auc=1", code=3, message="'ghost'"),
    C("versions", "log-param", "churn", "1", "novalue", code=2, message="KEY=VALUE"),
    C("versions", "log-param", "ghost", "1", "a=b", code=3, message="'ghost'"),
    C("versions", "delete", "churn", "99", "--yes", code=3, message="version 99"),
    C("versions", "delete", "churn", "1", code=2, message="pass --yes"),
    C("card", "churn", "abc", code=2, message="is not a version"),
    C("card", "ghost", "1", code=3, message="'ghost'"),
    C("card", "churn", "1", "--set", "binary.dat", code=2, message="is not UTF-8 text"),
    C("card", "churn", "1", "--set", MISSING, code=2, message="is not a file"),
    C("card", "churn", "1", "-f", "bogus=1", code=2, message="unknown fields: bogus"),
    C("download", "models:/churn/1", "afile", code=2, message="'dst' 'afile' is a file"),
    C("download", "models:/churn/1", "afile/sub", code=2, message="which is a file"),
    C("download", "models:/churn/1", "/proc/covex-out", code=2, message="cannot create folder /proc/covex-out"),
    C("download", "models:/ghost/1", "out", code=3, message="'ghost'"),
    C("download", "churn@champion", "out", code=2, message="did you mean models:/churn@champion?"),
    # stages and aliases
    C("stages", "set", "churn", "1", "Nope", code=2, message="'Nope' is not a stage"),
    C("stages", "set", "ghost", "1", "Production", code=3, message="'ghost'"),
    C("stages", "set", "churn", "99", "Production", code=3, message="version 99"),
    C("stages", "latest", "churn", "Nope", code=2, message="'Nope' is not a stage"),
    C("stages", "latest", "churn", "Production", code=3, message="Production"),
    C("aliases", "set", "churn", "champion", "99", code=3, message="version 99"),
    C("aliases", "set", "churn", "latest", "1", code=2, message="'alias'"),
    C("aliases", "delete", "churn", "nope", code=3, message="nope"),
    C("aliases", "show", "churn", "nope", code=3, message="no alias 'nope'"),
    # registering and importing
    C("register", "--config", MISSING, code=2, message="does not exist", where="embedded"),
    C("register", "--config", "binary.dat", code=2, message="not UTF-8", where="embedded"),
    C("import", "mlflow", "--from", "notaurl", code=2, message="is not a tracking URI"),
    C("import", "mlflow", "--from", NO_SERVER, code=6, message="cannot reach MLflow"),
    # identity and access
    C("users", "create", HOSTILE, code=2, message="'name' must be"),
    C("users", "show", "ghost", code=3, message="'ghost'"),
    C("users", "update", "ghost", "--admin", code=3, message="'ghost'"),
    C("users", "delete", "ghost", "--yes", code=3, message="'ghost'"),
    C("users", "list", code=3, message="no Covex registry", where="embedded", env={"COVEX_URI": "absent"}),
    C("groups", "create", HOSTILE, code=2, message="'name' must be"),
    C("groups", "show", "ghost", code=3, message="'ghost'"),
    C("groups", "delete", "ghost", "--yes", code=3, message="'ghost'"),
    C("groups", "add-member", "ghost", "ghost", code=3, message="'ghost'"),
    C("groups", "remove-member", "ghost", "ghost", code=3, message="'ghost'"),
    C("groups", "list", code=3, message="no Covex registry", where="embedded", env={"COVEX_URI": "absent"}),
    C("tokens", "create", "--user", "ghost", code=3, message="'ghost'"),
    C("tokens", "create", "--expires-in-days", "-1", code=2, message="expires"),
    C("tokens", "list", code=5, message="token", env={"COVEX_TOKEN": "cvx_forged"}),
    C("tokens", "revoke", ABSENT_ID, code=3, message=ABSENT_ID),
    C("grants", "add", "everyone", "superuser", code=2, message="'role'"),
    C("grants", "add", "user:ghost", "reader", code=3, message="'ghost'"),
    C("grants", "list", "--model", "ghost", code=3, message="'ghost'"),
    C("grants", "revoke", ABSENT_ID, code=3, message=ABSENT_ID),
    # policies, requests, comments, history
    C("policies", "apply", MISSING, code=2, message="is not a file (no such file)"),
    C("policies", "apply", "binary.dat", code=2, message="is not UTF-8 text"),
    C("policies", "list", code=3, message="no Covex registry", where="embedded", env={"COVEX_URI": "absent"}),
    C("policies", "show", "--stage", "Production", code=3, message="Production"),
    C("policies", "show", code=2, message="exactly one of '--stage' or '--alias'"),
    C("policies", "delete", "--stage", "Production", code=3, message="Production"),
    C("policies", "delete", "--stage", "Production", "--model", "ghost", code=3, message="for model 'ghost'"),
    C("policies", "show", "ghost", code=3, message="'ghost'"),
    C("policies", "set", code=2, message="exactly one of '--stage' or '--alias'"),
    C("policies", "set", "--stage", "Production", "--tag", "team", code=2, message="'tag' must be written key=value"),
    C("policies", "set", "--alias", "champion", "--from", "Test", code=2, message="'from' applies to stages only"),
    C("requests", "create", "churn", "1", "--stage", "Production", code=2, message="has no policy"),
    C("requests", "create", "ghost", "1", "--stage", "Production", code=3, message="'ghost'"),
    C("requests", "list", "--status", "bogus", code=2, message="'status'"),
    C("requests", "show", ABSENT_ID, code=3, message=ABSENT_ID),
    C("requests", "inbox", code=3, message="no Covex registry", where="embedded", env={"COVEX_URI": "absent"}),
    C("requests", "approve", ABSENT_ID, code=3, message=ABSENT_ID),
    C("requests", "reject", ABSENT_ID, code=3, message=ABSENT_ID),
    C("requests", "cancel", ABSENT_ID, code=3, message=ABSENT_ID),
    C("comments", "add", "ghost", "1", "hi", code=3, message="'ghost'"),
    C("comments", "list", "churn", "99", code=3, message="version 99"),
    C("rollback", "ghost", "--stage", "Production", code=3, message="'ghost'"),
    C("rollback", "churn", "--stage", "Production", code=3, message="nothing to roll back to"),
    C("history", "churn", "--stage", "Production", "--at", "bogus", code=2, message="'at'"),
    C("history", "ghost", "--stage", "Production", code=3, message="'ghost'"),
    # audit and webhooks
    C("audit", "verify", "--file", MISSING, code=2, message="cannot be read"),
    C("audit", "export", "-o", "/proc/covex.jsonl", code=2, message="cannot be written"),
    C("audit", "list", "--since", "yesterday", code=2, message="'--since'"),
    C("webhooks", "create", "ftp://x", "-e", "*", code=2, message="'url'"),
    C("webhooks", "create", "http://127.0.0.1:1/h", code=2, message="--event"),
    C("webhooks", "list", "--model", "ghost", code=3, message="'ghost'"),
    C("webhooks", "show", ABSENT_ID, code=3, message=ABSENT_ID),
    C("webhooks", "update", ABSENT_ID, "--inactive", code=3, message=ABSENT_ID),
    C("webhooks", "delete", ABSENT_ID, code=3, message=ABSENT_ID),
    C("webhooks", "rotate-secret", ABSENT_ID, code=3, message=ABSENT_ID),
    C("webhooks", "deliveries", ABSENT_ID, code=3, message=ABSENT_ID),
    C("webhooks", "redeliver", ABSENT_ID, code=3, message=ABSENT_ID),
    # deploy
    C("serve", "not-a-uri", code=2, message="must start with 'models:/'"),
    C("serve", "models:/ghost/1", code=3, message="'ghost'"),
    C("serve", "models:/churn/1", "--workers", "0", code=2, message="'--workers'"),
    C("batch", "models:/ghost/1", "-i", MISSING, "-o", "out.parquet", code=2, message="does not exist"),
    C("batch", "models:/churn/1", "-i", "afile", "-o", "out.parquet", code=2, message="neither .parquet nor .csv"),
    C("deployments", "list", "ghost", code=3, message="'ghost'"),
    C("deployments", "show", ABSENT_ID, code=3, message=ABSENT_ID),
    # monitor
    C("monitor", "reference", "models:/churn/1", "--data", MISSING, code=2, message="does not exist"),
    C("monitor", "reference", "models:/churn/1", "--data", "afile", code=2, message="neither .parquet nor .csv"),
    C("monitor", "check", "models:/ghost/1", code=3, message="'ghost'"),
    C("monitor", "check", "models:/churn/1", code=4, message="has no drift reference"),
    C("monitor", "check", "models:/churn/1", "--fail-on", "red", code=2, message="'--fail-on'"),
    C("monitor", "run", code=2, message="name a model, or give --all"),
    C("monitor", "run", "ghost", code=3, message="'ghost'"),
    C("monitor", "labels", "models:/churn/1", "--file", MISSING, "--target", "y", code=2, message="does not exist"),
    C("monitor", "report", "models:/churn/1", code=2, message="give --out FILE.html, --png DIR, or both"),
    C("monitor", "report", "models:/churn/1", "--out", "r.html", code=3, message="has no monitoring result yet"),
    C("monitor", "report", "models:/ghost/1", "--png", "p", code=3, message="'ghost'"),
    C("monitor", "status", "ghost", code=3, message="'ghost'"),
    C("monitor", "status", "--history", code=2, message="need the model's NAME"),
    C("monitor", "status", "churn", "--version", "99", code=3, message="version 99"),
    C("monitor", "run", "--all", "--since", "5y", code=2, message="'since'"),
    C("monitor", "show", ABSENT_ID, code=3, message=ABSENT_ID),
    C("monitor", "config", "set", "churn", MISSING, code=2, message="cannot read"),
    C("monitor", "config", "set", "churn", "afile", code=2, message="line 1: the config must be a mapping"),
    C("monitor", "config", "show", "ghost", code=3, message="'ghost'"),
    # compare and evaluations
    C("compare", "models:/churn/1", code=2, message="'--data' and '--target' are required"),
    C("compare", "models:/churn/1", "--data", MISSING, "--target", "y", code=2, message="does not exist"),
    C("compare", "models:/ghost/1", "--data", "afile", "--target", "y", code=3, message="'ghost'"),
    C("compare", "models:/churn/1", "--online", "--data", "afile", code=2, message="leave out '--data'"),
    C("compare", "models:/churn/1", "--data", "afile", "--target", "y", "--since", "1d", code=2, message="'--online'"),
    C("serve", "models:/churn/1", "--split", "challenger=100%", code=2, message="'--split'"),
    C("explain", "models:/churn/1", "--data", MISSING, code=2, message="does not exist"),
    C("explain", "models:/churn/1", "--data", "afile", "--rows", "0", code=2, message="'--rows'"),
    C("explain", "models:/churn/1", "--data", "afile", "--out", ".", code=2, message="'--out'"),
    C("explain", "models:/churn/1", "--data", "afile", "--top", "0", code=2, message="'--top'"),
    C("explain", "models:/churn/1", "--data", "afile", "--rows", "3", "--row", "5", code=2, message="'--row' 5"),
    C("evaluations", "list", "ghost", code=3, message="'ghost'"),
    C("evaluations", "list", "churn", "--kind", "nope", code=2, message="'kind'"),
    C("evaluations", "show", ABSENT_ID, code=3, message=ABSENT_ID),
    # trust
    C("scan", "ghost", "1", code=3, message="'ghost'"),
    C("scan", "churn", "0", code=2, message="version"),
    C("verify", "models:/ghost/1", code=3, message="'ghost'"),
    C("keys", "list", code=3, message="no Covex registry", where="embedded", env={"COVEX_URI": "absent"}),
    C("keys", "generate", "--out", "afile", code=2, message="afile exists already"),
    C("keys", "generate", "--out", "/proc/covex.pem", code=2, message="cannot write /proc/covex.pem"),
    C("keys", "trust", "dev", "not-a-key", code=2, message="'public_key'"),
    C("keys", "untrust", ABSENT_ID, code=3, message=ABSENT_ID),
    C("bundle", "export", "models:/churn/1", "--out", "b.cvxb", code=4, message="no signing key"),
    C("bundle", "import", "afile", code=2, message="not a Covex bundle"),
    C("bundle", "import", MISSING, code=2, message="cannot read"),
    C("bundle", "show", "models:/ghost/1", code=3, message="'ghost'"),
]


def test_every_command_has_cases() -> None:
    covered = {command_of(case.args) for case in CASES}
    assert set() == set(COMMANDS) - covered, "add rows to CASES for these commands"
    assert set() == covered - set(COMMANDS), "rows for commands that do not exist"


@pytest.mark.parametrize(
    ("backend", "case"),
    [pytest.param(where, c, id=f"{where}: {' '.join(c.args)}") for c in CASES for where in c.where],
    indirect=["backend"],
)
def test_case(backend: tuple[str, Run], case: Case, tmp_path: Path) -> None:
    _, run = backend
    (tmp_path / "afile").write_text("a file, not a folder")
    (tmp_path / "binary.dat").write_bytes(bytes(range(128, 256)))
    one_line_error(run(*case.args, env=case.env), case.code, case.message)
