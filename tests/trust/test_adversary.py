"""Adversarial bundle imports: crafted headers sealed by a trusted key, failures midway, and load_model."""

from __future__ import annotations

import copy
import io
import json
import pickle
from pathlib import Path
from typing import Any

import pytest

import covex
from covex.artifacts import manifest_digest
from covex.artifacts.bundle_file import BundleReader, head_bytes
from covex.domain.entities import FileEntry
from covex.domain.errors import CovexError, SignatureInvalid
from covex.domain.signing import Signer, canonical, generate, load_signer


def _registries(tmp: Path) -> tuple[covex.Client, covex.Client, Signer, bytes]:
    pem, _ = generate()
    (tmp / "dev.pem").write_bytes(pem)
    dev = covex.Client(tmp / "dev", signing_key_file=str(tmp / "dev.pem"))
    folder = tmp / "m"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps({"w": 1}))
    dev.create_model("churn")
    dev.create_version("churn", folder)
    out = io.BytesIO()
    dev.trust.export_bundle("churn", 1, out)
    signer = load_signer(pem, "dev key")
    prod = covex.Client(tmp / "prod")
    prod.init()
    prod.trust.trust_key("dev", signer.public_key)
    return dev, prod, signer, out.getvalue()


def _reseal(data: bytes, signer: Signer, mutate: Any) -> bytes:
    reader = BundleReader(io.BytesIO(data))
    text, _ = reader.head()
    rest = data[reader.stream.tell() :]
    header = copy.deepcopy(json.loads(text))
    mutate(header)
    files = [FileEntry(**f) for f in header["version"]["files"]] if isinstance(header["version"], dict) else []
    if files and all(isinstance(f, dict) for f in header["version"]["files"]):
        header["version"]["manifest_digest"] = manifest_digest(files)
    new = canonical(header)
    return head_bytes(new, {"key_id": signer.key_id, "signature": signer.sign(new)}) + rest


@pytest.mark.parametrize(
    "mutate",
    [
        lambda h: h.__setitem__("blobs", 5),
        lambda h: h.__setitem__("model", "churn"),
        lambda h: h.__setitem__("blobs", [{"digest": b["digest"]} for b in h["blobs"]]),
    ],
)
def test_a_crafted_header_is_refused_as_invalid_not_a_crash(tmp_path: Path, mutate: Any) -> None:
    _, prod, signer, data = _registries(tmp_path)
    with pytest.raises(SignatureInvalid):
        prod.trust.import_bundle(io.BytesIO(_reseal(data, signer, mutate)))


def test_an_import_that_fails_midway_leaves_no_model_and_no_pending_version(tmp_path: Path) -> None:
    _, prod, signer, data = _registries(tmp_path)
    bad_eval = {"kind": "nonsense", "key": "", "data_digest": "", "source": "", "rows": 1, "body": {}, "data_tags": {}}
    for name, mutate in (
        ("bad-doc", lambda h: h.__setitem__("documents", {"bogus": {}})),
        ("bad-eval", lambda h: h.__setitem__("evaluations", [bad_eval])),
    ):
        with pytest.raises(CovexError):
            prod.trust.import_bundle(io.BytesIO(_reseal(data, signer, mutate)), name=name)
        with pytest.raises(covex.NotFound):
            prod.get_model(name)


def test_load_model_at_the_top_level_takes_override_scan() -> None:
    import inspect

    assert "override_scan" in inspect.signature(covex.load_model).parameters
