"""The hostile-input corpus: whatever one node prints, ugro stays up, bounded and truthful.

For each remote command, Hypothesis generates what a broken or hostile node could answer:
random bytes and text, floods the transport cut, single lines a megabyte long (against
backtracking regexes), impossible numbers (nan, infinities, -500, 10^20, hundreds of
digits) where a check reads one, wrong field counts, JSON nested deep or of the wrong
shape, markup and terminal escapes, odd exit codes. Node n2 answers one command so, the
others stay healthy. Each answer goes through the real path: the checks' parsers, the sweep,
scoring, hysteresis and the alert engine, the state file, the history, the Prometheus
exporter and the CLI's views.

Asserted for every answer: nothing raises; the other nodes' verdicts do not change; n2 is
never healthy on invalid data; messages, names and the whole verdict stay bounded; every
JSON document (state file, `--json`, alert payloads) is strict and every number finite.
That no ESC byte reaches a terminal or a log is the text sanitiser's to assert.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from hostilenodes import (
    HEALTHY,
    KINDS,
    NODES,
    VICTIM,
    HostileTransport,
    number_sites,
    with_number,
    write_config,
)
from ugro import config, exporter, paths, sweep
from ugro.alerts.engine import AlertEngine
from ugro.checks.readings import MAX_GPUS
from ugro.cli import main
from ugro.daemon import logs
from ugro.model import CommandResult, NodeStatus, NodeVerdict
from ugro.store.history import History
from ugro.store.history_records import Sample
from ugro.store.state import StateStore
from ugro.subprocesses import STDERR_LIMIT, STDOUT_LIMIT
from ugro.sweep import MAX_MESSAGE_CHARS, Transports
from ugro.text import LineFormatter
from ugro.verdict import hysteresis

if TYPE_CHECKING:
    from pathlib import Path

#: How large one node's verdict may be in JSON, whatever it printed: 14 checks of at most
#: MAX_MESSAGE_CHARS, 256 GPUs' readings, and room to spare.
MAX_VERDICT_BYTES = 256 * 1024
#: Longest name a node may have ugro keep (a GPU model, a UUID, a mount point).
MAX_NAME_CHARS = 4096

# --- what a hostile node says ------------------------------------------------------------

#: Numbers no reading can be, in any field: outside every range, or not finite.
IMPOSSIBLE = (
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "-500",
    "1e20",
    "100000000000000000000",
    "9" * 310,
    "1" * 400,
)
#: Short patterns that, repeated over a megabyte-long line, make a backtracking regex hang.
PATTERNS = (" ", "1 ", "9", "NVRM: Xid (", "@@ugro-path /", "[", ", ", "a 1 ", "\t1", "0x")
#: Markup and terminal control: data to ugro, never an instruction (sanitised elsewhere).
MARKUP = ("\x1b[31m", "\x1b]8;;http://x\x07", "[bold red]", "<script>", "\r", "\x00", "%s{}")


class Lie:
    """One hostile answer: the command it replaces, and whether its data is invalid.

    `invalid` answers must never leave the node healthy; the others (markup in a name, an
    odd exit code with good output) only must not break anything. Not a dataclass, so that
    Hypothesis shows a failing example by `__repr__`, not field by field.
    """

    def __init__(self, kind: str, result: CommandResult, *, invalid: bool, how: str) -> None:
        """The answer `result` to the command of `kind`."""
        self.kind, self.result, self.invalid, self.how = kind, result, invalid, how

    def __repr__(self) -> str:
        """The lie in a line: a failing example's answer may be a megabyte long."""
        r = self.result
        said = f"{r.stdout[:300]!r}… ({len(r.stdout)} chars)"
        return (
            f"Lie({self.kind}, {self.how}, invalid={self.invalid}, exit={r.exit_status}, "
            f"truncated={r.truncated}, stdout={said})"
        )


def _text(draw: st.DrawFn) -> str:
    """Random text with at least one visible character: never a legitimately empty answer."""
    chars = draw(st.text(min_size=0, max_size=400))
    binary = draw(st.binary(max_size=400)).decode(errors="replace")
    return draw(st.sampled_from([chars, binary, chars + binary])) + "\x01garbage"


@st.composite
def lies(draw: st.DrawFn) -> Lie:  # noqa: PLR0911 - one return per kind of attack
    """A hostile answer to one of the remote commands."""
    kind = draw(st.sampled_from(KINDS))
    attack = draw(
        st.sampled_from(
            ["garbage", "flood", "long line", "number", "fields", "markup", "json", "exit"]
        )
    )
    healthy = HEALTHY[kind]
    if attack == "garbage":
        return Lie(kind, CommandResult(0, _text(draw)), invalid=True, how=attack)
    if attack == "flood":
        line = draw(st.sampled_from([*healthy.splitlines(), "x" * 80]))
        text = (line + "\n") * (STDOUT_LIMIT // (len(line) + 1) + 1)
        stream = draw(st.sampled_from(["stdout", "stderr"]))
        result = (
            CommandResult(None, text[:STDOUT_LIMIT], truncated=True)
            if stream == "stdout"
            else CommandResult(None, healthy, text[:STDERR_LIMIT], truncated=True)
        )
        return Lie(kind, result, invalid=True, how=f"{attack} of {stream}")
    if attack == "long line":
        pattern = draw(st.sampled_from(PATTERNS))
        line = pattern * (STDOUT_LIMIT // 2 // len(pattern))
        at = draw(st.sampled_from(["instead", "after"]))
        text = line if at == "instead" else healthy + line
        # After a healthy answer, a line of noise may be what a parser rightly ignores; and
        # a line of blanks is an empty answer, which some commands rightly give.
        invalid = at == "instead" and bool(pattern.strip())
        return Lie(kind, CommandResult(0, text), invalid=invalid, how=f"{pattern!r} line")
    if (attack == "number" and kind != "ps") or (attack == "number" and draw(st.booleans())):
        site = draw(st.integers(0, number_sites(kind) - 1))
        number = draw(st.sampled_from(IMPOSSIBLE))
        text = with_number(kind, site, number)
        return Lie(kind, CommandResult(0, text), invalid=True, how=f"{number[:12]} at {site}")
    if attack == "fields":
        lines = healthy.splitlines()
        row = draw(st.integers(0, len(lines) - 1))
        cut = draw(st.sampled_from(["drop", "add", "halve"]))
        if cut == "drop":
            lines[row] = lines[row].rsplit(",", 1)[0].rsplit(" ", 1)[0]
        elif cut == "add":
            lines[row] += ", 1, extra"
        else:
            lines[row] = lines[row][: len(lines[row]) // 2]
        # A line cut short may still be one a parser reads (a df line that lost its mount
        # point's tail): only broken, not necessarily invalid.
        return Lie(kind, CommandResult(0, "\n".join(lines) + "\n"), invalid=False, how=cut)
    if attack == "markup":
        mark = draw(st.sampled_from(MARKUP))
        text = healthy.replace("NVIDIA", mark + "NVIDIA").replace("python", mark + "python")
        return Lie(kind, CommandResult(0, text), invalid=False, how=f"markup {mark!r}")
    if attack == "json":
        marker = healthy.split("{", 1)[0] if "{" in healthy else healthy.splitlines()[0] + " "
        depth = draw(st.sampled_from([10, 900, 100_000]))
        shape = draw(st.sampled_from(["[", '{"gpus": ', '{"devices": ', '{"ms": ', '"']))
        body = shape * depth + "1" + draw(st.sampled_from(["", "]" * depth, "}" * depth]))
        return Lie(kind, CommandResult(0, marker + body + "\n"), invalid=True, how=f"json {depth}")
    status = draw(st.sampled_from([None, -1, 1, 126, 127, 255, 2**31, -(2**31)]))
    signal = draw(st.sampled_from([None, "KILL", "SEGV", "\x1b[31mTERM"]))
    return Lie(kind, CommandResult(status, healthy, "", signal), invalid=False, how="exit")


# --- the real path ----------------------------------------------------------------------


def strict(text: str) -> Any:
    """`text` as strict JSON: NaN and Infinity are refused."""

    def refuse(constant: str) -> object:
        raise AssertionError(f"{constant} in JSON output")

    return json.loads(text, parse_constant=refuse)


def finite(document: object) -> None:
    """Every number in a parsed JSON document is finite."""
    if isinstance(document, dict):
        for value in document.values():
            finite(value)
    elif isinstance(document, list):
        for value in document:
            finite(value)
    elif isinstance(document, float):
        assert math.isfinite(document)


def assert_bounded(verdict: NodeVerdict) -> None:
    """Messages, names and the whole verdict of a node stay within their bounds."""
    assert all(len(c.message) <= MAX_MESSAGE_CHARS for c in verdict.checks)
    assert all(len(a.text) <= MAX_MESSAGE_CHARS + 200 for a in verdict.alerts)
    assert len(verdict.gpus) <= MAX_GPUS
    names = [*(g.name for g in verdict.gpus), *(g.uuid for g in verdict.gpus)]
    names += [d.mount for d in verdict.disks]
    names += list(verdict.versions.values())
    assert all(len(n) <= MAX_NAME_CHARS for n in names)
    document = json.dumps(verdict.to_json(), allow_nan=False)
    assert len(document.encode()) <= MAX_VERDICT_BYTES
    finite(json.loads(document))


def outcomes(verdict: NodeVerdict) -> tuple[object, ...]:
    """What a verdict says, without its times: status, score, each check's result."""
    checks = tuple((c.name, c.status, c.message, c.value) for c in verdict.checks)
    return verdict.status, verdict.health_score, checks


class World:
    """The corpus's cluster: its config file and settings, and its verdicts when nobody lies."""

    def __init__(self, path: Path) -> None:
        """The cluster of NODES configured at `path`; `baseline` is filled in by the fixture."""
        self.path = path
        self.cfg = config.load(path)
        self.baseline: dict[str, NodeVerdict] = {}
        # The daemon's alert engine, which remembers what every example raised, as it would.
        self.engine = AlertEngine(self.cfg.alerts)

    def __repr__(self) -> str:
        """Short, for a failing example."""
        return f"World({self.path})"

    def sweep(self, lie: Lie | None) -> dict[str, NodeVerdict]:
        """One sweep of NODES in-process, n2 answering `lie`."""
        transport = HostileTransport({lie.kind: lie.result} if lie else {})

        async def main() -> list[NodeVerdict]:
            return await sweep.sweep(self.cfg.nodes, Transports(ssh=transport, local=transport))

        return {v.name: v for v in asyncio.run(main())}

    def assert_truthful(
        self, lie: Lie, verdicts: dict[str, NodeVerdict], *, first: bool = True
    ) -> None:
        """The others are as before; n2 is bounded, and not healthy on invalid data.

        `first`: the sweep is each node's first, as the baseline's was, so the others say
        exactly what they said then; later, the xid check's window (its message) moves.
        """
        assert list(verdicts) == list(NODES)
        for name in NODES:
            assert_bounded(verdicts[name])
            if name == VICTIM:
                continue
            if first:
                assert outcomes(verdicts[name]) == outcomes(self.baseline[name])
            assert [c.status for c in verdicts[name].checks] == [
                c.status for c in self.baseline[name].checks
            ]
            assert verdicts[name].status is NodeStatus.HEALTHY
        if lie.invalid:
            victim = verdicts[VICTIM]
            assert victim.status is not NodeStatus.HEALTHY, [
                (c.name, c.status.label, c.message[:200]) for c in victim.checks
            ]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The corpus's cluster, and a sweep of it where nobody lies."""
    world = World(write_config(tmp_path_factory.mktemp("hostile") / "cluster.yaml"))
    world.baseline = world.sweep(None)
    return world


def test_nobody_lying_everybody_is_healthy(world: World) -> None:
    """The corpus's baseline: with every answer captured from a healthy node, all are healthy."""
    for verdict in world.baseline.values():
        assert verdict.status is NodeStatus.HEALTHY, [
            (c.name, c.message) for c in verdict.checks if c.status.label != "ok"
        ]


@settings(max_examples=200, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
@given(lie=lies())
def test_one_lying_node_cannot_break_or_fool_a_sweep(world: World, lie: Lie) -> None:
    """Parse, evaluate, score: nothing raises, others unchanged, n2 bounded and never fooled."""
    world.assert_truthful(lie, world.sweep(lie))


@pytest.mark.parametrize("number", ["nan", "-500", "9" * 310])
@pytest.mark.parametrize(
    ("kind", "site"), [(k, site) for k in KINDS for site in range(number_sites(k))]
)
def test_every_number_a_check_reads_is_validated(
    world: World, kind: str, site: int, number: str
) -> None:
    """Each place a check reads a number, made impossible: the node is not healthy, no crash."""
    lie = Lie(kind, CommandResult(0, with_number(kind, site, number)), invalid=True, how=number)
    world.assert_truthful(lie, world.sweep(lie))


ESC = "\x1b"


class Lines(logging.Handler):
    """Log records as the daemon's log file has them: one formatted line an event."""

    def __init__(self) -> None:
        """Start with no lines, formatting as the daemon does."""
        super().__init__(level=logging.DEBUG)
        self.setFormatter(LineFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record's formatted text."""
        self.lines.append(self.format(record))


def surfaces(world: World, verdicts: dict[str, NodeVerdict]) -> None:
    """The daemon's and the CLI's surfaces, fed `verdicts`: each must work and stay strict."""
    now = datetime.now(UTC)
    previous = StateStore(paths.state_file()).read()
    steps = [
        hysteresis.advance(
            previous.nodes.get(v.name) if previous else None, v, world.cfg.monitor, now
        )
        for v in verdicts.values()
    ]
    logged = Lines()
    ugro_log = logging.getLogger("ugro")
    level = ugro_log.level
    ugro_log.setLevel(logging.DEBUG)
    ugro_log.addHandler(logged)
    try:
        for step in steps:
            logs.step(step, world.cfg.monitor)
        events = world.engine.after_sweep([s.verdict for s in steps], [], None, len(NODES), now)
        logs.alerts(events)
    finally:
        ugro_log.removeHandler(logged)
        ugro_log.setLevel(level)
    assert not any(ESC in line for line in logged.lines), logged.lines
    for event in events:
        finite(strict(json.dumps(event.to_json(), allow_nan=False)))
    StateStore(paths.state_file()).update([s.verdict for s in steps])
    strict(paths.state_file().read_text(encoding="utf-8"))
    history = History(paths.history_file())
    try:
        history.record([Sample(s.verdict, s.delay_s) for s in steps])
    finally:
        history.close()
    metrics = generate_latest(exporter.registry(paths.state_file())).decode()
    assert "NaN" not in metrics
    assert "Inf" not in metrics
    assert ESC not in metrics
    runner = CliRunner()
    for args in (
        ["health", "--json"],
        ["health"],
        ["metrics"],
        ["hosts", "--format", "json"],
        ["history", "--json"],
    ):
        ran = runner.invoke(main, ["--config", str(world.path), *args])
        assert ran.exception is None or isinstance(ran.exception, SystemExit), (args, ran.output)
        assert ran.exit_code in (0, 1, 2, 3), (args, ran.output)
        if "json" in args or "--json" in args:
            finite(strict(ran.stdout))
        assert ESC not in ran.output, (args, ran.output)


@settings(max_examples=30, deadline=10_000, suppress_health_check=[HealthCheck.too_slow])
@given(lie=lies())
def test_one_lying_node_cannot_break_any_surface(world: World, lie: Lie) -> None:
    """`ugro check`, then hysteresis, alerts, logs, state, history, /metrics and every view."""
    transport = HostileTransport({lie.kind: lie.result})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sweep, "Transports", lambda **_: Transports(ssh=transport, local=transport))
        ran = CliRunner().invoke(main, ["--config", str(world.path), "check", "--json"])
    assert ran.exception is None or isinstance(ran.exception, SystemExit), ran.output
    assert ran.exit_code in ((1, 2, 3) if lie.invalid else (0, 1, 2, 3)), ran.output
    finite(strict(ran.stdout))
    state = StateStore(paths.state_file()).read()
    assert state is not None
    world.assert_truthful(lie, state.nodes, first=False)
    surfaces(world, state.nodes)
