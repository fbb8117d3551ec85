"""Who may read the dashboard: loopback by default, a token anywhere else.

Without a token the dashboard answers only on a loopback address, and only to requests
whose Host is a loopback name: a web page elsewhere cannot read it through DNS rebinding.
With `exporter.token`, every request must carry it: as `Authorization: Bearer TOKEN` (scripts),
or as the cookie a browser receives after opening any page once with `?token=TOKEN`.
/metrics is not the dashboard's: Prometheus scrapes it as before (docs/dashboard.md).
"""

from __future__ import annotations

import hmac
import ipaddress
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from ugro.httpserver import Response

if TYPE_CHECKING:
    from ugro.httpserver import Request

COOKIE = "ugro_token"
# Host names that reach only this machine; an IP literal is judged by its address.
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(address: str) -> bool:
    """Whether `address` (an IP address) is reachable from this machine only."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.is_loopback


def refusal(address: str, token: str | None) -> str | None:
    """Why the dashboard must not be served on `address`, or None when it may be."""
    if token is None and not is_loopback(address):
        return (
            f"the dashboard is not served on {address}: that address is reachable from other "
            "machines, and exporter.token is not set; set exporter.token (16+ characters) to "
            "serve it there, or exporter.address: 127.0.0.1 to keep it on this machine"
        )
    return None


class Gate:
    """Admits a request, or answers it: 401 without the token, 403 for a foreign Host."""

    def __init__(self, token: str | None) -> None:
        """Ask for `token` when there is one; else admit loopback Hosts only."""
        self._token = token

    def answer(self, request: Request) -> Response | None:
        """None when `request` may be served; otherwise the answer that refuses or logs it in."""
        if self._token is None:
            if _loopback_host(request.headers.get("host", "")):
                return None
            return _refuse(HTTPStatus.FORBIDDEN, "403 this dashboard answers on localhost only\n")
        offered = request.query.get("token")
        if offered is not None:
            if not self._matches(offered):
                return _refuse(HTTPStatus.UNAUTHORIZED, "401 wrong token\n")
            # Into a cookie, and out of the address bar and the browser's history.
            cookie = f"{COOKIE}={quote(offered, safe='')}; Path=/; HttpOnly; SameSite=Strict"
            return Response(
                HTTPStatus.SEE_OTHER,
                b"",
                headers=(("Location", quote(request.path)), ("Set-Cookie", cookie)),
            )
        if self._matches(_bearer(request) or _cookie(request) or ""):
            return None
        return _refuse(
            HTTPStatus.UNAUTHORIZED,
            "401 this dashboard asks for its token: open it once with ?token=TOKEN, "
            "or send Authorization: Bearer TOKEN\n",
        )

    def _matches(self, offered: str) -> bool:
        assert self._token is not None  # noqa: S101 - only called with a token set
        return hmac.compare_digest(offered.encode(), self._token.encode())


def _refuse(status: HTTPStatus, text: str) -> Response:
    return Response(status, text.encode())


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _cookie(request: Request) -> str | None:
    for part in request.headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return unquote(value)
    return None


def _loopback_host(host: str) -> bool:
    """Whether a Host header (name or address, with or without a port) is this machine."""
    if host.startswith("["):
        return is_loopback(host[1:].partition("]")[0])
    name = host.rpartition(":")[0] if host.count(":") == 1 else host
    return name.lower() in _LOOPBACK_NAMES or is_loopback(name)
