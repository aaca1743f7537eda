"""``covex serve models:/churn@champion``: a scoring server for the version a URI points to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from covex.cli import output
from covex.domain.errors import InvalidInput


def serve(
    uri: Annotated[
        str, typer.Argument(help="models:/NAME@ALIAS, models:/NAME/STAGE, models:/NAME/VERSION or models:/NAME/latest")
    ],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8081,
    workers: Annotated[int, typer.Option(help="Worker processes, each with its own copy of the model.")] = 1,
    poll_seconds: Annotated[
        float, typer.Option("--poll-seconds", help="How often to look where the URI points (hot swap).")
    ] = 5.0,
    max_body: Annotated[int, typer.Option("--max-body", help="Largest request body in bytes (413 above).")] = 8
    * 1024
    * 1024,
    token_file: Annotated[
        Path | None,
        typer.Option("--token-file", help="File holding the bearer token the scoring endpoints require."),
    ] = None,
    webhook_secret_file: Annotated[
        Path | None,
        typer.Option(
            "--webhook-secret-file", help="File holding the registry webhook's secret: POST /-/refresh must be signed."
        ),
    ] = None,
    log_inferences: Annotated[
        str | None,
        typer.Option(
            "--log-inferences",
            help="Folder or s3://bucket/prefix to write every scored request to (Parquet, in the background).",
        ),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    advertise: Annotated[
        str | None,
        typer.Option(
            "--advertise",
            help="The address the registry's deployment record gives for this server "
            "(default http://HOST:PORT, with this machine's name when listening on every interface).",
        ),
    ] = None,
    record: Annotated[
        bool, typer.Option("--record/--no-record", help="Record this server as a deployment of the version.")
    ] = True,
    shadow: Annotated[
        str | None,
        typer.Option(
            "--shadow",
            help="models:/NAME@ALIAS (or an alias or version of the served model) to score every request again "
            "after it is answered; its predictions go only to the inference log (needs --log-inferences).",
        ),
    ] = None,
    shadow_queue: Annotated[
        int,
        typer.Option("--shadow-queue", help="Answered requests waiting for the shadow at most; more are skipped."),
    ] = 100,  # as ServeOptions.shadow_queue (covex.serving needs the serving extra: not imported here)
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="ALIAS=P% (or VERSION=P%, models:/NAME@ALIAS=P%): that version answers P% of the requests instead "
            "(0 < P < 100).",
        ),
    ] = None,
    split_key: Annotated[
        str | None,
        typer.Option(
            "--split-key",
            help="Header whose value keeps each caller on one side of --split (random without it).",
        ),
    ] = None,
    explain: Annotated[
        bool,
        typer.Option("--explain", help="Answer POST /explain with SHAP contributions (needs the explain extra)."),
    ] = False,
) -> None:
    """Serve a registered model over HTTP, following the URI as it moves.

    `POST /invocations` takes MLflow's scoring formats; `/v2/models/NAME/infer` the Open Inference
    Protocol. `GET /ready` answers 200 once the version is loaded and warmed up; `GET /version`
    says which version answers; `GET /metrics` is for Prometheus. When the alias or stage moves,
    the new version is loaded, verified and warmed up in the background, then swapped in.
    `--shadow` scores every request on a second version after answering it, for the log only;
    `--split` lets a second version answer a share of the requests. `--explain` adds `POST /explain`:
    each feature's SHAP contribution to each row, for the version that answers.
    """
    from covex.extras import needs_extra, require_extra

    require_extra("'covex serve'", "serving")
    if explain:
        require_extra("'covex serve --explain'", "explain")
    with needs_extra("'covex serve'"):
        _serve(
            uri,
            host,
            port,
            workers,
            poll_seconds,
            max_body,
            token_file,
            webhook_secret_file,
            log_inferences,
            access_log,
            (advertise or _address(host, port)) if record else None,
            Challenger(shadow, shadow_queue, split, split_key),
            explain,
        )


def _address(host: str, port: int) -> str:
    """Where clients reach this server, as the deployment record says it."""
    import socket

    name = socket.getfqdn() if host in ("0.0.0.0", "::", "") else host
    return f"http://[{name}]:{port}" if ":" in name else f"http://{name}:{port}"


def _serve(
    uri: str,
    host: str,
    port: int,
    workers: int,
    poll_seconds: float,
    max_body: int,
    token_file: Path | None,
    webhook_secret_file: Path | None,
    log_inferences: str | None,
    access_log: bool,
    record_target: str | None,
    challenger: Challenger,
    explain: bool = False,
) -> None:
    from covex.cli.context import client, state
    from covex.domain.deployments import MAX_TARGET
    from covex.domain.names import validate_text
    from covex.domain.uris import parse_model_uri
    from covex.serving import ServeOptions, run

    parse_model_uri(uri)  # a malformed URI is refused before anything else
    if workers < 1:
        raise InvalidInput(f"'--workers' must be at least 1, got {workers}")
    if poll_seconds <= 0:
        raise InvalidInput(f"'--poll-seconds' must be more than 0, got {poll_seconds:g}")
    if max_body < 1:
        raise InvalidInput(f"'--max-body' must be at least 1 byte, got {max_body}")
    if not 0 < port < 65536:
        raise InvalidInput(f"'--port' must be from 1 to 65535, got {port}")
    if record_target is not None:
        validate_text(record_target, "--advertise", MAX_TARGET, required=True)
    challenger.check(uri, log_inferences)
    if log_inferences is not None:
        from covex.serving.inference_log import check_location

        check_location(log_inferences)
    token = _secret(token_file, "--token-file")
    secret = _secret(webhook_secret_file, "--webhook-secret-file")
    c = client()
    version = c.get_version(uri)  # a URI that resolves to nothing stops here, with the registry's message
    other = challenger.resolve(c, uri)
    settings = c.settings
    registry: dict[str, object] = {"uri": settings.uri, "artifacts": settings.artifacts, "token": settings.token}
    registry |= {"cache_dir": settings.cache_dir, "stages": settings.stages}
    options = ServeOptions(
        uri=uri,
        registry={k: v for k, v in registry.items() if v is not None},
        poll_seconds=poll_seconds,
        max_body=max_body,
        token=token,
        webhook_secret=secret,
        log_inferences=log_inferences,
        record_target=record_target,
        explain=explain,
        **challenger.options(),
    )
    state.close()
    output.err_console.print(
        f"Serving {uri} (now {version.name} version {version.version}) on http://{host}:{port} "
        f"with {workers} worker(s); checking where it points every {poll_seconds:g} s{other}",
        highlight=False,
        soft_wrap=True,
    )
    run(options, host=host, port=port, workers=workers, access_log=access_log)


def _secret(path: Path | None, option: str) -> str | None:
    if path is None:
        return None
    from covex.cli.context import read_text_file

    text = read_text_file(path, f"'{option}'").strip()
    if not text:
        raise InvalidInput(f"'{option}' {str(path)!r} is empty")
    return text


@dataclass
class Challenger:
    """What ``--shadow``, ``--shadow-queue``, ``--split`` and ``--split-key`` ask for, checked."""

    shadow: str | None
    shadow_queue: int
    split: str | None
    split_key: str | None
    split_uri: str | None = None
    split_percent: float = 0.0

    def check(self, uri: str, log_inferences: str | None) -> None:
        """Refuse what does not fit before the registry is asked anything."""
        from covex.serving.challenger import challenger_uri, check_header_name, parse_split

        if self.shadow is not None and self.split is not None:
            raise InvalidInput("give '--shadow' or '--split', not both: a version is either scored silently or answers")
        if self.shadow_queue < 1:
            raise InvalidInput(f"'--shadow-queue' must be at least 1, got {self.shadow_queue}")
        if self.split_key is not None:
            if self.split is None:
                raise InvalidInput("'--split-key' needs '--split ALIAS=P%'")
            check_header_name(self.split_key)
        if self.shadow is not None:
            self.shadow = challenger_uri(self.shadow, uri, "--shadow")
            if log_inferences is None:
                raise InvalidInput(
                    "'--shadow' needs '--log-inferences DIR': the shadow's predictions are only written there"
                )
        if self.split is not None:
            self.split_uri, self.split_percent = parse_split(self.split, uri)

    def resolve(self, client: Any, uri: str) -> str:
        """Check the other version exists and takes what the served one does; a note for the start-up line."""
        from covex.serving.challenger import check_compatible

        option, other = ("--shadow", self.shadow) if self.shadow is not None else ("--split", self.split_uri)
        if other is None:
            return ""
        check_compatible(client, uri, other, option, same_columns=option == "--split")
        found = client.get_version(other)
        if option == "--shadow":
            return f"; shadow {other} (now version {found.version}) scored after each answer"
        return f"; {other} (now version {found.version}) answers {self.split_percent:g}% of requests"

    def options(self) -> dict[str, Any]:
        """The ``ServeOptions`` fields."""
        return {
            "shadow": self.shadow,
            "shadow_queue": self.shadow_queue,
            "split": self.split_uri,
            "split_percent": self.split_percent,
            "split_key": self.split_key,
        }
