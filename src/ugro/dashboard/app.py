"""The dashboard as an HTTP application: pages, static files and the JSON API.

Every answer carries a strict Content-Security-Policy (scripts and styles from this origin
only, no inline code) and an ETag. The page polls the API twice a second with If-None-Match;
while the state file, the cordons and the configured nodes are unchanged, the answer is a 304
decided by two `stat` calls, so an open page costs the daemon next to nothing. A changed state
is read once, whatever the number of open pages; between changes, documents are rebuilt from
what was read only as ages move on (`AGE_TICK_S`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from datetime import UTC, datetime
from http import HTTPStatus
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ugro.dashboard import api
from ugro.dashboard.access import Gate
from ugro.errors import StateError, UgroError
from ugro.httpserver import Response
from ugro.store.state import signature

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from ugro.httpserver import Request
    from ugro.store.history import History

log = logging.getLogger(__name__)

JSON = "application/json"
SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        ),
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    # Always revalidate: the ETag makes that a 304 when nothing changed.
    ("Cache-Control", "no-cache"),
)
# The pages, by path; each is a static shell its script fills from the API.
PAGES = {"/": "index.html", "/alerts": "alerts.html"}
NODE_PAGE = "node.html"
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
# How often documents are rebuilt with nothing changed on disk: ages and staleness move on.
AGE_TICK_S = 10


class Dashboard:
    """Answers the dashboard's requests (an `ugro.httpserver` application)."""

    def __init__(  # noqa: PLR0913 - each is a separate source the documents are built from
        self,
        *,
        state_path: Path,
        cordons_path: Path,
        history_path: Path | None,
        configured: Callable[[], Sequence[str]],
        source: str,
        token: str | None = None,
        stale_note: api.StaleNote | None = None,
    ) -> None:
        """Serve documents from these files; `source` says who serves (daemon or state)."""
        self.state_path = state_path
        self.cordons_path = cordons_path
        self.history_path = history_path
        self.configured = configured
        self.source = source
        self.stale_note = stale_note
        self.gate = Gate(token)
        self.static = _static_files()
        self._lock = threading.Lock()
        self._snapshot: tuple[tuple[object, ...], api.Snapshot] | None = None
        self._history: History | None = None
        self._history_lock = threading.Lock()

    def __call__(self, request: Request) -> Response | None:
        """The answer to `request`; None for a path the dashboard does not serve (404)."""
        refused = self.gate.answer(request)
        if refused is not None:
            return _secured(refused)
        answer = self._route(request)
        return None if answer is None else _secured(answer)

    def close(self) -> None:
        """Close the history database, if it was opened."""
        with self._history_lock:
            if self._history is not None:
                self._history.close()
                self._history = None

    def _route(self, request: Request) -> Response | None:
        path = request.path
        if path in PAGES:
            return self._file(PAGES[path], request)
        if path.startswith("/node/"):
            return self._file(NODE_PAGE, request)
        if path.startswith("/static/"):
            return self._file(path.removeprefix("/static/"), request)
        if path.startswith("/api/v1/"):
            return self._api(path.removeprefix("/api/v1/"), request)
        return None

    def _file(self, name: str, request: Request) -> Response | None:
        found = self.static.get(name)
        if found is None:
            return None
        body, content_type, etag = found
        return _conditional(request, etag) or Response(
            HTTPStatus.OK, body, content_type, (("ETag", etag),)
        )

    def _api(self, what: str, request: Request) -> Response | None:
        version = self._version()
        etag = '"' + hashlib.sha256(repr((version, what, request.query)).encode()).hexdigest()[:32]
        etag += '"'
        if unchanged := _conditional(request, etag):
            return unchanged
        try:
            document = self._document(what, request)
        except api.BadRequest as exc:
            return Response(HTTPStatus.BAD_REQUEST, f"400 {exc}\n".encode())
        except StateError as exc:
            return Response(HTTPStatus.SERVICE_UNAVAILABLE, f"503 {exc}\n".encode())
        if document is None:
            return None
        body = json.dumps(document, ensure_ascii=False, allow_nan=False).encode()
        return Response(HTTPStatus.OK, body, JSON, (("ETag", etag),))

    def _document(self, what: str, request: Request) -> dict[str, Any] | None:
        snapshot = self._read()
        if what == "health":
            return api.health(snapshot, "state")
        if what == "overview":
            return api.overview(snapshot, self.source)
        if what == "alerts":
            return api.alerts(snapshot)
        if what == "history":
            with self._history_lock:
                return api.series(
                    snapshot,
                    request.query.get("node"),
                    request.query.get("since"),
                    self._open_history(),
                )
        if what.startswith("nodes/"):
            with self._history_lock:
                return api.node(
                    snapshot, unquote(what.removeprefix("nodes/")), self._open_history()
                )
        return None

    def _files(self) -> tuple[object, ...]:
        """What changes when the data does: the state and cordons files, the configured nodes."""
        return (
            signature(self.state_path),
            signature(self.cordons_path),
            tuple(self.configured()),
        )

    def _version(self) -> tuple[object, ...]:
        """What changes when any document would: the data, or the age tick."""
        return (*self._files(), int(time.time() // AGE_TICK_S))

    def _read(self) -> api.Snapshot:
        """The state, cordons and configured nodes as of now, read again only when changed.

        Reading is the costly part (parsing and validating every node); the age tick only
        moves `now`.
        """
        from ugro.store.cordons import CordonStore
        from ugro.store.state import StateStore

        files = self._files()
        now = datetime.now(UTC)
        with self._lock:
            if self._snapshot is not None and self._snapshot[0] == files:
                return dataclasses.replace(self._snapshot[1], now=now)
            snapshot = api.Snapshot(
                state=StateStore(self.state_path).read(),
                cordons=CordonStore(self.cordons_path).read(),
                configured=tuple(self.configured()),
                now=now,
                stale_note=self.stale_note,
            )
            self._snapshot = (files, snapshot)
            return snapshot

    def _open_history(self) -> History | None:
        """The history database (one connection, under `_history_lock`); None without one.

        Never created here: `ugro dashboard --serve` only reads what a daemon wrote.
        """
        if self._history is None and self.history_path and self.history_path.exists():
            from ugro.store.history import History

            try:
                self._history = History(self.history_path)
            except UgroError as exc:
                log.warning("dashboard: charts without history: %s", exc)
        return self._history


def _conditional(request: Request, etag: str) -> Response | None:
    """A 304 when the client already has `etag`."""
    if etag in request.headers.get("if-none-match", ""):
        return Response(HTTPStatus.NOT_MODIFIED, b"", headers=(("ETag", etag),))
    return None


def _secured(response: Response) -> Response:
    return Response(
        response.status,
        response.body,
        response.content_type,
        response.headers + SECURITY_HEADERS,
    )


def _static_files() -> dict[str, tuple[bytes, str, str]]:
    """Every file of static/: its bytes, content type and ETag, read once."""
    files = {}
    for entry in resources.files("ugro.dashboard").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in STATIC_TYPES:
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            files[entry.name] = (body, STATIC_TYPES[suffix], etag)
    return files
