"""Alert sinks and the dispatcher, against real receivers: HTTP, Apprise, commands, Alertmanager.

Nothing is mocked: webhooks and Apprise post to an HTTP server on 127.0.0.1, commands are
real processes, and the Alertmanager is Debian's prometheus-alertmanager on loopback.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from alerting import MARKER, make_event, settings, until
from conftest import closed_port, wait_for
from ugro.alerts.delivery import Dispatcher, send_now
from ugro.alerts.posting import redact
from ugro.alerts.sinks import (
    AlertmanagerSink,
    AppriseSink,
    CommandSink,
    DeliveryError,
    Resending,
    WebhookSink,
    accepts,
    alertmanager_alert,
    build,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conftest import Alertmanager, Receiver
    from ugro.alerts.book import AlertEvent
    from ugro.alerts.sinks import Sink
    from ugro.config import SinkSettings


@pytest.fixture
def root_log() -> Iterator[io.StringIO]:
    """Everything that reaches the root logger at DEBUG, as `logging.basicConfig` would show.

    Not caplog: pytest also attaches caplog to loggers that do not propagate, so it sees
    Apprise's own records, which ugro keeps from reaching any handler of the application.
    """
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


# --- redact, accepts, build ----------------------------------------------------------------

REDACTED = [
    (f"http://user:{MARKER}@127.0.0.1:8080/hook?token={MARKER}", "http://127.0.0.1:8080/…"),
    (f"https://hooks.example.invalid/services/{MARKER}", "https://hooks.example.invalid/…"),
    ("https://127.0.0.1", "https://127.0.0.1"),
    (f"http://127.0.0.1:9093/?key={MARKER}", "http://127.0.0.1:9093/…"),
    (f"slack://{MARKER}A/{MARKER}B/{MARKER}C", "slack://…"),
    (f"tgram://{MARKER}bot/12345", "tgram://…"),
    (f"mailto://user:{MARKER}@gmail.com", "mailto://…"),
    (f"http://user:{MARKER}@127.0.0.1:x/", "…"),
    (MARKER, "…"),
]


@pytest.mark.parametrize(("url", "shown"), REDACTED)
def test_redact_hides_secrets(url: str, shown: str) -> None:
    """Userinfo, paths, queries and non-HTTP targets never survive redaction."""
    assert redact(url) == shown
    assert MARKER not in redact(url)


@pytest.mark.parametrize(
    ("fields", "event", "accepted"),
    [
        ({}, make_event(severity="warning"), True),
        ({"min_severity": "critical"}, make_event(severity="warning"), False),
        ({"min_severity": "critical"}, make_event(severity="critical"), True),
        ({"min_severity": "critical"}, make_event("resolved", severity="warning"), False),
        ({"min_severity": "critical"}, make_event("test", severity="warning"), True),
        ({"nodes": ["gpu-*"]}, make_event(node="gpu-07"), True),
        ({"nodes": ["gpu-*"]}, make_event(node="cpu-01"), False),
        ({"nodes": ["cpu-0[1-3]", "login"]}, make_event(node="cpu-02"), True),
        ({"nodes": ["gpu-*"]}, make_event(node="GPU-07"), False),
        ({"nodes": ["gpu-*"]}, make_event(node="cluster", key="cluster:degraded"), True),
        ({"nodes": []}, make_event(node="gpu-01"), False),
    ],
)
def test_accepts_filters_by_severity_and_node(
    fields: dict[str, Any], event: AlertEvent, accepted: bool
) -> None:
    """min_severity and node globs pick events; cluster-wide and test events always pass nodes."""
    assert accepts(settings(**fields), event) is accepted


def test_build_makes_each_type(tmp_path: Path) -> None:
    """build() turns each sink type's settings into that sink."""
    made = [
        build(settings(type="apprise", urls=["json://127.0.0.1:1/x"], url=None)),
        build(settings()),
        build(settings(type="alertmanager", url="http://127.0.0.1:9093")),
        build(settings(type="command", command=[str(tmp_path / "notify")], url=None)),
    ]
    kinds = [AppriseSink, WebhookSink, AlertmanagerSink, CommandSink]
    assert [type(s) for s in made] == kinds
    assert [isinstance(s, Resending) for s in made] == [False, False, True, False]


# --- webhook -------------------------------------------------------------------------------


def test_webhook_posts_the_event_json(receiver: Receiver) -> None:
    """The webhook receives exactly the event's JSON, with our headers."""
    event = make_event()
    sink = WebhookSink("hook", receiver.url(), {"X-Token": "t"}, timeout_s=5)
    asyncio.run(sink.send(event))
    (request,) = receiver.requests
    assert request.path == "/hook"
    assert request.body == event.to_json()
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "ugro"
    assert request.headers["x-token"] == "t"


def test_webhook_sends_userinfo_as_basic_auth(receiver: Receiver) -> None:
    """A user:password in the URL becomes an Authorization header, not part of the host."""
    url = receiver.url().replace("127.0.0.1", f"ops:{MARKER}@127.0.0.1")
    asyncio.run(WebhookSink("hook", url, {}, timeout_s=5).send(make_event()))
    (request,) = receiver.requests
    assert request.headers["authorization"] == "Basic b3BzOnMzY3JldA=="


def test_webhook_error_status_is_a_delivery_error(receiver: Receiver) -> None:
    """A non-2xx answer raises DeliveryError with the status and a redacted URL."""
    receiver.status = 503
    sink = WebhookSink("hook", receiver.url(f"/hook?token={MARKER}"), {}, timeout_s=5)
    with pytest.raises(DeliveryError, match="HTTP 503") as caught:
        asyncio.run(sink.send(make_event()))
    assert MARKER not in str(caught.value)
    assert f"127.0.0.1:{receiver.port}/…" in str(caught.value)


def test_webhook_refused_and_hung_are_delivery_errors(silent_port: int) -> None:
    """Connection refused and no answer both raise DeliveryError, within the timeout."""
    refused = WebhookSink("a", f"http://127.0.0.1:{closed_port()}/x", {}, timeout_s=5)
    with pytest.raises(DeliveryError, match="refused"):
        asyncio.run(refused.send(make_event()))
    hung = WebhookSink("b", f"http://127.0.0.1:{silent_port}/x", {}, timeout_s=0.3)
    start = time.monotonic()
    with pytest.raises(DeliveryError, match=r"no answer within 0\.3 s"):
        asyncio.run(hung.send(make_event()))
    assert time.monotonic() - start < 2


# --- apprise -------------------------------------------------------------------------------


def test_apprise_json_delivers_title_body_and_type(receiver: Receiver) -> None:
    """Apprise's json:// posts the event's title and body, typed by severity and kind."""
    sink = AppriseSink("chat", [f"json://127.0.0.1:{receiver.port}/notify"], timeout_s=5)
    firing, resolved = make_event(), make_event("resolved")
    asyncio.run(sink.send(firing))
    asyncio.run(sink.send(resolved))
    first, second = receiver.requests
    assert first.path == "/notify"
    assert first.body["title"] == firing.title()
    assert first.body["message"] == firing.body()
    assert first.body["type"] == "failure"
    assert second.body["title"] == resolved.title()
    assert second.body["type"] == "success"


def test_apprise_failure_is_redacted(root_log: io.StringIO) -> None:
    """A failed Apprise delivery raises DeliveryError; no secret reaches it or the log."""
    url = f"json://user:{MARKER}@127.0.0.1:{closed_port()}/{MARKER}"
    sink = AppriseSink("chat", [url], timeout_s=5)
    with pytest.raises(DeliveryError, match="Apprise reported failure") as caught:
        asyncio.run(sink.send(make_event()))
    assert MARKER not in str(caught.value)
    assert MARKER not in root_log.getvalue()


def test_apprise_rejects_unknown_url_naming_scheme_only(root_log: io.StringIO) -> None:
    """A URL Apprise cannot load fails at construction, naming the scheme and not the URL."""
    with pytest.raises(DeliveryError, match=r"'chat'.*nosuchservice://") as caught:
        AppriseSink("chat", [f"nosuchservice://{MARKER}@127.0.0.1/"], timeout_s=5)
    assert MARKER not in str(caught.value)
    assert MARKER not in root_log.getvalue()


# --- command -------------------------------------------------------------------------------


def test_command_gets_event_json_on_stdin(tmp_path: Path) -> None:
    """The command reads the event's JSON on its stdin."""
    script = tmp_path / "notify"
    script.write_text('#!/bin/sh\ncat > "$1"\n', encoding="utf-8")
    script.chmod(0o755)
    out = tmp_path / "event.json"
    event = make_event()
    asyncio.run(CommandSink("cmd", [str(script), str(out)], timeout_s=5).send(event))
    assert json.loads(out.read_text(encoding="utf-8")) == event.to_json()


def test_command_failure_reports_code_and_last_stderr_line() -> None:
    """A non-zero exit raises DeliveryError with the code and the last line of stderr."""
    argv = ["/bin/sh", "-c", "echo first >&2; echo 'no route to pager' >&2; exit 3"]
    with pytest.raises(DeliveryError, match="sh exited with 3: no route to pager"):
        asyncio.run(CommandSink("cmd", argv, timeout_s=5).send(make_event()))


def test_command_missing_program_is_a_delivery_error(tmp_path: Path) -> None:
    """A command that does not exist raises DeliveryError, not OSError."""
    with pytest.raises(DeliveryError, match="cannot run nothere"):
        asyncio.run(CommandSink("cmd", [str(tmp_path / "nothere")], timeout_s=5).send(make_event()))


def test_command_hanging_is_killed_with_its_children(tmp_path: Path) -> None:
    """A command past its timeout is killed, children included, and raises DeliveryError."""
    pidfile = tmp_path / "child.pid"
    argv = ["/bin/sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"]
    start = time.monotonic()
    with pytest.raises(DeliveryError, match=r"did not finish within 0\.5 s and was killed"):
        asyncio.run(CommandSink("cmd", argv, timeout_s=0.5).send(make_event()))
    assert time.monotonic() - start < 3
    child = Path(f"/proc/{pidfile.read_text(encoding='utf-8').strip()}/stat")
    wait_for(
        lambda: not child.exists() or child.read_text(encoding="utf-8").split()[2] == "Z",
        "the command's child to die",
    )


# --- alertmanager --------------------------------------------------------------------------


def test_alertmanager_payload_shape() -> None:
    """Firing has no endsAt, resolved ends when it resolved, a test ends a minute later."""
    now = datetime.now(UTC)
    firing = alertmanager_alert(make_event(key="check:gpu"), now)
    assert firing["labels"] == {
        "alertname": "UgroCheckGpu",
        "node": "gpu-01",
        "severity": "critical",
        "cluster": "lab",
        "key": "check:gpu",
    }
    assert firing["annotations"]["summary"] == "GPU 3 is missing"
    assert "endsAt" not in firing
    assert "generatorURL" not in firing
    resolved_event = make_event("resolved")
    resolved = alertmanager_alert(resolved_event, now)
    assert resolved_event.resolved_at is not None
    assert resolved["endsAt"] == resolved_event.resolved_at.isoformat()
    test = alertmanager_alert(make_event("test"), now)
    assert test["endsAt"] == (now + timedelta(minutes=1)).isoformat()


def test_alertmanager_fires_resolves_and_resends(alertmanager: Alertmanager) -> None:
    """A real Alertmanager shows the firing alert with our labels, re-sent, then resolved."""
    sink = AlertmanagerSink("am", alertmanager.url + "/", timeout_s=5)
    firing = make_event(key="check:gpu-am", check="gpu")
    asyncio.run(sink.send(firing))
    wait_for(lambda: alertmanager.find("check:gpu-am"), "the alert to show")
    alert = alertmanager.find("check:gpu-am")
    assert alert is not None
    assert alert["status"]["state"] == "active"
    labels = alert["labels"]
    assert {k: labels[k] for k in ("alertname", "node", "check", "severity", "cluster")} == {
        "alertname": "UgroCheckGpuAm",
        "node": "gpu-01",
        "check": "gpu",
        "severity": "critical",
        "cluster": "lab",
    }
    assert alert["annotations"]["description"] == firing.body()

    before = alert["updatedAt"]
    time.sleep(0.01)
    asyncio.run(sink.resend([firing]))
    wait_for(
        lambda: (a := alertmanager.find("check:gpu-am")) and a["updatedAt"] != before,
        "the re-sent alert to update",
    )

    asyncio.run(sink.send(make_event("resolved", key="check:gpu-am", check="gpu")))
    wait_for(
        lambda: alertmanager.find("check:gpu-am", "?active=true") is None,
        "the resolved alert to leave the active ones",
    )


def test_alertmanager_test_event_and_bad_request(alertmanager: Alertmanager) -> None:
    """A test event is active until a minute later; Alertmanager's 400 becomes DeliveryError."""
    sink = AlertmanagerSink("am", alertmanager.url, timeout_s=5)
    asyncio.run(sink.send(make_event("test", key="test:am")))
    wait_for(lambda: alertmanager.find("test:am", "?active=true"), "the test alert to show")
    late = make_event(key="late")
    # Alertmanager refuses an alert that ends before it starts.
    bad = replace(late, kind="resolved", resolved_at=late.started_at - timedelta(hours=1))
    with pytest.raises(DeliveryError, match="HTTP 400"):
        asyncio.run(sink.send(bad))


# --- dispatcher ----------------------------------------------------------------------------


def test_dispatcher_isolates_failing_and_hanging_sinks(
    receiver: Receiver, silent_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Refusing and hanging sinks delay neither submit nor a healthy sink; failures are counted."""
    caplog.set_level(logging.DEBUG)
    secret_url = f"http://user:{MARKER}@127.0.0.1:{closed_port()}/hook?token={MARKER}"
    configured: list[tuple[SinkSettings, Sink]] = []
    sinks: list[dict[str, Any]] = [
        {"name": "refusing", "url": secret_url},
        {"name": "hung-http", "url": f"http://127.0.0.1:{silent_port}/", "timeout_s": 0.5},
        {"name": "hung-cmd", "type": "command", "command": ["sleep", "30"], "timeout_s": 0.5},
        {"name": "healthy", "url": receiver.url()},
    ]
    for fields in sinks:
        sink_settings = settings(**fields)
        configured.append((sink_settings, build(sink_settings)))
    event = make_event()

    async def main() -> tuple[float, float, float, dict[str, dict[str, object]]]:
        dispatcher = Dispatcher(configured, max_attempts=3, base_delay_s=0.05)
        dispatcher.start()
        start = time.monotonic()
        dispatcher.submit([event])
        submitted = time.monotonic() - start
        await until(lambda: receiver.requests)
        delivered = time.monotonic() - start
        await until(lambda: dispatcher.stats()["refusing"]["failed"])
        stats = dispatcher.stats()
        start = time.monotonic()
        await dispatcher.close(timeout_s=2)
        return submitted, delivered, time.monotonic() - start, stats

    submitted, delivered, closed, stats = asyncio.run(asyncio.wait_for(main(), 20))
    assert submitted < 0.05
    assert delivered < 1
    assert closed < 2
    assert receiver.requests[0].body == event.to_json()
    assert stats["healthy"]["sent"] == 1
    assert stats["healthy"]["last_sent_at"] is not None
    refusing = stats["refusing"]
    assert (refusing["sent"], refusing["retries"], refusing["failed"]) == (0, 2, 1)
    assert isinstance(refusing["last_error"], str)
    assert "refused" in refusing["last_error"]
    assert MARKER not in refusing["last_error"]
    assert MARKER not in caplog.text
    assert "gave up" in caplog.text
    json.dumps(stats)


def test_dispatcher_filters_and_resends_when_due(receiver: Receiver) -> None:
    """submit() honours each sink's filters; resend() reaches Alertmanager sinks once per period."""
    am_settings = settings(
        name="am", type="alertmanager", url=receiver.url(""), min_severity="critical"
    )
    hook_settings = settings(name="hook", url=receiver.url("/hook"), nodes=["cpu-*"])
    am = AlertmanagerSink("am", am_settings.url or "", timeout_s=5)
    am.resend_s = 0.3

    async def main() -> None:
        dispatcher = Dispatcher([(am_settings, am), (hook_settings, build(hook_settings))])
        dispatcher.start()
        dispatcher.submit([make_event(severity="warning"), make_event(node="cpu-01")])
        firing = [make_event(), make_event(severity="warning", key="check:disk")]
        dispatcher.resend(firing)
        dispatcher.resend(firing)  # not due yet: ignored
        await asyncio.sleep(0.4)
        dispatcher.resend(firing)
        await asyncio.sleep(0.3)
        await dispatcher.close()

    asyncio.run(main())
    paths = sorted(
        (r.path, len(r.body) if isinstance(r.body, list) else 0) for r in receiver.requests
    )
    # The hook got the cpu-01 event; Alertmanager that critical event and two resends of the
    # one critical firing alert (the second resend() came too early).
    assert paths == [
        ("/api/v2/alerts", 1),
        ("/api/v2/alerts", 1),
        ("/api/v2/alerts", 1),
        ("/hook", 0),
    ]


def test_send_now_returns_the_redacted_error() -> None:
    """send_now() gives None on success and the redacted error text on failure."""
    url = f"http://127.0.0.1:{closed_port()}/hook?token={MARKER}"
    error = asyncio.run(send_now(WebhookSink("hook", url, {}, timeout_s=2), make_event("test")))
    assert error is not None
    assert "'hook'" in error
    assert MARKER not in error
