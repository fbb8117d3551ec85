"""How a verdict command shows its result: `--format table|wide|json|nagios`.

`-o` is `--format` (`-o wide`, as kubectl says it); `--wide` and `--json` stay as the short
ways to ask for those two. The command receives one `output` value, whichever was used.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ugro.cli.app import NoVerdictUsageError

if TYPE_CHECKING:
    from collections.abc import Callable

F = TypeVar("F", bound="Callable[..., Any]")

#: Every format, the default first.
FORMATS = ("table", "wide", "json", "nagios")


def output_options(command: F) -> F:
    """Add `--format/-o`, `--wide` and `--json` to `command`, passed on as `output`."""

    @click.option(
        "--format",
        "-o",
        "fmt",
        type=click.Choice(FORMATS),
        help=(
            "table: one line per node [default]; wide: every problem of every node; "
            "json: a document for programs; nagios: one plugin status line with perfdata."
        ),
    )
    @click.option("--wide", is_flag=True, help="Same as --format wide.")
    @click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
    @functools.wraps(command)
    def wrapper(*args: Any, fmt: str | None, wide: bool, as_json: bool, **kwargs: Any) -> Any:  # noqa: ANN401 - passes click's values through
        asked = {f for f, given in (("wide", wide), ("json", as_json), (fmt or "", fmt)) if given}
        if len(asked) > 1:
            # Raised once the arguments are parsed: exit 3 by hand, as VerdictCommand would.
            why = f"choose one output format, not {' and '.join(sorted(asked))}"
            raise NoVerdictUsageError(why, click.get_current_context())
        return command(*args, output=asked.pop() if asked else "table", **kwargs)

    return wrapper  # type: ignore[return-value]
