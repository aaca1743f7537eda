"""What a server refuses before it does work: oversized, stalled or unauthenticated bodies, huge lists, long text.

Each test reproduces an attack first found by trying to break a real server.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

import covex
from covex.domain.entities import NewVersion
from covex.server import create_app
from covex.service import RegistryService, open_service
from covex.settings import Settings
from covex.store.schema import audit_log, model_versions
from tests import support
from tests.conftest import Registry

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, RegistryService]]:
    """A real server with small limits: 256 KiB bodies, 1 MiB files, 3 s stalls, 2 uploads per user."""
    root = tmp_path_factory.mktemp("limits")
    settings = Settings(
        uri=str(root),
        user="tester",
        max_body_bytes=256 * 1024,
        max_blob_bytes=MiB,
        body_timeout=3.0,
        max_uploads_per_caller=2,
        max_files_per_version=1000,
        dispatch_interval=0,
    )
    service = open_service(settings)
    token = service.access.bootstrap("tester").secret
    with support.server_thread(create_app(service, settings)) as url:
        yield url, token, service
    service.close()


def _seq(service: RegistryService) -> int:
    with service.engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(audit_log.c.seq), 0))).scalar_one())


def _send_head(url: str, head: list[str]) -> socket.socket:
    target = httpx.URL(url)
    sock = socket.create_connection((target.host, target.port), timeout=30)
    lines = [*head, f"Host: {target.host}:{target.port}", "Connection: close"]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def _upload_head(digest: str, size: int, token: str) -> list[str]:
    return [
        f"PUT /api/v1/blobs/{digest} HTTP/1.1",
        f"Authorization: Bearer {token}",
        "Content-Type: application/octet-stream",
        f"Content-Length: {size}",
    ]


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_a_huge_body_without_a_token_is_refused_before_it_is_read(small: tuple[str, str, Any]) -> None:
    url, token, _ = small
    json_head = ["POST /api/v1/models HTTP/1.1", "Content-Type: application/json"]
    # 200 MB announced, not one byte sent: the answers come anyway, so nothing waited for (or read) the body.
    # Strangers learn nothing, not even the limits: 401 before 413, forged token or none.
    for auth, length in [([], "200000000"), ([], "60000"), (["Authorization: Bearer cvx_forged"], "200000000")]:
        with _send_head(url, [*json_head, *auth, f"Content-Length: {length}"]) as s:
            status, body = _read_response(s)
        assert 401 == status and b"UNAUTHENTICATED" in body
    upload = _upload_head("0" * 64, 69_793_218_560, "cvx_forged")
    with _send_head(url, upload) as s:
        assert 401 == _read_response(s)[0]
    with _send_head(url, [*json_head, f"Authorization: Bearer {token}", "Content-Length: 200000000"]) as s:
        status, body = _read_response(s)
    assert (413, b"REQUEST_TOO_LARGE") == (status, body[15:32])


def test_a_large_body_with_a_bad_token_is_refused_before_it_is_read(small: tuple[str, str, Any]) -> None:
    url, _, _ = small
    head = [
        "POST /api/v1/models HTTP/1.1",
        "Content-Type: application/json",
        "Content-Length: 200000",
        "Authorization: Bearer cvx_forged",
    ]
    with _send_head(url, head) as s:
        status, body = _read_response(s)
    assert 401 == status and b"not valid" in body


def test_bodies_over_the_limit_are_413_also_when_streamed(small: tuple[str, str, Any]) -> None:
    url, token, service = small
    before = _seq(service)
    big = b'{"name": "x", "description": "' + b"d" * (300 * 1024) + b'"}'
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    for content in (big, chunks()):
        r = httpx.post(f"{url}/api/v1/models", content=content, headers=auth, timeout=30)
        assert (413, "REQUEST_TOO_LARGE") == (r.status_code, r.json()["error_code"])
        assert "COVEX_MAX_BODY_BYTES" in r.json()["message"]
    assert before == _seq(service)


def test_text_fields_are_capped_and_never_reach_the_database(registry: Registry, client: covex.Client) -> None:
    before = _seq(registry.service)
    long = "d" * 20_001
    huge_lineage = {"lineage": {"x": "y" * (1024 * 1024)}}
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("'description'", lambda: client.create_model("m", description=long)),
        ("'source'", lambda: client.create_version("churn", source="s3://" + "x" * 3000)),
        ("'run_link'", lambda: client.create_version("churn", source="s3://b/1", run_link="https://" + "x" * 3000)),
        ("'description'", lambda: client.create_version("churn", source="s3://b/1", description=long)),
        ("'card.overview'", lambda: client.set_card("churn", {"overview": long}, 1)),
        ("'comment'", lambda: client.set_alias("churn", "champion", 1, comment="c" * 10_001)),
        ("'comment'", lambda: client.transition_stage("churn", 1, "Dev", comment="c" * 10_001)),
        ("'description'", lambda: client.update_version("churn", 1, description=long)),
        ("'body'", lambda: client.approvals.add_comment("churn", 1, "c" * 10_001)),
        ("'documents.lineage'", lambda: client.create_version("churn", source="s3://b/1", documents=huge_lineage)),
    ]
    client.create_model("churn")
    client.create_version("churn", source="s3://b/0")
    after_setup = _seq(registry.service)
    for field, call in cases:
        with pytest.raises(covex.InvalidInput) as refused:
            call()
        assert field in refused.value.message and "limit" in refused.value.message, refused.value.message
    assert after_setup == _seq(registry.service) and after_setup > before
    with registry.engine.connect() as conn:
        assert 1 == conn.execute(select(func.count()).select_from(model_versions)).scalar_one()


@pytest.mark.parametrize(
    ("value", "says"),
    [("a\x00b", "NUL"), ("a\ud800b", "lone surrogate")],
)
def test_nul_and_lone_surrogates_get_the_same_answer_everywhere(client: covex.Client, value: str, says: str) -> None:
    client.create_model("churn")
    for field, call in [
        ("'description'", lambda: client.create_model("other", description=value)),
        ("'tags.k'", lambda: client.create_model("other", tags={"k": value})),
        ("'description'", lambda: client.update_version("churn", 1, description=value)),
        ("'source'", lambda: client.create_version("churn", source=value)),
        ("'params.C'", lambda: client.create_version("churn", source="s3://b", params={"C": value})),
    ]:
        with pytest.raises(covex.InvalidInput) as refused:
            call()
        assert field in refused.value.message and says in refused.value.message, refused.value.message


def test_a_lone_surrogate_escape_in_raw_json_is_a_400_naming_the_field(registry: Registry) -> None:
    if registry.url.startswith("http") is False:
        pytest.skip("raw JSON is an HTTP matter")
    auth = {"Authorization": f"Bearer {registry.settings.token}", "Content-Type": "application/json"}
    for path, body in [
        ("/api/v1/models", b'{"name": "m", "description": "\\ud800"}'),
        ("/api/v1/models", b'{"name": "\\udfff"}'),
        ("/api/v1/users", b'{"name": "\\ud800"}'),
        ("/api/v1/groups", b'{"name": "g", "description": "\\ud800"}'),
    ]:
        r = httpx.post(registry.url + path, content=body, headers=auth, timeout=30)
        assert (400, "INVALID_PARAMETER_VALUE") == (r.status_code, r.json()["error_code"]), r.text
        assert "'" in r.json()["message"]


def test_a_stalled_upload_is_cut_off_and_leaves_no_temporary_file(small: tuple[str, str, RegistryService]) -> None:
    url, token, service = small
    data = b"x" * 100_000
    digest = hashlib.sha256(data).hexdigest()
    with _send_head(url, _upload_head(digest, len(data), token)) as s:
        s.sendall(data[:1000])  # then nothing: the body stalls
        status, body = _read_response(s)
    assert (408, b"REQUEST_TIMEOUT") == (status, body[15:30])
    _until(lambda: not _tmp_files(service))
    assert service.blobs.size(digest) is None


def test_uploads_per_user_are_limited_and_the_sdk_waits_its_turn(
    small: tuple[str, str, RegistryService], tmp_path
) -> None:
    url, token, service = small
    data = b"y" * 100_000
    digest = hashlib.sha256(data).hexdigest()
    another = service.access.create_token("tester", name="second").secret  # the same user: the same slots
    slow = [_send_head(url, _upload_head(digest, len(data), token)) for _ in range(2)]
    for s in slow:
        s.sendall(data[:10])
    folder = tmp_path / "waits"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"z" * 1000)
    waited: list[covex.ModelVersion] = []
    sdk_client = covex.Client(url, token=another)
    try:
        _until(lambda: len(_tmp_files(service)) == 2)  # both hold a slot
        for secret in (token, another):
            r = httpx.put(f"{url}/api/v1/blobs/{digest}", content=data, headers={"Authorization": f"Bearer {secret}"})
            assert (429, "REQUEST_LIMIT_EXCEEDED") == (r.status_code, r.json()["error_code"])
        with pytest.raises(covex.TooManyRequests, match="per user"):
            covex.Client(url, token=another)._backend.put_blob(digest, len(data), [data])
        assert [] == _tmp_files(service)[2:]  # a refused upload leaves no temporary file

        # The SDK waits for a free slot and sends the file again.
        sdk_client.create_model("waits")
        sdk = threading.Thread(target=lambda: waited.append(sdk_client.create_version("waits", folder)))
        sdk.start()
        time.sleep(1)  # let it be refused at least once
    finally:
        for s in slow:
            s.sendall(data[10:])
            assert 204 == _read_response(s)[0]
            s.close()
    sdk.join(120)
    sdk_client.close()
    assert ["READY"] == [v.status for v in waited]


def test_a_file_larger_than_the_upload_limit_is_413(small: tuple[str, str, RegistryService]) -> None:
    url, token, _ = small
    r = httpx.put(
        f"{url}/api/v1/blobs/{'0' * 64}",
        content=b"z" * (MiB + 1),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert (413, "REQUEST_TOO_LARGE") == (r.status_code, r.json()["error_code"])
    assert "COVEX_MAX_BLOB_BYTES" in r.json()["message"]


def test_a_refused_upload_names_the_file(small: tuple[str, str, RegistryService], tmp_path) -> None:
    url, token, _ = small
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "small.txt").write_text("fine")
    (folder / "weights.bin").write_bytes(b"w" * (MiB + 1))
    with covex.Client(url, token=token) as c:
        c.create_model("too-big")
        with pytest.raises(covex.RequestTooLarge, match=r"^weights\.bin: a file upload may hold at most"):
            c.create_version("too-big", folder)
        assert "FAILED" == c.get_version("too-big", 1).status


def test_a_wrong_method_has_its_own_code(small: tuple[str, str, Any]) -> None:
    url, token, _ = small
    r = httpx.put(f"{url}/api/v1/stages", headers={"Authorization": f"Bearer {token}"})
    assert (405, "METHOD_NOT_ALLOWED") == (r.status_code, r.json()["error_code"])
    assert "GET" in r.headers["allow"]


def test_more_files_than_a_version_may_hold_is_a_400(small: tuple[str, str, Any]) -> None:
    url, token, _ = small
    with covex.Client(url, token=token) as c:
        c.create_model("many")
        files = [covex.FileEntry(path=f"f{i}", digest="0" * 64, size=1) for i in range(1001)]
        with pytest.raises(covex.InvalidInput, match="at most 1000"):
            c._backend.create_version("many", NewVersion(files=files))


@pytest.mark.parametrize(
    ("paths", "says"),
    [
        (["a", "b", "a"], "appears twice"),
        (["a/b/c", "a/b"], "both a file and a folder"),
        (["a/b", "a/b/c"], "both a file and a folder"),
        (["x", "a/b", "a"], "both a file and a folder"),
    ],
)
def test_manifest_conflicts_are_found(client: covex.Client, paths: list[str], says: str) -> None:
    client.create_model("m")
    files = [covex.FileEntry(path=p, digest="0" * 64, size=1) for p in paths]
    with pytest.raises(covex.InvalidInput, match=says):
        client._backend.create_version("m", NewVersion(files=files))


CHECK_100K = """
import time
from covex.domain.entities import FileEntry
from covex.service.base import Limits
from covex.service.registry import RegistryService
service = object.__new__(RegistryService)
service.limits = Limits(max_files=200_000)
files = [FileEntry(path=f"d{i % 100}/s{i % 7}/f{i}.bin", digest="0" * 64, size=i) for i in range(100_000)]
files.append(FileEntry(path="d1/s1", digest="0" * 64, size=1))  # a folder named as a file, last
try:
    service._check_files(files)
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_checking_a_100k_file_manifest_is_linear() -> None:
    # Comparing every path with every earlier one took minutes for 100,000 files; one pass takes well under
    # a second (benchmarks/limits.py measures it). The bound here only catches a return to quadratic work.
    out = subprocess.run([sys.executable, "-c", CHECK_100K], capture_output=True, text=True, timeout=120, check=True)
    assert "InvalidInput 'files[100000].path' 'd1/s1' is both a file and a folder" == out.stdout.strip()


def _tmp_files(service: RegistryService) -> list[str]:
    try:
        return list(service.blobs.fs.ls(f"{service.blobs.root}/tmp", detail=False))
    except FileNotFoundError:
        return []


def _until(condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
