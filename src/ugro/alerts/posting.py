"""HTTP plumbing for the sinks, and keeping a sink URL's secrets out of what ugro says.

`post_request` and `urlopen` send a POST with urllib (userinfo in the URL becomes Basic
auth); `redact` renders a URL for messages and logs, and `url_secrets` with `scrub` strip a
URL's secret parts from text that third parties wrote (error bodies, Apprise's warnings).
Turning failures into `DeliveryError`s is the sinks' job (`ugro.alerts.sinks`).
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPException
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


#: The most of a command's stderr or an HTTP error body quoted in a message.
QUOTE_CHARS = 200
USER_AGENT = "ugro"
_HTTP_SCHEMES = ("http", "https")
_ELLIPSIS = "…"


def redact(url: str) -> str:
    """`url` with nothing secret left: `scheme://host[:port]/…` for HTTP, `scheme://…` else.

    Userinfo, path, query and fragment go (webhook tokens live in paths and queries). Apprise
    URLs such as `slack://TokenA/TokenB/TokenC` keep secrets even in the host position, so for
    any other scheme only the scheme is shown.
    """
    try:
        parts = urllib.parse.urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme in _HTTP_SCHEMES:
            # hostname and port, never netloc: netloc holds user:password@.
            host = parts.hostname or ""
            host = f"[{host}]" if ":" in host else host
            port = parts.port
    except ValueError:
        return _ELLIPSIS
    if not scheme:
        return _ELLIPSIS
    if scheme not in _HTTP_SCHEMES:
        return f"{scheme}://{_ELLIPSIS}"
    rest = parts.path not in ("", "/") or parts.query or parts.fragment
    return f"{scheme}://{host}" + (f":{port}" if port else "") + (f"/{_ELLIPSIS}" if rest else "")


def post_request(url: str, data: bytes, headers: Mapping[str, str]) -> urllib.request.Request:
    """A POST request; userinfo in `url` becomes Basic auth (urllib would not send it)."""
    parts = urllib.parse.urlsplit(url)
    auth: dict[str, str] = {}
    if "@" in parts.netloc:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
        auth["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        url = urllib.parse.urlunsplit(parts._replace(netloc=hostport))
    return urllib.request.Request(  # noqa: S310 - config only admits http:// and https:// URLs
        url,
        data=data,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **auth,
            **headers,
        },
    )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuses every redirect: urllib would re-send the credentials to the new place."""

    def redirect_request(  # noqa: PLR0913, PLR0917 - urllib's signature
        self,
        req: urllib.request.Request,  # noqa: ARG002 - urllib's signature
        fp: object,  # noqa: ARG002 - urllib's signature
        code: int,  # noqa: ARG002 - urllib's signature
        msg: str,  # noqa: ARG002 - urllib's signature
        headers: object,  # noqa: ARG002 - urllib's signature
        newurl: str,  # noqa: ARG002 - urllib's signature
    ) -> None:
        """None: urllib then raises the 3xx as an HTTPError, a failed delivery."""
        return


_OPENER = urllib.request.build_opener(_NoRedirect)


def urlopen(request: urllib.request.Request, timeout_s: float) -> None:
    """Send `request` and read the answer (HTTPError for 3xx, 4xx and 5xx: no redirects)."""
    with _OPENER.open(request, timeout=timeout_s) as response:
        response.read()
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(
                request.full_url, response.status, response.reason, response.headers, None
            )


def read_quietly(exc: urllib.error.HTTPError) -> str:
    """The first line of an HTTP error's body, if it can be read."""
    try:
        body = exc.read().decode(errors="replace") if exc.fp else ""
    except (OSError, HTTPException):
        body = ""
    finally:
        exc.close()
    lines = body.strip().splitlines()
    return lines[0][:QUOTE_CHARS] if lines else ""


def url_secrets(url: str) -> list[str]:
    """The parts of `url` that may be secret, for scrubbing from third-party messages."""
    parts = urllib.parse.urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    found = {url, userinfo, *userinfo.split(":")}
    if parts.scheme.lower() not in _HTTP_SCHEMES:
        found.add(hostport)
    segments = [*parts.path.split("/"), parts.fragment]
    segments += [v for _, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
    found.update(segments)
    found.update(urllib.parse.unquote(s) for s in list(found))
    # Very short pieces ("v1", "a") are not secrets, and scrubbing them mangles the text.
    return [s for s in found if len(s) >= 3]


def header_secrets(headers: Mapping[str, str]) -> list[str]:
    """The header values that may be secret ("Bearer TOKEN": the value and the token)."""
    found = set()
    for name, value in headers.items():
        if name.lower() in ("content-type", "user-agent"):
            continue
        parts = value.split()
        found.update([value, *parts[1:]] if len(parts) > 1 else parts)
    return [s for s in found if len(s) >= 3]


def scrub(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret replaced by an ellipsis, longest first."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, _ELLIPSIS)
    return text
