"""The Python 3.8 check the probe tests rely on: it finds what 3.8 cannot run, and only that."""

from __future__ import annotations

import re

import pytest

import python38


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("match x:\n    case 1:\n        pass\n", "Pattern matching"),
        ("with (open('a') as f, open('b') as g):\n    pass\n", "Parenthesized context"),
        ("try:\n    pass\nexcept* OSError:\n    pass\n", "Exception groups"),
        ("'ab'.removeprefix('a')\n", "str.removeprefix (3.9)"),
        ("(5).bit_count()\n", "int.bit_count (3.10)"),
        ("import zoneinfo\n", "zoneinfo (3.9)"),
        ("from tomllib import loads\n", "tomllib (3.11)"),
        ("anext(it)\n", "anext (3.10)"),
        ("list(zip(a, b, strict=True))\n", "zip(strict=...) (3.10)"),
        ("x = list[int]()\n", "list[...] at run time (3.9)"),
        ("@buttons[0].clicked\ndef f():\n    pass\n", "a decorator that is not a dotted name"),
        ("a[1:2, *b]\n", "a starred index (3.11)"),
    ],
)
def test_newer_python_is_found(source: str, said: str) -> None:
    """Grammar, methods, modules and builtins newer than 3.8 are each named, with their line."""
    found = python38.problems(source)
    assert len(found) == 1, found
    assert re.match(r"line \d+: ", found[0]), found
    assert said in found[0]


def test_python_38_passes() -> None:
    """What 3.8 runs passes: walrus, f'{x=}', positional-only, annotations, dotted decorators."""
    source = (
        "import functools, json\n"
        "def f(a, /, b: list[int], *, c=1) -> dict[str, int]:\n"
        "    return {'n': (n := len(b))}\n"
        "@functools.lru_cache(maxsize=None)\n"
        "def g(x):\n"
        "    return f'{x=}', x[1:2], [*x, *x], 'a'.startswith('b')\n"
    )
    assert python38.problems(source) == []
