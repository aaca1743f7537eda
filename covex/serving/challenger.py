"""A second version beside the served one: scored in the shadow of every request, or answering a share of them.

``--shadow URI``: every request is answered by the main version (the champion) as if no shadow
were there; once the answer is sent, the same checked input waits in a bounded queue, and one
thread scores it on the shadow version and writes that prediction to the inference log
(``role`` ``shadow``, the champion's ``request_id``). A full queue skips the request, a shadow that
raises is counted: neither reaches the caller.

``--split ALIAS=P%``: P% of the requests are answered by the challenger instead (the response says
which: ``Covex-Model-Version`` and ``Covex-Model-Role``). With ``--split-key HEADER`` the share is
sticky: the SHA-256 of the header's value decides, the same in every process and after restarts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import queue
import random
import re
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from covex.domain.errors import InvalidInput, NotFound
from covex.domain.uris import SCHEME, parse_model_uri

if TYPE_CHECKING:
    from covex.client import Client
    from covex.serving.holder import ModelHolder, Served
    from covex.serving.metrics import Metrics

log = logging.getLogger("covex.serving")
DEFAULT_SHADOW_QUEUE = 100
LOG_EVERY_SECONDS = 60.0
_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110 token)
_STOP = object()


# -- the options -------------------------------------------------------------------------------------


def challenger_uri(value: str, uri: str, option: str) -> str:
    """``value`` as a ``models:/`` URI: itself, or an alias or version number of the model ``uri`` names."""
    value = value.strip()
    if not value:
        raise InvalidInput(f"'{option}' names no version: give models:/NAME@ALIAS or an alias of the served model")
    if not value.startswith(SCHEME):
        name = parse_model_uri(uri).name
        value = f"{SCHEME}{name}/{value}" if value.isascii() and value.isdigit() else f"{SCHEME}{name}@{value}"
    try:
        parse_model_uri(value)
    except InvalidInput as exc:
        raise InvalidInput(exc.message.replace("'uri'", f"'{option}'", 1)) from None
    if value == uri:
        raise InvalidInput(f"'{option}' {value!r} is the URI already served: name another version")
    return value


def parse_split(value: str, uri: str) -> tuple[str, float]:
    """``ALIAS=P%`` or ``models:/...=P%``: the challenger's URI and its share of requests, in percent."""
    target, sep, share = value.rpartition("=")
    if not sep or not share.strip().endswith("%"):
        raise InvalidInput(
            f"'--split' must look like ALIAS=P% or models:/NAME@ALIAS=P% (e.g. challenger=10%), got {value!r}"
        )
    try:
        percent = float(share.strip()[:-1])
    except ValueError:
        raise InvalidInput(f"'--split': {share.strip()!r} is not a percentage such as 10% or 2.5%") from None
    if not (math.isfinite(percent) and 0 < percent < 100):
        raise InvalidInput(
            f"'--split': the challenger's share must be more than 0% and less than 100%, got {share.strip()}"
        )
    return challenger_uri(target, uri, "--split"), percent


def check_header_name(name: str) -> str:
    """``name`` if it can be an HTTP header's name (``--split-key``), else ``InvalidInput``."""
    if not _HEADER.fullmatch(name):
        raise InvalidInput(f"'--split-key' must be an HTTP header name such as X-User-ID, got {name!r}")
    return name


def check_compatible(client: Client, uri: str, other: str, option: str, *, same_columns: bool) -> None:
    """Refuse ``other`` unless it is a version of the same model as ``uri`` or takes input ``uri``'s input fits.

    ``same_columns``: the other version answers callers itself (``--split``), so it must take the same
    columns with the same types; a shadow may take fewer (it is given the ones it takes).
    """
    served, challenger = client.get_version(uri), client.get_version(other)
    if served.name == challenger.name:
        return
    mine, theirs = _columns(client, uri), _columns(client, other)
    if mine is None or theirs is None:
        missing = uri if mine is None else other
        raise InvalidInput(
            f"'{option}' {other!r} is another model than {uri!r}, and {missing} has no column signature "
            "to compare: serve a version of the same model, or log both with an input example"
        )
    if same_columns and set(mine) != set(theirs):
        raise InvalidInput(
            f"'{option}' {other!r} takes columns {_list(theirs)}, {uri!r} takes {_list(mine)}: "
            "a split needs the same columns"
        )
    for name, (kind, required) in theirs.items():
        if name not in mine and not required:
            continue
        if name not in mine or mine[name][0] != kind:
            given = f"{mine[name][0]}" if name in mine else "not given"
            raise InvalidInput(
                f"'{option}' {other!r} takes column {name!r} ({kind}), which {uri!r} does not give as such ({given})"
            )


def _columns(client: Client, uri: str) -> dict[str, tuple[str, bool]] | None:
    """Column name -> (MLflow type, required) of a version's input signature; None without a column one."""
    try:
        inputs = client.get_document(uri, "signature").get("inputs")
    except NotFound:
        return None
    if isinstance(inputs, str):
        try:
            inputs = json.loads(inputs)
        except ValueError:
            return None
    if not isinstance(inputs, list) or not inputs:
        return None
    out: dict[str, tuple[str, bool]] = {}
    for spec in inputs:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(spec.get("type"), str):
            return None
        out[spec["name"]] = (spec["type"], bool(spec.get("required", True)))
    return out


def _list(columns: Mapping[str, Any]) -> str:
    return ", ".join(map(repr, sorted(columns)))


# -- the split ----------------------------------------------------------------------------------------


class Splitter:
    """Decides, per request, whether the challenger answers it."""

    def __init__(self, percent: float, key: str | None = None) -> None:
        self.percent = percent
        self.key = key.lower() if key else None
        self._random = random.Random()

    def to_challenger(self, headers: Mapping[str, str]) -> bool:
        """True for about ``percent``% of requests; always the same answer for one value of the key header."""
        value = headers.get(self.key) if self.key else None
        if value is None:
            return self._random.random() * 100 < self.percent
        return bucket(value) < self.percent


def bucket(value: str) -> float:
    """Where ``value`` falls in [0, 100): from its SHA-256, so every process and every restart agree."""
    digest = hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


# -- the shadow ---------------------------------------------------------------------------------------


@dataclass
class ShadowCounts:
    scored: int = 0
    skipped: int = 0
    errors: int = 0
    last_error: str | None = None
    last_error_at: float | None = None


class ShadowScorer:
    """A bounded queue of answered requests and the thread that scores them on the shadow version."""

    def __init__(self, holder: ModelHolder, inference_log: Any, metrics: Metrics, *, max_queue: int) -> None:
        self.holder = holder
        self.inference_log = inference_log
        self.metrics = metrics
        self.max_queue = max_queue
        self.counts = ShadowCounts()
        self._lock = threading.Lock()  # the counts change on the event loop and on the shadow's thread
        self._said_at: float | None = None
        self._queue: queue.Queue[Any] = queue.Queue(max_queue)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="covex-serving-shadow", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the request being scored; what still waits is not scored (it is not counted either)."""
        if self._thread is None:
            return
        while True:  # make room for the stop mark: waiting requests are dropped
            try:
                self._queue.put_nowait(_STOP)
                break
            except queue.Full:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    pass
        self._thread.join(timeout)
        self._thread = None

    def submit(self, request_id: str, served: Served, parsed: Any, endpoint: str) -> None:
        """Queue an answered request for the shadow (never blocks: a full queue skips it, counted)."""
        shadow = self.holder.current
        if shadow is not None and (shadow.name, shadow.version) == (served.name, served.version):
            return  # the shadow is the version that answered: its prediction is logged already
        try:
            self._queue.put_nowait((request_id, served, parsed, endpoint))
        except queue.Full:
            self._skip()

    def _skip(self) -> None:
        with self._lock:
            self.counts.skipped += 1
        self.metrics.shadow_skipped.inc()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            request_id, served, parsed, endpoint = item
            shadow = self.holder.current
            if shadow is None:  # not loaded (yet, or ever): nothing to compare with
                self._skip()
                continue
            started = time.perf_counter()
            try:
                data = shadow_input(parsed, served, shadow)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    predictions = shadow.predict(data.data, data.params)
            except Exception as exc:  # noqa: BLE001 - whatever the shadow does, the server goes on
                self._failed(shadow, exc)
                continue
            elapsed = time.perf_counter() - started
            with self._lock:
                self.counts.scored += 1
            self.metrics.shadow_scored.inc()
            self.metrics.shadow_latency.observe(elapsed)
            self.inference_log.record(request_id, shadow, data, predictions, elapsed, endpoint=endpoint, role="shadow")

    def _failed(self, shadow: Served, exc: Exception) -> None:
        message = f"version {shadow.version} failed to predict: {type(exc).__name__}: {exc}".splitlines()[0]
        now = time.time()
        with self._lock:
            # A line for the first error, then at most one every LOG_EVERY_SECONDS: not one per request.
            say = self._said_at is None or now - self._said_at > LOG_EVERY_SECONDS
            self._said_at = now if say else self._said_at
            self.counts.errors += 1
            self.counts.last_error, self.counts.last_error_at = message, now
        self.metrics.shadow_errors.inc()
        if say:
            log.warning("shadow %s: %s (%d error(s) so far)", shadow.uri, message, self.counts.errors)

    def describe(self) -> dict[str, Any]:
        """The ``shadow`` part of ``GET /version``."""
        counts = self.counts
        return {
            "scored": counts.scored,
            "skipped": counts.skipped,
            "errors": counts.errors,
            "last_error": counts.last_error,
            "queued": self._queue.qsize(),
            "max_queue": self.max_queue,
        }


def shadow_input(parsed: Any, served: Served, shadow: Served) -> Any:
    """The champion's checked input as the shadow takes it: its own copy, with its columns in its order."""
    data = parsed.data
    if hasattr(data, "copy"):
        data = data.copy()  # a model that writes into its input must not change what the log holds
    schema = shadow.schema
    if schema is not None and hasattr(data, "columns") and served.schema != schema:
        data = schema.conform(data[[c for c in schema.names if c in data.columns]])
    return replace(parsed, data=data)
