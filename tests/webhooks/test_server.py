"""The server's delivery thread: ``covex.server.webhooks.lifespan``."""

from __future__ import annotations

import asyncio
import time

from fastapi import FastAPI

from covex.server import webhooks
from tests.conftest import Registry
from tests.webhooks.receiver import Receiver, receiving


def test_lifespan_runs_a_dispatcher_while_the_app_serves(registries) -> None:
    registry: Registry = registries("embedded", "sqlite")
    registry.reset()
    got = Receiver()
    lifespan = webhooks.lifespan(registry.service, interval=0.02)

    def change_and_wait() -> None:
        registry.service.create_model("churn")
        deadline = time.monotonic() + 10
        while not got.received and time.monotonic() < deadline:
            time.sleep(0.02)

    async def serve() -> None:
        async with lifespan(FastAPI()):
            await asyncio.to_thread(change_and_wait)

    with receiving(got) as url:
        got.secret = registry.service.webhooks.create_webhook(url, ["model.created"]).secret
        asyncio.run(serve())
        assert ["model.created"] == got.events()
        registry.service.create_model("fraud")  # the app stopped: this one waits in the outbox
        time.sleep(0.2)
    assert 1 == len(got.received)
