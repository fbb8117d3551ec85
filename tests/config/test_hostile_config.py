"""Hostile cluster.yaml files: each fails fast with a file:line ConfigError, never anything else."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ugro import config
from ugro.cli import main
from ugro.config import document
from ugro.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

ONE = "workers:\n  - name: gpu1\n    ip: 10.0.0.1\n"
LAUGHS = "".join(
    f"{level}: &{level} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, level in zip(["", *"abcdefgh"], "abcdefghi", strict=False)
)
SECRET = "TOKENA/TOKENB/TOKENC"  # noqa: S105 - a stand-in whose echo the tests look for


def sink(*lines: str) -> str:
    """ONE with an alerts section holding one sink of the given lines (6-space indented)."""
    body = "".join(f"      {line}\n" for line in lines)
    return ONE + "alerts:\n  sinks:\n    - name: s\n" + body


@dataclass(frozen=True)
class Hostile:
    """A hostile file, the line its error must name and a phrase the error must contain."""

    text: str
    line: int
    phrase: str
    absent: list[str] = field(default_factory=list)


HOSTILE = {
    "repeat-interval-inf": Hostile(ONE + "alerts:\n  repeat_interval_s: .inf\n", 5, "finite"),
    "repeat-interval-huge": Hostile(
        ONE + "alerts:\n  repeat_interval_s: 1.0e+15\n", 5, "less than or equal"
    ),
    "nan": Hostile(ONE + "min_disk_gb: .nan\n", 4, "finite"),
    "flap-changes-huge": Hostile(ONE + "alerts:\n  flap_changes: 1000000000\n", 5, "less than"),
    "billion-laughs": Hostile(LAUGHS + ONE, 1, "more than"),
    "recursive-alias": Hostile("a: &a [*a]\n" + ONE, 1, "nested deeper"),
    "deep-alias": Hostile(
        "a: &a " + "[" * 60 + "]" * 60 + "\nb: &b [[[[[[*a]]]]]]\n" + ONE, 1, "nested deeper"
    ),
    "nested-brackets": Hostile("[" * 5000, 1, "nested deeper"),
    "nested-mappings": Hostile("{a: " * 5000, 1, "nested deeper"),
    "name-is-a-list": Hostile("workers:\n  - name: [a, b]\n    ip: 10.0.0.1\n", 2, "string"),
    "name-ends-in-newline": Hostile(
        "workers:\n  - name: |\n      gpu1\n    ip: 10.0.0.1\n", 2, "expected letters"
    ),
    "ip-ends-in-newline": Hostile(
        'workers:\n  - name: gpu1\n    ip: "10.0.0.1\\n"\n', 3, "IPv4/IPv6"
    ),
    "hostname-ends-in-newline": Hostile(
        'workers:\n  - name: gpu1\n    ip: "node1\\n"\n', 3, "IPv4/IPv6"
    ),
    "slurm-node-ends-in-newline": Hostile(ONE + '    slurm_node: "n1\\n"\n', 4, "Slurm node"),
    "master-ends-in-newline": Hostile(ONE + 'master: {addr: "m1\\n"}\n', 4, "IPv4/IPv6"),
    "duplicate-address": Hostile(ONE + "  - name: gpu2\n    ip: 10.0.0.1\n", 5, "also worker"),
    "duplicate-address-spelt-differently": Hostile(
        "workers:\n  - {name: a, ip: Node1.example}\n  - {name: b, ip: node1.example.}\n",
        3,
        "also worker",
    ),
    "duplicate-ipv6": Hostile(
        "workers:\n  - {name: a, ip: 'fe80::1'}\n  - {name: b, ip: 'fe80:0::0:1'}\n",
        3,
        "also worker",
    ),
    "duplicate-disk-path": Hostile(ONE + "    disk_paths: [/data, /data/]\n", 4, "twice"),
    "empty-user": Hostile(ONE + "    user: ''\n", 4, "at least 1"),
    "empty-gpu": Hostile(ONE + "    gpu: ''\n", 4, "at least 1"),
    "empty-sink-url": Hostile(sink("type: apprise", "urls: ['']"), 8, "at least 1"),
    "secret-in-mistyped-urls": Hostile(
        sink("type: apprise", f"urls: slack://{SECRET}"), 8, "valid list", [SECRET]
    ),
    "secret-in-mistyped-url": Hostile(
        sink("type: webhook", f"url: {{u: 1}}\n      headers: [Bearer {SECRET}]"),
        8,
        "sinks[0]",
        [SECRET],
    ),
    "secret-in-mistyped-header": Hostile(
        sink("type: webhook", "url: https://x", f"headers: {{Authorization: [{SECRET}]}}"),
        9,
        "string",
        [SECRET],
    ),
    "secret-in-mistyped-command": Hostile(
        sink("type: command", f"command: notify --token={SECRET}"), 8, "valid list", [SECRET]
    ),
    "header-value-ends-in-newline": Hostile(
        sink("type: webhook", "url: https://x", "headers:", "  Authorization: |", f"    {SECRET}"),
        9,
        "line break",
        [SECRET],
    ),
    "header-value-carriage-return": Hostile(
        sink("type: webhook", "url: https://x", f'headers: {{X-Token: "a\\r\\nX-Evil: {SECRET}"}}'),
        9,
        "line break",
        [SECRET],
    ),
    "key-with-a-line-break": Hostile(ONE + '"a\\nb": 1\n', 4, "['a\\nb']: unknown key"),
    "header-name-not-a-token": Hostile(
        sink("type: webhook", "url: https://x", "headers: {'X Bad': v}"), 9, "header name"
    ),
    "url-ends-in-newline": Hostile(
        sink("type: webhook", f'url: "https://x/{SECRET}\\n"'), 8, "line break", [SECRET]
    ),
}


@pytest.mark.parametrize("case", HOSTILE.values(), ids=HOSTILE)
def test_hostile_config_is_a_clear_error(case: Hostile) -> None:
    """Each reproduction fails within a second, on its line, saying what is wrong, no secret."""
    start = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        config.parse_text(case.text, "cluster.yaml")
    assert time.monotonic() - start < 1
    message = str(raised.value)
    assert message.startswith(f"cluster.yaml:{case.line}:"), message
    assert case.phrase in message, message
    for secret in case.absent:
        assert secret not in message


@pytest.mark.parametrize("name", [n for n, c in HOSTILE.items() if c.absent])
def test_config_validate_never_echoes_secrets(name: str, tmp_path: Path) -> None:
    """`ugro config validate` exits 1 on a mistyped secret and prints no part of it."""
    path = tmp_path / "cluster.yaml"
    path.write_text(HOSTILE[name].text, encoding="utf-8")
    result = CliRunner().invoke(main, ["config", "validate", str(path)])
    assert result.exit_code == 1, result.output
    assert f"{path}:" in result.stderr
    assert SECRET not in result.output
    assert SECRET not in result.stderr


def test_large_honest_config_still_loads() -> None:
    """The bounds leave room: two thousand workers sharing timeouts through an alias load."""
    first = "  - {name: n0, ip: 10.0.0.1, timeouts: &t {torch: 60, gpu: 20}}\n"
    rest = "".join(
        f"  - {{name: n{i}, ip: 10.0.{i // 250}.{i % 250 + 1}, timeouts: *t}}\n"
        for i in range(1, 2000)
    )
    nodes = config.parse_text("workers:\n" + first + rest, "cluster.yaml").nodes()
    assert len(nodes) == 2000
    assert {n.timeouts.torch for n in nodes} == {60}


# --- fuzzing --------------------------------------------------------------------------------

# Values a mistyped or hostile key might hold.
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [
        *config.ClusterConfig.model_fields,
        *config.Worker.model_fields,
        "monitor",
        "alerts",
        "bogus",
    ]
)


@dataclass
class Tally:
    """Hostile configs tried and those that raised anything but ConfigError."""

    tried: int = 0
    misbehaved: list[str] = field(default_factory=list)


TALLY = Tally()


def _try(text: str) -> None:
    """Parse `text`, counting it, and record anything other than success or ConfigError."""
    TALLY.tried += 1
    try:
        config.parse_text(text, "fuzz.yaml")
    except ConfigError as exc:
        # Every line names the file, and every problem but an empty file a line.
        if not all(re.match(r"fuzz\.yaml(:\d+){0,2}: ", line) for line in str(exc).splitlines()):
            TALLY.misbehaved.append(f"no file:line in {exc} for {text!r}")
    except Exception as exc:  # noqa: BLE001 - anything else is the bug being looked for
        TALLY.misbehaved.append(f"{type(exc).__name__}: {exc} for {text!r}")
    assert not TALLY.misbehaved, TALLY.misbehaved


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=KEYS, value=VALUES, per_worker=st.booleans())
def test_fuzzed_values_are_config_errors_or_load(key: str, value: object, per_worker: bool) -> None:
    """Any value under any key, top level or per worker: success or ConfigError, nothing else."""
    worker: dict[str, object] = {"name": "gpu1", "ip": "10.0.0.1"}
    doc: dict[str, object] = {"workers": [worker]}
    (worker if per_worker else doc)[key] = value
    _try(yaml.safe_dump(doc))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.sampled_from(list("[]{}&*:-,|>'\"!#\n  abn01.%@")), max_size=200))
def test_fuzzed_yaml_text_is_a_config_error_or_loads(text: str) -> None:
    """Arbitrary YAML-ish text (anchors, aliases, flow and block syntax): ConfigError or success."""
    _try(ONE + text)
    _try(text)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=VALUES)
def test_fuzzed_config_validate_exits_cleanly(
    value: object, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`ugro config validate` on a fuzzed sink: exit 0 or 1 with a file:line message, never 2+."""
    doc = {
        "workers": [{"name": "gpu1", "ip": "10.0.0.1"}],
        "alerts": {
            "sinks": [{"name": "s", "type": "webhook", "url": "https://x", "headers": value}]
        },
    }
    path = tmp_path_factory.mktemp("fuzz") / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = CliRunner().invoke(main, ["config", "validate", str(path)])
    TALLY.tried += 1
    assert result.exit_code in {0, 1}, result.output
    assert "internal error" not in result.output + result.stderr


def test_bounds_are_what_the_messages_say() -> None:
    """The documented limits are the ones enforced."""
    assert (document.MAX_DEPTH, document.MAX_VALUES) == (64, 200_000)


def test_local_workers_may_share_an_address() -> None:
    """Workers with `transport: local` are never dialled, so their addresses may repeat."""
    text = (
        "workers:\n"
        "  - {name: a, ip: localhost, transport: local}\n"
        "  - {name: b, ip: localhost, transport: local}\n"
    )
    assert [n.name for n in config.parse_text(text, "cluster.yaml").nodes()] == ["a", "b"]
