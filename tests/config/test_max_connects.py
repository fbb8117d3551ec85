"""`monitor.max_connects`: the fan-out of SSH connects, its default and what it refuses."""

from __future__ import annotations

import pytest

from ugro.config import parse_text
from ugro.config.settings import DEFAULT_MAX_CONNECTS
from ugro.errors import ConfigError

WORKERS = "workers:\n  - {name: gpu1, ip: 10.0.0.1}\n"


def test_default_is_in_line_with_pdsh_and_clush() -> None:
    """Without the key, 32 connects run at once: pdsh's fan-out (clush's is 64)."""
    assert parse_text(WORKERS, "cluster.yaml").monitor.max_connects == DEFAULT_MAX_CONNECTS == 32


def test_a_value_is_taken() -> None:
    """An operator's bound replaces the default."""
    cfg = parse_text(f"monitor:\n  max_connects: 64\n{WORKERS}", "cluster.yaml")
    assert cfg.monitor.max_connects == 64


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "greater than or equal to 1"),
        ("-5", "greater than or equal to 1"),
        ("100000", "less than or equal to 1024"),
        ("1e9", "valid integer"),
        ("2.5", "valid integer"),
        ("true", "valid integer"),
        ("lots", "valid integer"),
        (".nan", "valid integer"),
        ("'<b>\\x1b[31m32</b>'", "valid integer"),
    ],
)
def test_a_bad_value_names_the_line_and_what_was_expected(value: str, expected: str) -> None:
    """Zero, negative, huge, fractional, boolean, text, NaN or markup: a clear error at load."""
    with pytest.raises(ConfigError) as caught:
        parse_text(f"monitor:\n  max_connects: {value}\n{WORKERS}", "cluster.yaml")
    message = str(caught.value)
    assert "cluster.yaml:2: monitor.max_connects: " in message, message
    assert expected in message, message
    assert "\x1b" not in message
