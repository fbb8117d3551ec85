"""A small HTTP server for read-only pages, bounded in threads, queue and time.

The daemon serves /metrics and the dashboard with it. One thread accepts; a fixed pool of
`WORKERS` threads answers, one request per connection. A connection that finds every worker
busy and `QUEUED` others waiting is closed at once, and each connection has a deadline for
its request and a timeout for each write: neither a flood of connections nor a client that
never finishes its request can take threads or memory from the daemon, and a stalled client
holds one worker for seconds, never the others.
"""

from __future__ import annotations

import gzip
import io
import logging
import queue
import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from _typeshed import WriteableBuffer

    # A page: given the request's Accept header, its body and content type.
    Page = Callable[[str], tuple[bytes, str]]

log = logging.getLogger(__name__)

# Scrapes are rare (one per Prometheus every 15-60 s) and rendering holds the GIL anyway: a few
# threads serve every scraper, and leave some free while stalled clients hold the others.
WORKERS = 4
# Connections accepted while every worker is busy wait here; beyond this they are closed at
# once rather than queued without bound.
QUEUED = 16
# From its connect, a client has this long to send its request, headers and all ...
REQUEST_TIMEOUT_S = 5.0
# ... and each write of the answer may take this long (Prometheus's default scrape timeout).
WRITE_TIMEOUT_S = 10.0

# How often the acceptor looks for shutdown(): how long stopping the daemon waits for it.
POLL_S = 0.2

TEXT = "text/plain; charset=utf-8"
# A query string holds a few parameters; more is not a request ugro's pages make.
MAX_QUERY_FIELDS = 16


@dataclass(frozen=True, slots=True)
class Request:
    """What an application sees of a GET or HEAD: the path, its query and the headers."""

    path: str
    # Each parameter's last value; a query that cannot be parsed is empty.
    query: Mapping[str, str]
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Response:
    """What an application answers: a status, a body and headers of its own."""

    status: HTTPStatus
    body: bytes
    content_type: str = TEXT
    headers: tuple[tuple[str, str], ...] = ()


if TYPE_CHECKING:
    # An application: answers the requests it knows, and None for the others (404).
    App = Callable[[Request], Response | None]


def serve(
    address: str, port: int, pages: Mapping[str, Page], app: App | None = None
) -> BoundedServer:
    """Serve `pages` (path → page), then `app` for other paths, on address:port from threads.

    Raises OSError when the port cannot be bound. Stop it with `shutdown()`, then
    `server_close()`.
    """
    server = BoundedServer((address, port), pages, app)
    name = f"{server.thread_prefix}-accept"
    threading.Thread(target=server.serve_forever, args=(POLL_S,), name=name, daemon=True).start()
    return server


class BoundedServer(socketserver.TCPServer):
    """Answers GET and HEAD of its pages from a fixed pool of threads fed by a bounded queue."""

    allow_reuse_address = True  # a restarted daemon rebinds its port despite TIME_WAIT
    # The kernel's listen backlog costs no thread; a burst of connects waits there for the
    # acceptor rather than in SYN retries.
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], pages: Mapping[str, Page], app: App | None = None
    ) -> None:
        """Bind `address` (OSError when taken) and start the workers; serve_forever accepts."""
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.pages = dict(pages)
        self.app = app
        self._waiting: queue.SimpleQueue[tuple[socket.socket, Any, float] | None]
        self._waiting = queue.SimpleQueue()
        self._active: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        # Binds, and calls server_close() before raising when it cannot. The workers build each
        # _Handler themselves, with its connection's deadline.
        super().__init__(address, socketserver.BaseRequestHandler)
        # Named by port, so a thread dump tells which server a thread serves.
        self.thread_prefix = f"ugro-http-{self.server_address[1]}"
        for i in range(WORKERS):
            worker = threading.Thread(
                target=self._work, name=f"{self.thread_prefix}-{i}", daemon=True
            )
            worker.start()
            self._workers.append(worker)

    def process_request(self, request: Any, client_address: Any) -> None:  # noqa: ANN401 - socketserver's types
        """Queue the connection for a worker, or close it when the queue is full."""
        if self._waiting.qsize() >= QUEUED:
            self.shutdown_request(request)
            return
        # The deadline starts now: time spent waiting for a worker counts against it.
        self._waiting.put((request, client_address, time.monotonic() + REQUEST_TIMEOUT_S))

    def server_close(self) -> None:
        """Stop listening, drop waiting and open connections, and let the workers go."""
        super().server_close()
        while True:
            try:
                item = self._waiting.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.shutdown_request(item[0])
        with self._lock:
            for sock in self._active:
                # Wakes a worker blocked on a stalled client now rather than at its timeout.
                sock.shutdown(socket.SHUT_RDWR)
        for _ in self._workers:
            self._waiting.put(None)
        for worker in self._workers:
            worker.join(timeout=1)

    def _work(self) -> None:
        while (item := self._waiting.get()) is not None:
            request, address, deadline = item
            with self._lock:
                self._active.add(request)
            try:
                _Handler(request, address, self, deadline)
            except OSError as exc:
                log.debug("HTTP client %s went away: %s", address, exc)
            except Exception:
                log.exception("HTTP request from %s failed", address)
            finally:
                with self._lock:
                    self._active.discard(request)
                self.shutdown_request(request)


class _Deadline(io.RawIOBase):
    """A socket's reading side that refuses to wait past the connection's deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        # A per-read timeout alone would let a client that sends a byte every few seconds
        # hold the worker for as long as it likes.
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    """One request: GET or HEAD of a page, 404 for other paths, 405 for other methods."""

    server: BoundedServer
    server_version = "ugro"
    sys_version = ""
    # Errors are plain text: nothing a client sent is ever served as markup.
    error_content_type = TEXT
    error_message_format = "%(code)d %(message)s\n"

    def __init__(
        self,
        request: socket.socket,
        address: Any,  # noqa: ANN401 - socketserver's type
        server: BoundedServer,
        deadline: float,
    ) -> None:
        self.deadline = deadline
        super().__init__(request, address, server)

    def setup(self) -> None:
        """Read the request through the connection's deadline."""
        super().setup()
        self.rfile.close()
        self.rfile = io.BufferedReader(_Deadline(self.connection, self.deadline))

    def parse_request(self) -> bool:
        """Parse the request line and headers; answer 405 to what is neither GET nor HEAD."""
        if not super().parse_request():
            return False
        if self.command in {"GET", "HEAD"}:
            return True
        self._answer(HTTPStatus.METHOD_NOT_ALLOWED, TEXT, b"405 only GET and HEAD\n")
        return False

    def do_GET(self) -> None:
        """Answer with the page at the request's path, or the application's answer, or 404."""
        url = urlsplit(self.path)
        page = self.server.pages.get(url.path)
        try:
            if page is not None:
                body, content_type = page(self.headers.get("Accept", ""))
                self._answer(HTTPStatus.OK, content_type, body)
                return
            answer = None if self.server.app is None else self.server.app(self._request(url))
        except Exception:
            log.exception("cannot render %s", url.path)
            self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, TEXT, b"500 cannot render\n")
            return
        if answer is None:
            self._answer(HTTPStatus.NOT_FOUND, TEXT, b"404 not found\n")
            return
        self._answer(answer.status, answer.content_type, answer.body, answer.headers)

    def _request(self, url: Any) -> Request:  # noqa: ANN401 - urlsplit's result type
        try:
            query = dict(parse_qsl(url.query, max_num_fields=MAX_QUERY_FIELDS))
        except ValueError:
            query = {}
        return Request(url.path, query, {k.lower(): v for k, v in self.headers.items()})

    def do_HEAD(self) -> None:
        """Answer as GET does, without the body (`_answer` leaves it out)."""
        self.do_GET()

    def _answer(
        self,
        status: HTTPStatus,
        content_type: str,
        body: bytes,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.connection.settimeout(WRITE_TIMEOUT_S)
        if status is HTTPStatus.NOT_MODIFIED:
            body = b""  # a 304 never has a body (RFC 9110, 15.4.5)
        gzipped = status is HTTPStatus.OK and "gzip" in self.headers.get("Accept-Encoding", "")
        if gzipped:
            body = gzip.compress(body)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Vary", "Accept-Encoding")
        if status is HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", "GET, HEAD")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        """Only to the debug log: a line per scrape would flood the daemon's log."""
        log.debug("HTTP client %s: %s", self.address_string(), format % args)
