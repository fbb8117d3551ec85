"""At-least-once delivery and hostile receivers: the outbox across restarts, redirects, echoes."""

from __future__ import annotations

import asyncio
import json
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from alerting import MARKER, make_event, settings, until
from conftest import closed_port
from ugro.alerts.delivery import Dispatcher
from ugro.alerts.sinks import DeliveryError, WebhookSink, build

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from conftest import Receiver


class Hostile:
    """An HTTP server that answers every POST with `status`, `location` and `body`."""

    def __init__(self) -> None:
        """Record requests (path and headers); answer 200 until told otherwise."""
        self.status = 200
        self.location: str | None = None
        self.body = b"ok"
        self.echo = False
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                hostile.requests.append((self.command, self.path, headers))
                body = hostile.body
                if hostile.echo:
                    body = f"denied: {headers.get('authorization')} for {self.path}".encode()
                self.send_response(hostile.status)
                if hostile.location:
                    self.send_header("Location", hostile.location)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET = _answer  # noqa: N815 - http.server's names

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
                """Keep the test output quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def url(self, path: str = "/hook") -> str:
        """The URL of `path` here."""
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    """A hostile receiver in a thread, shut down at teardown."""
    yield from _serve()


@pytest.fixture
def elsewhere() -> Iterator[Hostile]:
    """A second receiver: where a redirect points."""
    yield from _serve()


def _serve() -> Iterator[Hostile]:
    server = Hostile()
    thread = threading.Thread(target=server.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirect_is_a_failed_delivery_and_credentials_stay(
    hostile: Hostile, elsewhere: Hostile, code: int
) -> None:
    """A 3xx names its Location and is not followed: nothing reaches the other host."""
    hostile.status = code
    hostile.location = f"http://localhost:{elsewhere.port}/steal?x={MARKER}"
    url = hostile.url("/hook").replace("127.0.0.1", f"ops:{MARKER}@127.0.0.1")
    sink = WebhookSink("hook", url, {"Authorization": f"Bearer {MARKER}tok"}, timeout_s=5)
    with pytest.raises(DeliveryError) as caught:
        asyncio.run(sink.send(make_event()))
    message = str(caught.value)
    assert f"HTTP {code} redirect to http://localhost:{elsewhere.port}/… not followed" in message
    assert MARKER not in message
    assert elsewhere.requests == []
    assert len(hostile.requests) == 1


def test_error_body_echoing_credentials_is_scrubbed(hostile: Hostile) -> None:
    """A 401 whose body quotes the Authorization header and URL token shows neither."""
    hostile.status = 401
    hostile.echo = True
    sink = WebhookSink(
        "hook",
        hostile.url(f"/hook?token={MARKER}q"),
        {"Authorization": f"Bearer {MARKER}tok"},
        timeout_s=5,
    )
    with pytest.raises(DeliveryError) as caught:
        asyncio.run(sink.send(make_event()))
    message = str(caught.value)
    assert "HTTP 401" in message
    assert "denied: … for /…?token=…" in message
    assert MARKER not in message


def _outbox(directory: Path, name: str = "hook") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / f"alerts-outbox.{name}.json").read_text())
    return data


def test_undelivered_events_survive_a_restart(hostile: Hostile, tmp_path: Path) -> None:
    """A firing the receiver refused is kept (0600) across close and sent after a restart."""
    hook = settings(name="hook", url=hostile.url())
    firing = make_event()
    hostile.status = 503

    async def refused() -> None:
        dispatcher = Dispatcher([(hook, build(hook))], base_delay_s=5, outbox_dir=tmp_path)
        dispatcher.start()
        dispatcher.submit([firing])
        await until(lambda: hostile.requests)
        await dispatcher.close()

    asyncio.run(asyncio.wait_for(refused(), 20))
    path = tmp_path / "alerts-outbox.hook.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [e["kind"] for e in _outbox(tmp_path)["pending"]] == ["firing"]
    hostile.status = 200
    hostile.requests.clear()

    async def restarted() -> None:
        dispatcher = Dispatcher([(hook, build(hook))], outbox_dir=tmp_path)
        dispatcher.start()
        await until(lambda: dispatcher.stats()["hook"]["sent"] == 1)
        await dispatcher.close()

    asyncio.run(asyncio.wait_for(restarted(), 20))
    assert len(hostile.requests) == 1
    assert _outbox(tmp_path)["pending"] == []
    assert _outbox(tmp_path)["delivered"] == [
        [firing.node, firing.key, firing.started_at.isoformat()]
    ]


def test_resolved_goes_only_to_sinks_that_got_the_firing(
    receiver: Receiver, tmp_path: Path
) -> None:
    """A sink that gave up on a firing never gets its resolved; one that got it does."""
    good = settings(name="good", url=receiver.url("/good"))
    down = settings(name="down", url=f"http://127.0.0.1:{closed_port()}/down", timeout_s=1)
    firing = make_event()
    resolved = make_event("resolved")

    async def main() -> dict[str, dict[str, object]]:
        dispatcher = Dispatcher(
            [(good, build(good)), (down, build(down))],
            max_attempts=2,
            base_delay_s=0.01,
            outbox_dir=tmp_path,
        )
        dispatcher.start()
        dispatcher.submit([firing])
        dispatcher.submit([resolved])
        await until(lambda: dispatcher.stats()["good"]["sent"] == 2)
        await until(lambda: dispatcher.stats()["down"]["failed"] == 1)
        await asyncio.sleep(0.2)
        stats = dispatcher.stats()
        await dispatcher.close()
        return stats

    stats = asyncio.run(asyncio.wait_for(main(), 20))
    assert [r.body["kind"] for r in receiver.requests] == ["firing", "resolved"]
    assert (stats["down"]["failed"], stats["down"]["retries"], stats["down"]["queued"]) == (1, 1, 0)
    assert _outbox(tmp_path, "down") == {"pending": [], "delivered": []}


def test_a_full_disk_is_said_once_per_episode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Outbox saves failing every sweep log one line when they start and one when they work."""
    from ugro.alerts.outbox import Outbox
    from ugro.errors import StateError
    from ugro.store import atomicfile

    box = Outbox.beside(tmp_path, "hook")
    write = atomicfile.write

    def full(path: Path, _data: bytes) -> None:
        raise StateError(f"{path}: cannot write: No space left on device")

    monkeypatch.setattr(atomicfile, "write", full)
    for _ in range(3):
        box.save()
    monkeypatch.setattr(atomicfile, "write", write)
    box.save()
    box.save()
    said = [r.getMessage() for r in caplog.records]
    assert sum("cannot write an alert outbox" in line for line in said) == 1, said
    assert sum("written again, after 3 failed writes" in line for line in said) == 1, said
