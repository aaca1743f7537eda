"""``covex serve models:/churn@champion``: a scoring server for the version a URI points to."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
) -> None:
    """Serve a registered model over HTTP, following the URI as it moves.

    `POST /invocations` takes MLflow's scoring formats; `/v2/models/NAME/infer` the Open Inference
    Protocol. `GET /ready` answers 200 once the version is loaded and warmed up; `GET /version`
    says which version answers; `GET /metrics` is for Prometheus. When the alias or stage moves,
    the new version is loaded, verified and warmed up in the background, then swapped in.
    """
    from covex.extras import needs_extra, require_extra

    require_extra("'covex serve'", "serving")
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
    if log_inferences is not None:
        from covex.serving.inference_log import check_location

        check_location(log_inferences)
    token = _secret(token_file, "--token-file")
    secret = _secret(webhook_secret_file, "--webhook-secret-file")
    c = client()
    version = c.get_version(uri)  # a URI that resolves to nothing stops here, with the registry's message
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
    )
    state.close()
    output.err_console.print(
        f"Serving {uri} (now {version.name} version {version.version}) on http://{host}:{port} "
        f"with {workers} worker(s); checking where it points every {poll_seconds:g} s",
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
