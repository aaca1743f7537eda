"""The README's code runs as written: every ```python and ```bash block, in order, in a fresh folder.

Once against an embedded registry (the default ./covex-data), once against a real ``covex server``
process. Python blocks share one interpreter (later blocks use the ``c`` of earlier ones); bash
blocks run with ``covex`` on PATH. A block that cannot run here is preceded by
``<!-- readme-test: skip (why) -->``.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import support

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->")
FENCE = re.compile(r"^```(?P<lang>\S*)\s*$")
BLOCK_TIMEOUT = 600  # seconds: a generous bound on one block (training, packaging), not a measurement


@dataclass(frozen=True)
class Block:
    lang: str
    line: int  # of the block's first line of code, 1-based
    code: str
    skip: str | None

    def __str__(self) -> str:
        return f"README.md line {self.line} ({self.lang})"


def blocks(text: str) -> list[Block]:
    """Every fenced block; a skip marker must sit on the line right before the block it skips."""
    found: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            if SKIP.search(lines[i]) and not (i + 1 < len(lines) and FENCE.match(lines[i + 1])):
                raise AssertionError(f"README.md line {i + 1}: a readme-test marker must come right before a block")
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```")
        marker = SKIP.search(lines[i - 1]) if i > 0 else None
        found.append(Block(fence["lang"], i + 2, "\n".join(lines[i + 1 : end]) + "\n", marker and marker["reason"]))
        i = end + 1
    return found


def runnable() -> list[Block]:
    return [b for b in blocks(README.read_text(encoding="utf-8")) if b.lang in ("python", "bash")]


# -- running ------------------------------------------------------------------------------

# Runs each block it is sent (a file name per line) in one namespace, and answers with one JSON
# line per block on its own stdout; what the blocks print goes to stderr, out of the way.
DRIVER = """
import json, sys, traceback
answers, sys.stdout = sys.stdout, sys.stderr
namespace = {"__name__": "__main__"}
for line in sys.stdin:
    line_no, path = line.split(maxsplit=1)
    source = "\\n" * (int(line_no) - 1) + open(path.strip(), encoding="utf-8").read()
    try:
        exec(compile(source, "README.md", "exec"), namespace)
        answer = {"ok": True}
    except BaseException:
        answer = {"ok": False, "error": traceback.format_exc()}
    answers.write(json.dumps(answer) + "\\n")
    answers.flush()
"""


class Runner:
    """The README's blocks in order, in ``folder``, with ``env``."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder, self.env = folder, env
        self.log = folder / "python-blocks.log"
        self._python: subprocess.Popen[str] | None = None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._python is not None:
            assert self._python.stdin is not None
            self._python.stdin.close()
            try:
                self._python.wait(60)
            except subprocess.TimeoutExpired:
                self._python.kill()

    def run(self, block: Block) -> None:
        if block.lang == "python":
            self._run_python(block)
        else:
            self._run_bash(block)

    def _run_bash(self, block: Block) -> None:
        r = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block.code],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )
        shown = f"{block} exited {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"
        assert 0 == r.returncode, shown
        assert "Traceback" not in r.stdout + r.stderr, shown

    def _run_python(self, block: Block) -> None:
        if self._python is None:
            self._python = subprocess.Popen(
                [sys.executable, "-u", "-c", DRIVER],
                cwd=self.folder,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.log.open("w"),
                text=True,
            )
        proc = self._python
        assert proc.stdin is not None and proc.stdout is not None
        source = self.folder / f".readme-block-{block.line}.py"
        source.write_text(block.code, encoding="utf-8")
        proc.stdin.write(f"{block.line} {source}\n")
        proc.stdin.flush()
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(BLOCK_TIMEOUT):
                pytest.fail(f"{block} did not finish within {BLOCK_TIMEOUT} s")
        line = proc.stdout.readline()
        assert line, f"{block}: the Python process died:\n{self.log.read_text()}"
        answer = json.loads(line)
        assert answer["ok"], f"{block} failed:\n{answer['error']}"


def environment(folder: Path, **covex: str) -> dict[str, str]:
    """This environment without COVEX_* settings (the README's defaults apply), ``covex`` on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEX_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COVEX_CACHE_DIR"] = str(folder / "cache")  # load_model's cache: not the user's ~/.cache
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    env["COLUMNS"] = "200"
    return {**env, **covex}


def run_readme(folder: Path, env: dict[str, str]) -> int:
    """Run every runnable block in order; return how many ran."""
    # The README runs from the repository's root: the examples it names are there.
    shutil.copytree(ROOT / "examples", folder / "examples", ignore=shutil.ignore_patterns("out", "data"))
    ran = 0
    with Runner(folder, env) as runner:
        for block in runnable():
            if block.skip is None:
                runner.run(block)
                ran += 1
    return ran


@contextmanager
def covex_server(data: Path, env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """``covex server`` on a fresh data folder, as a process; yield its URL and the admin token it printed."""
    log_path = data.parent / "server.log"
    with support.server_process(env, options=["--uri", str(data)], log_path=log_path) as url:
        printed = log_path.read_text()
        assert f"created a new Covex registry at {data}" in printed, printed
        token = re.search(r"shown only now:\s+(\S+)", printed)
        assert token is not None, printed
        yield url, token[1]


# -- the tests ----------------------------------------------------------------------------


def test_blocks_are_found_and_skips_say_why() -> None:
    found = runnable()
    langs = {b.lang for b in found}
    assert {"python", "bash"} <= langs
    skipped = [b for b in found if b.skip]
    assert all(b.skip and b.skip.strip() for b in skipped)
    assert len(skipped) * 3 < len(found), f"most blocks should run; skipped: {[str(b) for b in skipped]}"
    first = next(b for b in found if b.lang == "python")
    assert "covex.Client()" in first.code and "create_model" in first.code  # the snippet people copy first


def test_marker_placement_is_checked() -> None:
    with pytest.raises(AssertionError, match="right before a block"):
        blocks("<!-- readme-test: skip (why) -->\n\n```bash\necho\n```\n")
    assert "why" == blocks("<!-- readme-test: skip (why) -->\n```bash\necho\n```\n")[0].skip


@pytest.mark.slow
def test_readme_runs_embedded(tmp_path: Path) -> None:
    assert run_readme(tmp_path, environment(tmp_path)) > 0
    assert (tmp_path / "covex-data" / "covex.db").is_file()  # the default data folder, made by a write


@pytest.mark.slow
def test_readme_runs_against_a_server(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    server_env = {**environment(tmp_path), "COVEX_DISPATCH_INTERVAL": "0"}  # no deliveries to example.com
    with covex_server(tmp_path / "server-data", server_env) as (url, token):
        assert run_readme(work, environment(work, COVEX_URI=url, COVEX_TOKEN=token)) > 0
    assert not (work / "covex-data").exists()  # everything went to the server
