"""The served version, and the swap to a new one when the URI comes to point elsewhere.

One background thread owns the registry client: it resolves the URI every ``poll_seconds`` (or at
once when ``refresh()`` is called, e.g. by the registry's webhook), and when the URI resolves to
other contents it downloads them (``fetch_model`` verifies every digest), loads them, scores the
version's input example through the same checks a request goes through, and only then replaces
``current``. Requests read ``current`` once and keep that ``Served`` to the end, so a request in
flight finishes on the version it started on. A version that fails any step is not switched to.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from covex.serving.signature import InputSchema

if TYPE_CHECKING:
    from covex.client import Client

log = logging.getLogger("covex.serving")
# A version that failed to load is tried again after this long (a transient download error heals).
RETRY_FAILED_SECONDS = 60.0
# Refreshes coalesce: however many arrive, the registry is asked at most this often.
MIN_CHECK_INTERVAL = 0.2
# How often a worker looks whether another one was asked to refresh.
STAMP_CHECK_SECONDS = 0.25


def _mtime(path: Path | None) -> int | None:
    try:
        return None if path is None else path.stat().st_mtime_ns
    except OSError:
        return None


@dataclass(frozen=True)
class Served:
    """One loaded, warmed-up version."""

    name: str
    version: int
    uri: str  # the version itself: models:/churn/7
    manifest_digest: str
    loaded_since: float  # unix seconds
    model: Any  # mlflow.pyfunc.PyFuncModel
    schema: InputSchema | None
    takes_params: bool
    # With a column signature, requests are checked and typed by ``schema``: the model's own predict
    # function is called without MLflow checking them a second time (half the time of a 1-row request).
    checked_predict: Any = None

    @property
    def metadata(self) -> Any:
        return getattr(self.model, "metadata", None)

    def predict(self, data: Any, params: dict[str, Any] | None) -> Any:
        if self.checked_predict is not None:
            return self.checked_predict(data, params) if self.takes_params and params else self.checked_predict(data)
        if self.takes_params and params:
            return self.model.predict(data, params=params)
        return self.model.predict(data)


SwapListener = Callable[["Served | None", Served], None]
"""Called with the old (None at start) and the new version after each switch, on the holder's thread."""


@dataclass
class SwapStatus:
    swaps: int = 0
    failures: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_check_at: float | None = None
    failed: dict[str, float] = field(default_factory=dict)  # manifest digest -> when it failed


class ModelHolder:
    """Holds the version ``uri`` points to, and follows it."""

    def __init__(
        self,
        client_factory: Callable[[], Client],
        uri: str,
        *,
        poll_seconds: float = 5.0,
        cache_dir: str | None = None,
        on_swap: list[SwapListener] | None = None,
        on_failure: Callable[[str], None] | None = None,
        refresh_stamp: Path | None = None,
    ) -> None:
        self.uri = uri
        # With several workers, a refresh touches this file and every worker's holder looks at once.
        self.refresh_stamp = refresh_stamp
        self._stamp_seen = _mtime(refresh_stamp)
        self.poll_seconds = poll_seconds
        self.cache_dir = cache_dir
        self.current: Served | None = None
        self.status = SwapStatus()
        self._client_factory = client_factory
        self._listeners: list[SwapListener] = list(on_swap or [])
        self._on_failure = on_failure
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add_listener(self, listener: SwapListener) -> None:
        """Call ``listener(old, new)`` after every switch (the first load included, with ``old`` None)."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Load the version in the background and keep following the URI."""
        self._thread = threading.Thread(target=self._run, name="covex-serving-holder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def refresh(self) -> None:
        """Look where the URI points now, without waiting for the next poll (in every worker)."""
        if self.refresh_stamp is not None:
            try:
                self.refresh_stamp.touch()
            except OSError as exc:  # the other workers look at their next poll
                log.warning("could not tell the other workers to refresh: %s", exc)
        self._wake.set()

    def _wait(self, seconds: float) -> None:
        """Sleep until ``seconds`` pass, ``refresh()`` is called, or another worker touches the stamp."""
        if self.refresh_stamp is None:
            self._wake.wait(seconds)
            return
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self._wake.wait(min(left, STAMP_CHECK_SECONDS)):
                return
            seen = _mtime(self.refresh_stamp)
            if seen != self._stamp_seen:
                self._stamp_seen = seen
                return

    # -- the holder's thread ---------------------------------------------------------------

    def _run(self) -> None:
        client = None
        try:
            while not self._stop.is_set():
                self._wake.clear()
                started = time.monotonic()
                try:
                    if client is None:
                        client = self._client_factory()
                    self.check(client)
                except Exception as exc:  # noqa: BLE001 - the registry may be away for a while: keep serving
                    log.warning("could not check %s: %s", self.uri, exc)
                    if self.current is None:
                        self._failed(None, f"{type(exc).__name__}: {exc}")
                # Until something loads, try again sooner than the poll interval.
                self._wait(self.poll_seconds if self.current is not None else min(self.poll_seconds, 2.0))
                self._stop.wait(max(0.0, started + MIN_CHECK_INTERVAL - time.monotonic()))
        finally:
            if client is not None:
                client.close()

    def check(self, client: Client) -> bool:
        """Resolve the URI; load and switch to what it points at if that differs. True if it switched."""
        version = client.get_version(self.uri)
        self.status.last_check_at = time.time()
        current = self.current
        if current is not None and (current.name, current.version, current.manifest_digest) == (
            version.name,
            version.version,
            version.manifest_digest,
        ):
            return False
        digest = version.manifest_digest or ""
        failed_at = self.status.failed.get(f"{version.version}:{digest}")
        if failed_at is not None and time.time() - failed_at < RETRY_FAILED_SECONDS:
            return False
        label = f"models:/{version.name}/{version.version}"
        try:
            served = self._load(client, label)
        except Exception as exc:  # noqa: BLE001 - any failure: the old version keeps serving
            self.status.failed[f"{version.version}:{digest}"] = time.time()
            self._failed(label, f"{type(exc).__name__}: {exc}")
            return False
        old, self.current = self.current, served
        self.status.swaps += old is not None
        self.status.failed.pop(f"{version.version}:{digest}", None)
        log.info(
            "serving %s (manifest %s)%s",
            served.uri,
            served.manifest_digest[:12],
            f", was version {old.version}" if old else "",
        )
        for listener in self._listeners:
            try:
                listener(old, served)
            except Exception:
                log.exception("a swap listener failed")
        return True

    def _failed(self, label: str | None, message: str) -> None:
        self.status.failures += 1
        self.status.last_error = f"{label}: {message}" if label else message
        self.status.last_error_at = time.time()
        doing = "not switching to" if self.current is not None else "cannot serve"
        log.error("%s %s: %s", doing, label or self.uri, message)
        if self._on_failure is not None:
            self._on_failure(self.status.last_error)

    def _load(self, client: Client, label: str) -> Served:
        from covex.ml.loading import fetch_model
        from covex.ml.packaging import load_pyfunc

        resolved, _ = client.get_version_files(label)
        path = fetch_model(client, label, self.cache_dir)
        model = load_pyfunc(path, label)
        schema = InputSchema.from_model(getattr(model, "metadata", None))
        served = Served(
            name=resolved.name,
            version=resolved.version,
            uri=label,
            manifest_digest=resolved.manifest_digest or "",
            loaded_since=time.time(),
            model=model,
            schema=schema,
            takes_params="params" in inspect.signature(model.predict).parameters,
            checked_predict=getattr(model, "_predict_fn", None) if schema is not None else None,
        )
        warm_up(served, path)
        return served


def warm_up(served: Served, path: Path) -> None:
    """Score the version's input example through the request checks; raise if it does not predict."""
    metadata = served.metadata
    if metadata is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        example = metadata.load_input_example(str(path))
    if example is None:
        log.info("%s has no input example: not warmed up", served.uri)
        return
    import pandas as pd

    data = example
    if served.schema is not None and isinstance(example, pd.DataFrame):
        data = served.schema.conform(example)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        served.predict(data, None)
