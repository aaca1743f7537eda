"""A reader that goes away (``covex ... | head``) stops the command quietly, as ``cat`` does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import covex


def test_a_closed_pipe_is_exit_141_and_says_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with covex.Client(data) as c:
        for i in range(400):  # JSON well over a pipe's 64 KiB buffer
            c.create_model(f"model-{i:03d}", description="x" * 200)
    proc = subprocess.Popen(
        [sys.executable, "-m", "covex", "--uri", str(data), "models", "list", "--json", "-n", "400"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    with proc, proc.stderr:
        assert b"{" == proc.stdout.read(1)
        proc.stdout.close()  # like head after its first byte
        stderr = proc.stderr.read()
        assert (141, b"") == (proc.wait(timeout=120), stderr)
