"""Readings from a node (ugro.checks.readings): plausible numbers and names, or InvalidOutput."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ugro.checks import readings
from ugro.checks.readings import CELSIUS, COUNT, CUDA_DEVICES, Range, name, number, version, whole
from ugro.errors import InvalidOutput, UgroError


def test_plain_readings_pass() -> None:
    """Text as nvidia-smi prints it, and numbers from a probe's JSON, are read as they are."""
    assert number("41", "temperature.gpu", CELSIUS) == 41.0
    assert number(" 31.25 ", "power.draw", readings.WATTS) == 31.25
    assert number(-40, "temperature.gpu", CELSIUS) == -40.0
    assert whole("2", "devices", CUDA_DEVICES) == 2
    assert whole(2, "devices", CUDA_DEVICES) == 2
    assert whole("0x0000000000000004", "mask", readings.BITMASK, base=16) == 4


@pytest.mark.parametrize(
    "value",
    ["nan", "NaN", "inf", "-Infinity", "1e400", "-500", "151", "9" * 400, "", "forty", True],
)
def test_implausible_temperatures_are_refused_naming_field_and_value(value: object) -> None:
    """nan, infinities, -500 °C, 400 digits, words: InvalidOutput, a UgroError and a ValueError."""
    with pytest.raises(InvalidOutput, match=r"^temperature\.gpu of GPU 0 is ") as caught:
        number(value, "temperature.gpu of GPU 0", CELSIUS)
    assert isinstance(caught.value, UgroError)
    assert isinstance(caught.value, ValueError)
    assert "-40 to 150 °C" in str(caught.value)


def test_a_refused_value_is_shown_shortened() -> None:
    """A megabyte-long value is quoted in 40 characters, not whole."""
    with pytest.raises(InvalidOutput) as caught:
        number("7" * 1_000_000, "free space", readings.BYTES)
    assert len(str(caught.value)) < 120


@pytest.mark.parametrize(
    "value", [10**20, 2**53 + 1, -1, "1.5", 1.0, "٣", "1" * 41, None, [1], {"a": 1}]
)
def test_counts_must_be_whole_and_in_range(value: object) -> None:
    """10^20, negatives, fractions, floats, non-ASCII digits, JSON lists: refused."""
    with pytest.raises(InvalidOutput):
        whole(value, "a count", COUNT)


def test_names_longer_than_any_are_refused() -> None:
    """A GPU name longer than NVML's buffer is not a name."""
    assert name("NVIDIA H100 80GB HBM3", "name", 96) == "NVIDIA H100 80GB HBM3"
    with pytest.raises(InvalidOutput, match="longer than any"):
        name("X" * 97, "name", 96)


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("550.54.15", "550.54.15"),
        ("2.4.1+cu124", "2.4.1+cu124"),
        ("2.5.0a0+git9a1b2c3", "2.5.0a0+git9a1b2c3"),
        (2708, "2708"),
        ("2.4 (custom)", None),
        ("\x1b[31m2.4", None),
        ("1" * 65, None),
        (True, None),
        (None, None),
        ([2, 4], None),
    ],
)
def test_versions_are_kept_only_when_spelled_as_one(value: object, kept: str | None) -> None:
    """Versions as software spells them are kept; anything else is left out, not stored."""
    assert version(value) == kept


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=60),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(10**400), max_value=10**400),
        st.booleans(),
        st.none(),
    )
)
def test_a_reading_is_plausible_or_refused(value: object) -> None:
    """Whatever a node sends, a reading is finite and in range, or InvalidOutput: nothing else."""
    allowed = Range(-40, 150, "°C")
    try:
        got = number(value, "field", allowed)
    except InvalidOutput:
        return
    assert math.isfinite(got)
    assert allowed.lo <= got <= allowed.hi


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), st.integers(), st.floats(), st.none()))
def test_a_count_is_plausible_or_refused(value: object) -> None:
    """Whatever a node sends, a count is an int in range, or InvalidOutput: nothing else."""
    try:
        got = whole(value, "field", COUNT)
    except InvalidOutput:
        return
    assert isinstance(got, int)
    assert COUNT.lo <= got <= COUNT.hi
