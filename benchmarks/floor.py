"""The empty-endpoint floor: one FastAPI route answering a small JSON, served as Covex serves.

The same uvicorn settings and HTTP protocol as ``covex server`` (httptools with Covex's head limits,
one process, no access log), and one ``async def`` route returning a fixed version-sized JSON
without touching any database. What a Covex call costs above this is Covex's own work::

    python benchmarks/floor.py --port 8123      # GET /floor; GET /floor/page: a fixed page of 100 models

Under ``/api/2.0/mlflow/`` it answers fixed bodies in MLflow's shapes (a version for ``registered-models/alias``
and ``model-versions/create``, a page of 100 models for ``registered-models/search``): what MLflow's own
client costs against a server doing nothing.
"""

from __future__ import annotations

import argparse
import json

import uvicorn
from fastapi import FastAPI, Response

from covex.server.protocol import uvicorn_options
from covex.settings import Settings

# About the size and shape of a version as Covex answers it.
BODY = json.dumps(
    {
        "name": "sequential",
        "version": 250,
        "status": "READY",
        "status_message": "",
        "stage": "None",
        "description": "",
        "source": "s3://bench/sequential/249",
        "run_id": "",
        "run_link": "",
        "created_by": "admin",
        "tags": {},
        "metrics": {"accuracy": 0.749},
        "params": {},
        "aliases": ["champion"],
        "manifest_digest": "",
        "file_count": 0,
        "size": 0,
        "creation_timestamp": 1764540000000,
        "last_updated_timestamp": 1764540000000,
    },
    separators=(",", ":"),
).encode()


# A page of 100 models as Covex answers the benchmark's searches (models without tags or versions): what
# sending and parsing a search's body costs the stack, whatever the server does to find it.
PAGE_BODY = json.dumps(
    {
        "items": [
            {
                "name": f"search-{i:05d}",
                "description": "",
                "tags": {},
                "aliases": {},
                "latest_version": None,
                "created_by": "admin",
                "creation_timestamp": 1764540000000,
                "last_updated_timestamp": 1764540000000,
            }
            for i in range(100)
        ],
        "next_page_token": "eyJvZmZzZXQiOiAxMDB9",
    },
    separators=(",", ":"),
).encode()


# A version as MLflow's API answers it: the floor of MLflow's own client (``MlflowClient.get_model_version_by_alias``).
MLFLOW_BODY = json.dumps(
    {
        "model_version": {
            "name": "sequential",
            "version": "250",
            "creation_timestamp": 1764540000000,
            "last_updated_timestamp": 1764540000000,
            "user_id": "admin",
            "current_stage": "None",
            "source": "s3://bench/sequential/249",
            "status": "READY",
            "tags": [],
            "run_link": "",
            "aliases": ["champion"],
        }
    },
    separators=(",", ":"),
).encode()


# A page of 100 models as MLflow's API answers a search: what parsing one costs MLflow's client.
MLFLOW_SEARCH_BODY = json.dumps(
    {
        "registered_models": [
            {
                "name": f"search-{i:05d}",
                "creation_timestamp": 1764540000000,
                "last_updated_timestamp": 1764540000000,
                "user_id": "admin",
                "latest_versions": [],
                "tags": [],
                "aliases": [],
            }
            for i in range(100)
        ],
        "next_page_token": "eyJvZmZzZXQiOiAxMDB9",
    },
    separators=(",", ":"),
).encode()
MLFLOW_MODEL_BODY = json.dumps(
    {"registered_model": {"name": "mlflow-client", "creation_timestamp": 1764540000000, "last_updated_timestamp": 1}},
    separators=(",", ":"),
).encode()


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/floor")
    async def floor() -> Response:
        return Response(BODY, media_type="application/json")

    @app.get("/floor/page")
    async def floor_page() -> Response:
        return Response(PAGE_BODY, media_type="application/json")

    @app.get("/api/2.0/mlflow/registered-models/alias")
    @app.post("/api/2.0/mlflow/model-versions/create")
    async def mlflow_floor() -> Response:
        return Response(MLFLOW_BODY, media_type="application/json")

    @app.get("/api/2.0/mlflow/registered-models/search")
    async def mlflow_search_floor() -> Response:
        return Response(MLFLOW_SEARCH_BODY, media_type="application/json")

    @app.post("/api/2.0/mlflow/registered-models/create")
    async def mlflow_create_floor() -> Response:
        return Response(MLFLOW_MODEL_BODY, media_type="application/json")

    @app.get("/health")
    async def health() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    options = uvicorn_options(Settings())
    uvicorn.run(create_app(), host=args.host, port=args.port, access_log=False, log_level="info", **options)


if __name__ == "__main__":
    main()
