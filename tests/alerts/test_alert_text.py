"""What nodes printed reaches alert payloads as plain text: no escapes, no markup, no forged line.

The human fields (title, body, summary, details, Alertmanager's annotations) are printable
and one line per detail; the machine fields are sent as they are. Apprise is told the body is
plain text, so a service with markup of its own (HTML here, Slack's links) escapes it.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ugro.alerts.book import ActiveAlert, AlertEvent
from ugro.alerts.sinks import AppriseSink, WebhookSink, alertmanager_alert

if TYPE_CHECKING:
    from conftest import Receiver

FORGED = "resolved 2026-11-30 03:14:15 UTC"
SUMMARY = "gpu check fail\x1b]0;owned\x07"
DETAILS = (
    "gpu: 2 × NVIDIA A100\x1b[2J\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    f"torch: <b>[/oops]</b> <https://evil.example/|the docs>\n{FORGED}",
)
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def hostile_event() -> AlertEvent:
    """A firing alert whose summary and details quote a hostile node."""
    started = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    alert = ActiveAlert("gpu7", "check:gpu", "critical", SUMMARY, DETAILS, started, started, "gpu")
    return alert.event("firing", "prod")


def test_human_fields_are_printable_and_machine_fields_exact() -> None:
    """Title, body, summary and details are plain; node, key, check and times are as they are."""
    event = hostile_event()
    assert event.title() == "[CRITICAL] gpu7: gpu check fail"
    body = event.body().split("\n")
    assert body == [
        "gpu: 2 × NVIDIA A100click",
        f"torch: <b>[/oops]</b> <https://evil.example/|the docs>⏎{FORGED}",
        "since 2026-11-30 03:00:00 UTC",
    ]
    sent = event.to_json()
    assert sent["summary"] == "gpu check fail"
    assert sent["details"] == body[:2]
    assert (sent["node"], sent["key"], sent["check"], sent["cluster"]) == (
        "gpu7",
        "check:gpu",
        "gpu",
        "prod",
    )
    annotations = alertmanager_alert(event)["annotations"]
    assert annotations == {"summary": "gpu check fail", "description": event.body()}


def test_the_book_keeps_the_text_as_it_came() -> None:
    """The state file's record of an alert is the data as it came: only messages are cleaned."""
    started = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    alert = ActiveAlert("gpu7", "check:gpu", "critical", SUMMARY, DETAILS, started, started, "gpu")
    kept = alert.to_json()
    assert (kept["summary"], kept["details"]) == (SUMMARY, list(DETAILS))
    assert ActiveAlert.from_json(kept) == alert


def test_a_webhook_gets_plain_human_fields(receiver: Receiver) -> None:
    """A webhook's JSON carries the printable summary and one line per detail."""
    sink = WebhookSink("hook", receiver.url(), {}, timeout_s=5)
    asyncio.run(sink.send(hostile_event()))
    (request,) = receiver.requests
    assert request.body["summary"] == "gpu check fail"
    assert not any(CONTROL.search(d) or "\n" in d for d in request.body["details"])


def test_apprise_escapes_the_body_for_a_service_with_markup(receiver: Receiver) -> None:
    """To a service that takes HTML, the details' tags arrive escaped, not as markup."""
    url = f"json://127.0.0.1:{receiver.port}/notify?format=html"
    sink = AppriseSink("chat", [url], timeout_s=5)
    asyncio.run(sink.send(hostile_event()))
    (request,) = receiver.requests
    message = request.body["message"]
    assert "&lt;b&gt;[/oops]&lt;/b&gt;" in message
    assert "<b>" not in message
    assert not CONTROL.search(message)


def test_a_detail_cannot_forge_the_resolution_line() -> None:
    """A resolved event's body has one resolution line, its own, whatever the details held."""
    event = replace(hostile_event(), kind="resolved", resolved_at=datetime(2026, 12, 1, tzinfo=UTC))
    lines = event.body().split("\n")
    assert [line for line in lines if line.startswith("resolved ")] == [
        "resolved 2026-12-01 00:00:00 UTC"
    ]
