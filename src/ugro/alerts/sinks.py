"""Where alert events go: Apprise services, webhooks, Alertmanager and local commands.

A sink delivers one `AlertEvent` or raises `DeliveryError`; retrying, queueing and counting
are the dispatcher's job (`ugro.alerts.delivery`). Every library and OS error is translated
here, and no message or log line carries a configured URL in full: URLs hold tokens and
passwords, so they appear only as `ugro.alerts.posting.redact` renders them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.parse
import warnings
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from http.client import HTTPException
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from ugro import subprocesses
from ugro.alerts.book import SEVERITY_RANK
from ugro.alerts.posting import (
    QUOTE_CHARS,
    header_secrets,
    post_request,
    read_quietly,
    redact,
    scrub,
    url_secrets,
    urlopen,
)
from ugro.errors import UgroError
from ugro.model import CLUSTER, as_utc
from ugro.text import printable

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import apprise

    from ugro.alerts.book import AlertEvent
    from ugro.config import SinkSettings, SinkType

__all__ = [
    "KINDS",
    "AlertmanagerSink",
    "AppriseSink",
    "CommandSink",
    "DeliveryError",
    "Kind",
    "Resending",
    "Sink",
    "WebhookSink",
    "accepts",
    "build",
    "target",
]

#: How often Alertmanager sinks re-post firing alerts: well within Alertmanager's default
#: resolve_timeout of 5 minutes, after which an alert that was not re-sent resolves itself.
ALERTMANAGER_RESEND_S = 60.0
#: How long a test alert stays active in Alertmanager.
TEST_ALERT_S = 60.0


class DeliveryError(UgroError):
    """An event could not be delivered; the message names the sink and never holds a secret."""


class Sink(Protocol):
    """A place alert events are delivered to."""

    name: str

    async def send(self, event: AlertEvent) -> None:
        """Deliver `event` once; raise DeliveryError on failure."""


@runtime_checkable
class Resending(Sink, Protocol):
    """A sink that expects every firing alert again at intervals (Alertmanager)."""

    resend_s: float

    async def resend(self, firing: Sequence[AlertEvent]) -> None:
        """Deliver every alert that is still firing; raise DeliveryError on failure."""


class Kind(NamedTuple):
    """What ugro does with one `type:` of sink."""

    # The sink the settings describe; raises DeliveryError if it cannot be set up.
    build: Callable[[SinkSettings], Sink]
    # Where the sink delivers, redacted.
    target: Callable[[SinkSettings], str]


def _redacted_url(settings: SinkSettings) -> str:
    return redact(settings.url or "")


#: Every `type:` of sink that cluster.yaml accepts (`ugro.config.SinkType`), and its kind.
KINDS: Mapping[SinkType, Kind] = {
    "apprise": Kind(
        lambda s: AppriseSink(s.name, s.urls, timeout_s=s.timeout_s),
        lambda s: ", ".join(redact(url) for url in s.urls),
    ),
    "webhook": Kind(
        lambda s: WebhookSink(s.name, s.url or "", s.headers, timeout_s=s.timeout_s),
        _redacted_url,
    ),
    "alertmanager": Kind(
        lambda s: AlertmanagerSink(s.name, s.url or "", timeout_s=s.timeout_s),
        _redacted_url,
    ),
    "command": Kind(
        lambda s: CommandSink(s.name, s.command or [], timeout_s=s.timeout_s),
        lambda s: PurePath((s.command or ["?"])[0]).name,
    ),
}


def target(settings: SinkSettings) -> str:
    """Where a sink delivers, redacted, for logs and `ugro daemon status`."""
    return KINDS[settings.type].target(settings)


def accepts(settings: SinkSettings, event: AlertEvent) -> bool:
    """Whether `event` passes the sink's filters: severity, nodes, and per-check alerts.

    A check's own alert (`check:NAME`) goes to Alertmanager only; every other sink hears of
    it through the node's alert, which lists the node's checks that are not ok.

    Cluster-wide events pass any node filter: they concern every node. Test events pass both
    filters, since they check the path to the sink and not the routing.
    """
    if event.kind == "test":
        return True
    if event.check is not None and settings.type != "alertmanager":
        # One message per node episode: the node's own alert names all its checks. A
        # check's alert is for Alertmanager's routing (and the history), not a second page.
        return False
    if SEVERITY_RANK[event.severity] < SEVERITY_RANK[settings.min_severity]:
        return False
    if settings.nodes is None or event.node == CLUSTER:
        return True
    return any(fnmatchcase(event.node, pattern) for pattern in settings.nodes)


def build(settings: SinkSettings) -> Sink:
    """The sink `settings` describe; raise DeliveryError if it cannot be set up."""
    return KINDS[settings.type].build(settings)


class AppriseSink:
    """Chat, email and push services through Apprise: one URL per service, no per-service code."""

    def __init__(self, name: str, urls: Sequence[str], *, timeout_s: float) -> None:
        """Load every URL; raise DeliveryError naming the scheme of one Apprise rejects."""
        _quiet_apprise()
        self.name = name
        self.timeout_s = timeout_s
        self._secrets = sorted({s for url in urls for s in url_secrets(url)}, key=len, reverse=True)
        with warnings.catch_warnings():
            # Apprise 2.3's e-mail plugin imports imghdr, deprecated since Python 3.11; plugins
            # load on the first add(). Not ours to fix, and fatal where warnings are errors.
            warnings.filterwarnings("ignore", "'imghdr' is deprecated", DeprecationWarning)
            # Slow to import, so only when an Apprise sink is configured.
            import apprise

            self._apprise = apprise.Apprise()
            for url in urls:
                # A list, not a string: Apprise splits a string at commas and spaces.
                if not self._apprise.add([url]):
                    scheme = urllib.parse.urlsplit(url).scheme or "(none)"
                    raise DeliveryError(
                        f"sink {name!r}: Apprise cannot use the {scheme}:// URL "
                        "(unknown service, or a malformed or incomplete URL)"
                    )
        self._types = {
            "resolved": apprise.NotifyType.SUCCESS,
            "test": apprise.NotifyType.INFO,
            "critical": apprise.NotifyType.FAILURE,
            "warning": apprise.NotifyType.WARNING,
        }
        # Plain text: each service escapes it for its own markup (Slack's <url|text> links,
        # HTML mail), so nothing a node printed is read as markup.
        self._format = apprise.NotifyFormat.TEXT

    async def send(self, event: AlertEvent) -> None:
        """Notify every service; raise DeliveryError unless all of them accepted."""
        notify_type = self._types.get(event.kind, self._types[event.severity])
        try:
            result = await asyncio.wait_for(
                self._apprise.async_notify(
                    title=event.title(),
                    body=event.body(),
                    notify_type=notify_type,
                    body_format=self._format,
                ),
                self.timeout_s,
            )
        except TimeoutError:
            raise DeliveryError(
                f"sink {self.name!r}: no answer within {self.timeout_s:g} s"
            ) from None
        if not result:
            raise DeliveryError(f"sink {self.name!r}: {self._why(result)}")

    def _why(self, result: apprise.AppriseResult) -> str:
        """What Apprise said went wrong (Apprise ≥ 2 keeps its warnings in the result)."""
        status = getattr(getattr(result, "status", None), "name", "FAILURE").lower()
        logs = getattr(result, "logs", None)
        messages = [entry.message for entry in logs()] if callable(logs) else []
        reason = scrub("; ".join(dict.fromkeys(messages)), self._secrets)[:QUOTE_CHARS]
        return f"Apprise reported {status}" + (f": {reason}" if reason else "")


class WebhookSink:
    """POSTs each event's JSON to a URL."""

    def __init__(
        self, name: str, url: str, headers: Mapping[str, str], *, timeout_s: float
    ) -> None:
        """Deliver to `url` with extra `headers` (an Authorization header, say)."""
        self.name = name
        self.url = url
        self.headers = dict(headers)
        self.timeout_s = timeout_s

    async def send(self, event: AlertEvent) -> None:
        """POST the event; raise DeliveryError on a non-2xx answer or no answer."""
        await _post_json(self.name, self.url, event.to_json(), self.headers, self.timeout_s)


class AlertmanagerSink:
    """Posts alerts to Alertmanager's API v2, and re-posts the firing ones every minute."""

    def __init__(self, name: str, url: str, *, timeout_s: float) -> None:
        """Deliver to the Alertmanager at `url` (e.g. http://127.0.0.1:9093)."""
        self.name = name
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.timeout_s = timeout_s
        self.resend_s = ALERTMANAGER_RESEND_S

    async def send(self, event: AlertEvent) -> None:
        """Post one alert: firing, resolved (with endsAt), or a test that ends in a minute."""
        await _post_json(self.name, self.url, [alertmanager_alert(event)], {}, self.timeout_s)

    async def resend(self, firing: Sequence[AlertEvent]) -> None:
        """Post every firing alert again, so Alertmanager does not time them out."""
        if firing:
            alerts = [alertmanager_alert(event) for event in firing]
            await _post_json(self.name, self.url, alerts, {}, self.timeout_s)


def alertmanager_alert(event: AlertEvent, now: datetime | None = None) -> dict[str, Any]:
    """`event` as an alert of Alertmanager's API v2 (`postableAlert`)."""
    labels = {
        "alertname": event.alertname,
        "node": event.node,
        "check": event.check,
        "severity": event.severity,
        "cluster": event.cluster,
        "key": event.key,
    }
    alert: dict[str, Any] = {
        "labels": {k: v for k, v in labels.items() if v is not None},
        "annotations": {"summary": printable(event.summary), "description": event.body()},
        "startsAt": as_utc(event.started_at).isoformat(),
    }
    now = now or datetime.now(UTC)
    if event.kind == "resolved":
        alert["endsAt"] = as_utc(event.resolved_at or now).isoformat()
    elif event.kind == "test":
        alert["endsAt"] = (now + timedelta(seconds=TEST_ALERT_S)).isoformat()
    return alert


class CommandSink:
    """Runs a command (argv, no shell) with the event's JSON on stdin."""

    def __init__(self, name: str, argv: Sequence[str], *, timeout_s: float) -> None:
        """Run `argv` for each event; it must exit 0 within `timeout_s`."""
        if not argv:
            raise DeliveryError(f"sink {name!r}: the command is empty")
        self.name = name
        self.argv = list(argv)
        self.timeout_s = timeout_s
        # Arguments may hold tokens: messages name the program only.
        self._program = PurePath(self.argv[0]).name

    async def send(self, event: AlertEvent) -> None:
        """Run the command; raise DeliveryError on a non-zero exit, or kill it on timeout."""
        data = json.dumps(event.to_json(), allow_nan=False).encode()
        try:
            done = await subprocesses.run(self.argv, stdin=data, timeout=self.timeout_s)
        except TimeoutError:  # before OSError, of which it is a subclass
            raise DeliveryError(
                f"sink {self.name!r}: {self._program} did not finish within "
                f"{self.timeout_s:g} s and was killed"
            ) from None
        except OSError as exc:
            raise DeliveryError(
                f"sink {self.name!r}: cannot run {self._program}: {exc.strerror or exc}"
            ) from None
        if done.returncode != 0:
            lines = done.stderr.decode(errors="replace").strip().splitlines()
            last = f": {lines[-1][:QUOTE_CHARS]}" if lines else ""
            raise DeliveryError(
                f"sink {self.name!r}: {self._program} exited with {done.returncode}{last}"
            )


async def _post_json(
    name: str, url: str, payload: object, headers: Mapping[str, str], timeout_s: float
) -> None:
    """POST `payload` as JSON; raise DeliveryError, with `url` redacted, unless answered 2xx."""
    request = post_request(url, json.dumps(payload, allow_nan=False).encode(), headers)
    where = f"sink {name!r}: POST {redact(url)}"
    # What a receiver echoes back may quote the URL's secrets or the credentials it was sent.
    secrets = [*url_secrets(url), *header_secrets(dict(request.header_items()))]
    try:
        # urllib's timeout bounds each socket operation; wait_for bounds the whole exchange.
        await asyncio.wait_for(asyncio.to_thread(urlopen, request, timeout_s), timeout_s)
    except urllib.error.HTTPError as exc:
        location = exc.headers.get("Location") if exc.headers else None
        body = read_quietly(exc)
        if 300 <= exc.code < 400:
            whither = redact(urllib.parse.urljoin(request.full_url, location or ""))
            moved = f"redirect to {printable(whither)}" if location else "redirect"
            raise DeliveryError(f"{where}: HTTP {exc.code} {moved} not followed") from None
        detail = f": {printable(scrub(body, secrets))}" if body else ""
        raise DeliveryError(f"{where}: HTTP {exc.code} {exc.reason}{detail}") from None
    except TimeoutError:
        raise DeliveryError(f"{where}: no answer within {timeout_s:g} s") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise DeliveryError(f"{where}: no answer within {timeout_s:g} s") from None
        text = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
        raise DeliveryError(f"{where}: {scrub(str(text), secrets)}") from None
    except (OSError, HTTPException) as exc:
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise DeliveryError(f"{where}: {scrub(str(text), secrets)}") from None


def _quiet_apprise() -> None:
    """Keep Apprise's own log lines out of ugro's log.

    Apprise logs whole service URLs, tokens included (at DEBUG while sending, and at ERROR
    for a URL it cannot parse). ugro reports each failure itself, redacted; Apprise ≥ 2 still
    hands its warnings to ugro in each notify result, which `AppriseSink` scrubs.
    """
    logger = logging.getLogger("apprise")
    logger.propagate = False
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
