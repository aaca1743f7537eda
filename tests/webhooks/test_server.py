"""The server's delivery thread: ``covex.server.webhooks.lifespan``, and its allowlist read at start."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI

import covex
from covex.server import create_app, webhooks
from tests import support
from tests.conftest import Registry
from tests.webhooks.receiver import Receiver, allow, receiving


def test_lifespan_runs_a_dispatcher_while_the_app_serves(registries) -> None:
    registry: Registry = registries("embedded", "sqlite")
    registry.reset()
    got = Receiver()

    def change_and_wait() -> None:
        registry.service.create_model("churn")
        deadline = time.monotonic() + 60
        while not got.received and time.monotonic() < deadline:
            time.sleep(0.02)

    async def serve(url: str) -> None:
        lifespan = webhooks.lifespan(registry.service, interval=0.02, allow=allow(url))
        assert lifespan is not None
        async with lifespan(FastAPI()):
            await asyncio.to_thread(change_and_wait)

    with receiving(got) as url:
        got.secret = registry.service.webhooks.create_webhook(url, ["model.created"]).secret
        asyncio.run(serve(url))
        assert ["model.created"] == got.events()
        registry.service.create_model("fraud")  # the app stopped: this one waits in the outbox
        time.sleep(0.2)
    assert 1 == len(got.received)


@pytest.mark.parametrize("interval", [0.5, 0])
def test_a_bad_allowlist_entry_stops_the_app_at_start(
    registries: Callable[[str, str], Registry], interval: float
) -> None:
    registry: Registry = registries("embedded", "sqlite")
    update = {"webhook_allow": ["10.0.0.0/8", "hooks.internal"], "dispatch_interval": interval}
    with pytest.raises(covex.InvalidInput, match=r"COVEX_WEBHOOK_ALLOW: 'hooks\.internal' is neither host:port"):
        create_app(registry.service, registry.settings.model_copy(update=update))


def test_covex_server_refuses_to_start_with_a_bad_allowlist(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "COVEX_URI": str(tmp_path / "data"),
        "COVEX_WEBHOOK_ALLOW": "127.0.0.1:99999",
        "COVEX_AUTH": "false",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "covex", "server", "--port", str(support.free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # were the entry accepted, the server would serve: this fails the test instead
    )
    assert 2 == proc.returncode, proc.stderr
    assert "error: COVEX_WEBHOOK_ALLOW: '127.0.0.1:99999': the port must be between 1 and 65535" in proc.stderr
