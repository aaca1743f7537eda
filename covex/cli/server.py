"""The commands that run on the registry's own storage rather than through a client:
``covex init``, ``covex server`` and ``covex db upgrade``."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from covex.cli import output
from covex.cli.context import local_settings, open_local, state

db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this area's commands and groups to the main app."""
    app.command("init")(init)
    app.command("server")(server)
    app.add_typer(db_app, name="db")


def init(
    path: Annotated[
        str | None,
        typer.Argument(
            help="Data folder or database URL; default --uri, $COVEX_URI or ./covex-data.", show_default=False
        ),
    ] = None,
) -> None:
    """Create a new, empty registry (a data folder with its SQLite database, or a database's tables).

    Commands that only read never create one: they report that there is no registry. The
    first write (`covex models create`, `covex server`) also creates it.
    """
    from covex.service.factory import registry_exists, registry_file, registry_location, schema_revision

    settings = local_settings("init", **({"uri": path} if path else {}))
    existed = registry_exists(settings)
    service = open_local(settings)  # creates it, and says so; or brings its schema up to date
    try:
        revision = schema_revision(service)
    finally:
        service.close()
    where = registry_location(settings)
    if registry_file(settings) is None:  # a server database: it existed; now it holds the tables
        output.console.print(f"the Covex registry at {where} is ready (schema revision {revision})", highlight=False)
    elif existed:
        output.console.print(f"a Covex registry already exists at {where}; nothing to do", highlight=False)


def server(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes (stateless; share the database).")] = 1,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Accept calls without tokens, all as the local admin (experiments only).")
    ] = False,
) -> None:
    """Run the registry server (REST API under /api/v1, docs at /docs, MLflow's API under /api/2.0/mlflow).

    Every API call needs a bearer token. On the first start the server creates the
    admin user 'admin' and prints its token once. A data folder that holds no registry
    yet gets a new one.
    """
    import uvicorn

    from covex.server import create_app
    from covex.server.protocol import uvicorn_options

    values: dict[str, Any] = {"auth": False} if no_auth else {}
    settings = local_settings("server", **values)
    service = open_local(settings)
    if settings.auth:
        token = service.access.bootstrap_admin("admin")
        if token is not None:
            output.err_console.print(
                f"Created the admin user 'admin'. Its API token, shown only now:\n\n    {token.secret}\n\n"
                "Keep it safe: export COVEX_TOKEN=<token> to use it.",
                highlight=False,
            )
    else:
        output.err_console.print("Authentication is OFF (--no-auth): every caller acts as the local admin.")
    if settings.dispatch_interval > 0:
        output.err_console.print(
            f"Sending webhooks from the outbox every {settings.dispatch_interval:g} s (COVEX_DISPATCH_INTERVAL=0: off)."
        )
    signer = service.signer
    signing = (
        f"with key {signer.key_id} (public: {signer.public_key})" if signer else "nothing (no COVEX_SIGNING_KEY_*)"
    )
    scanning = f"every {settings.scan_interval:g} s" if settings.scan_interval > 0 else "only on demand"
    output.err_console.print(f"Signing promotions {signing}; scanning new versions {scanning}.", highlight=False)
    output.err_console.print(
        f"Covex on http://{host}:{port}  (data: {settings.database_url}, files: {settings.artifacts_url})",
        highlight=False,
    )
    copies = f"; sources Covex does not hold are copied from {settings.mlflow_tracking_uri}"
    output.err_console.print(
        f"MLflow clients: MLFLOW_TRACKING_URI=http://{host}:{port}{copies if settings.mlflow_tracking_uri else ''}",
        highlight=False,
    )
    if workers > 1:
        service.close()
        # Each worker process reads its settings from the environment: pass on what was given here.
        os.environ.update(
            {
                f"COVEX_{k.upper()}": str(v).lower() if isinstance(v, bool) else v
                for k, v in {**state.given, **values}.items()
            }
        )
        uvicorn.run(
            "covex.server.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=access_log,
            log_level="info",
            **uvicorn_options(settings, workers=workers),
        )
    else:
        app = create_app(service, settings)
        options = uvicorn_options(settings)
        uvicorn.run(app, host=host, port=port, access_log=access_log, log_level="info", **options)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (the server and SDK also do this on start); creates a registry where there is none."""
    from covex.service.factory import schema_revision

    service = open_local(local_settings("db upgrade"))
    try:
        output.console.print(f"database at revision {schema_revision(service)}")
    finally:
        service.close()
