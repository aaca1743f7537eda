"""``covex server`` on its first and later starts: the admin's token is printed once."""

from __future__ import annotations

import re
from pathlib import Path

import covex
from tests import support


def _start(data: Path, log: Path, env: dict[str, str] | None = None) -> tuple[str, str]:
    """Start ``covex server`` on ``data``, call it once with the token it printed (if any); return log and whoami."""
    with support.server_process(env or {}, options=["--uri", str(data)], log_path=log) as url:
        printed = log.read_text()
        token = re.search(r"shown only now:\s+(\S+)", printed)
        with covex.Client(url, token=token[1] if token else None) as c:
            return printed, c.access.whoami().name if token else ""


def test_the_first_start_prints_the_admins_token_and_later_starts_do_not(tmp_path: Path) -> None:
    data = tmp_path / "data"
    printed, who = _start(data, tmp_path / "first.log")
    assert (True, "admin") == ("Created the admin user 'admin'" in printed, who)
    printed, _ = _start(data, tmp_path / "second.log")
    assert (False, False) == ("shown only now" in printed, "Created the admin" in printed)


def test_without_authentication_no_admin_is_made(tmp_path: Path) -> None:
    data = tmp_path / "data"
    printed, _ = _start(data, tmp_path / "open.log", {"COVEX_AUTH": "false"})
    assert (True, False) == ("Authentication is OFF" in printed, "shown only now" in printed)
    printed, who = _start(data, tmp_path / "closed.log")  # turned on later: now the admin is made
    assert "admin" == who
