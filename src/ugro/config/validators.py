"""The checks cluster.yaml's values share: names, addresses, commands, paths and headers.

Each raises ValueError with what was expected; pydantic turns that into a message the loader
places at the value's line. Patterns match the whole value (`fullmatch`): `$` would also
match before a final newline, and `name: |` ends in one.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import shlex

# A node, action or Slurm node name.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
_DOTTED = re.compile(r"[0-9.]+")
# An HTTP header name: RFC 9110's token.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# C0 controls and DEL: line breaks in a header split the request, and none belong in a URL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def valid_name(value: str) -> bool:
    """Whether `value` is a node, action or Slurm node name."""
    return NAME.fullmatch(value) is not None


def address(value: str) -> str:
    """`value` when it is an IP address or a hostname."""
    try:
        ipaddress.ip_address(value)
    except ValueError as exc:
        if _DOTTED.fullmatch(value) or not _HOSTNAME.fullmatch(value):
            raise ValueError(f"expected an IPv4/IPv6 address or a hostname, got {value!r}") from exc
    return value


def address_key(value: str) -> str:
    """The form of an address two spellings of the same node share (case, IPv6 zeros, final dot)."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value.lower().rstrip(".")


def unique(names: list[str], what: str) -> None:
    """Raise when two of `names` are the same."""
    if len(set(names)) != len(names):
        raise ValueError(f"{what} names must be unique")


def command(value: str, if_empty: str) -> str:
    """`value` when it splits like a shell command line into at least one word."""
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"cannot split into a command: {exc}") from exc
    if not argv:
        raise ValueError(if_empty)
    return value


def disk_paths(value: list[str]) -> list[str]:
    """`value` when every path is absolute and none is given twice (`/data` and `/data/` too)."""
    seen: set[str] = set()
    for path in value:
        if not path.startswith("/"):
            raise ValueError(f"expected absolute paths, got {path!r}")
        if _CONTROL.search(path):
            raise ValueError(f"a path has a control character or line break: {path!r}")
        key = posixpath.normpath(path)
        if key in seen:
            raise ValueError(f"lists {path!r} twice")
        seen.add(key)
    return value


def headers(value: dict[str, str]) -> dict[str, str]:
    """`value` when every name is an HTTP token and no value has a line break.

    Values are secrets (tokens, passwords): messages name the header, never its value.
    """
    for name, text in value.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP header name")
        if _CONTROL.search(text):
            raise ValueError(
                f"the value of header {name!r} has a line break or control character "
                "(a YAML `|` block ends in a newline: use `|-` or a plain string)"
            )
    return value


def no_control(value: str) -> str:
    """`value` when it has no line break or control character; the value is not echoed."""
    if _CONTROL.search(value):
        raise ValueError("has a line break or control character")
    return value
