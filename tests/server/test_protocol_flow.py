"""A blob upload's body is read in large pieces; every other body keeps uvicorn's small bound."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from covex.server.protocol import UPLOAD_HIGH_WATER
from tests import support

MIB = 1024 * 1024


def _recording_app(seen: dict[str, list[int]]) -> Any:
    """Reads each body slowly (the connection gathers data meanwhile) and notes each piece's size."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        sizes = seen.setdefault(f"{scope['method']} {scope['path']}", [])
        while True:
            await asyncio.sleep(0.05)
            message = await receive()
            sizes.append(len(message.get("body", b"")))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def test_uploads_gather_up_to_the_high_water_mark_and_other_bodies_do_not() -> None:
    seen: dict[str, list[int]] = {}
    body = b"x" * (3 * UPLOAD_HIGH_WATER)
    with support.server_thread(_recording_app(seen)) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert http.put(f"/api/v1/blobs/{'a' * 64}", content=body).status_code == 204
        assert http.post("/api/v1/models", content=body).status_code == 204
        assert http.put("/api/v1/models/x", content=body).status_code == 204
    upload, other, put_other = (
        seen[f"PUT /api/v1/blobs/{'a' * 64}"],
        seen["POST /api/v1/models"],
        seen["PUT /api/v1/models/x"],
    )
    assert sum(upload) == sum(other) == sum(put_other) == len(body)
    # A slow reader gets what arrived meanwhile: for an upload up to the mark (plus one socket read).
    assert MIB < max(upload) <= UPLOAD_HIGH_WATER + MIB
    assert max(other) < MIB and max(put_other) < MIB  # uvicorn's 64 KiB, plus one socket read
