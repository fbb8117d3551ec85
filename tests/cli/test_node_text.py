"""Node text is data on every surface: no markup read from it, no escape or forged line let out.

A node answers a sweep with rich markup in its torch error, terminal escapes in its GPU and
process names and a newline that tries to forge a log line. The daemon's own steps (hysteresis,
the log, the alert engine, the state file, the history) carry that text to every surface, and
the real commands, in this process, show it: rendered by rich, captured as written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result

from conftest import fixture_text
from ugro import config, paths
from ugro.alerts.book import book_to_json
from ugro.alerts.engine import AlertEngine
from ugro.checks import gpu, processes, reachability, torch
from ugro.cli import main
from ugro.daemon import logs
from ugro.model import CommandResult, NodeStatus
from ugro.store.cordons import Cordon, CordonStore
from ugro.store.history import opened, path_for
from ugro.store.history_records import Event, Sample, Transition
from ugro.store.state import StateStore
from ugro.sweep import Transports, sweep
from ugro.verdict import hysteresis

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from ugro.config import Config, Worker
    from ugro.transport import Session

#: A log line, as the daemon writes one: time, level, message.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S")
FORGED = "2026-11-30 03:14:15,926 INFO gpu7: unhealthy -> healthy (all checks pass)"
MARKUP = "[/oops] see [link=https://evil.example/]the docs[/link]"
TORCH_ERROR = f"RuntimeError: CUDA error {MARKUP}\n{FORGED}"
# An OSC window title and a clear screen in a GPU's name; an OSC-8 hyperlink in a process's.
GPU_NAME = "NVIDIA A100\x1b]0;owned\x07\x1b[2J"
PROCESS = "train\x1b]8;;file:evil.sh\x1b\\.py\x1b]8;;\x1b\\"
CORDON_REASON = "[/] waiting for [bold]RMA[/bold]"
# What a terminal would act on: ESC, BEL, the 8-bit CSI, OSC and ST.
CONTROL = re.compile("[\x1b\x07\x9b\x9c\x9d]")


class HostileSession:
    """gpu7, as a compromised or broken node answers ugro's commands."""

    peer = None

    def round_trip(self) -> None:
        """No TCP connection of its own: the latency check falls back to probes."""

    async def run(self, command: str, *, timeout: float) -> CommandResult:
        """The hostile answer to each command the checks send."""
        del timeout
        smi = "\n".join(
            f"{i}, GPU-{i}, {GPU_NAME}, 41, 3, 1024, 81920, 60.5, 400.00" for i in (0, 1)
        )
        answers = {
            reachability.COMMAND: CommandResult(0, fixture_text("proc", "healthy.txt")),
            gpu.COMMAND: CommandResult(0, smi + "\n"),
            processes.COMMAND: CommandResult(0, f"GPU-0, 4242, {PROCESS}, 1024\n"),
            processes.PS_COMMAND: CommandResult(0, "    1 Ss 100 systemd\n"),
        }
        if command in answers:
            return answers[command]
        if torch.MARKER.strip() in command:
            return CommandResult(0, torch.MARKER + json.dumps({"error": TORCH_ERROR}) + "\n")
        return CommandResult(127, "", "sh: 1: not found")


class HostileTransport:
    """Opens a HostileSession to any node."""

    async def open(self, node: Worker) -> Session:
        """gpu7's session."""
        del node
        return HostileSession()

    async def close(self) -> None:
        """Nothing to close."""


@pytest.fixture
def ugro_logger() -> Iterator[None]:
    """Give back the `ugro` logger as it was, after a test that sets up the daemon's log."""
    logger = logging.getLogger("ugro")
    kept = (list(logger.handlers), logger.level, logger.propagate)
    yield
    for handler in logger.handlers:
        if handler not in kept[0]:
            handler.close()
    logger.handlers, logger.level, logger.propagate = kept


@pytest.fixture
def swept(isolated_home: Path, ugro_logger: None) -> Config:
    """One hostile sweep of gpu7 through the daemon's steps: log, alerts, state, history."""
    del ugro_logger
    isolated_home.mkdir(parents=True)
    (isolated_home / "cluster.yaml").write_text(
        "workers:\n"
        "  - name: gpu7\n"
        "    ip: 10.0.0.7\n"
        "    gpus: 2\n"
        "    gpu: H100\n"
        "    checks: [ssh, torch, gpu, processes]\n",
        encoding="utf-8",
    )
    cfg = config.load(isolated_home / "cluster.yaml")
    now = datetime.now(UTC)
    logs.setup_logging(cfg.monitor, paths.log_file(), to_stderr=True)
    transport = HostileTransport()
    (observed,) = asyncio.run(sweep(cfg.nodes, Transports(ssh=transport, local=transport)))
    step = hysteresis.advance(None, observed, cfg.monitor, now)
    assert step.verdict.status is NodeStatus.UNHEALTHY
    logs.step(step, cfg.monitor)
    change = Transition(now, "gpu7", step.before.value, step.verdict.status.value, step.reason)
    engine = AlertEngine(cfg.alerts)
    logs.alerts(engine.after_sweep([step.verdict], [change], None, 1, now))
    delivery = {"chat": {"sent": 0, "retries": 2, "failed": 1, "last_error": f"HTTP 500: {MARKUP}"}}
    StateStore(paths.state_file()).update(
        [step.verdict], alerts={**book_to_json(engine.book), "delivery": delivery}
    )
    with opened(path_for(cfg.history)) as history:
        history.record([Sample(step.verdict, 30)], [change])
        history.record_events([Event(now, "gpu7", "escalation", {"why": TORCH_ERROR})])
    CordonStore().cordon(
        Cordon("gpu7", "manual", f"{CORDON_REASON}\x1b]0;owned\x07", now, user="ops")
    )
    return cfg


def ugro(*args: str) -> Result:
    """Run the real command line in this process."""
    return CliRunner().invoke(main, list(args))


def assert_shown_as_data(text: str) -> None:
    """Nothing in `text` that a terminal acts on, and no line forged by a node."""
    assert not CONTROL.search(text), repr(text)
    assert not any(line.startswith(FORGED) for line in text.splitlines()), text


@pytest.mark.usefixtures("swept")
@pytest.mark.parametrize(
    ("command", "code"),
    [(["health"], 2), (["alerts"], 0), (["history"], 0), (["history", "gpu7"], 0)],
)
def test_markup_in_a_torch_error_is_shown_as_typed(command: list[str], code: int) -> None:
    """`[/oops]` and `[link=…]` in a node's error are shown literally: no crash, no hidden link."""
    ran = ugro(*command)
    assert ran.exit_code == code, ran.output
    assert MARKUP.replace(" ", "") in re.sub(r"\s", "", ran.output)
    assert_shown_as_data(ran.output)


@pytest.mark.usefixtures("swept")
@pytest.mark.parametrize("command", [["health", "--wide"], ["alerts"]])
def test_escapes_in_gpu_and_process_names_stay_out_of_tables(command: list[str]) -> None:
    """An OSC title, ESC[2J and an OSC-8 link in names reach the tables as plain text."""
    ran = ugro(*command)
    assert "NVIDIA A100" in ran.output
    assert "train.py" in ran.output
    assert_shown_as_data(ran.output)


@pytest.mark.usefixtures("swept")
def test_a_cordon_reason_in_the_health_table_is_text() -> None:
    """The cordon of `ugro health --wide` shows the reason's brackets, and no escape."""
    ran = ugro("health", "--wide")
    assert "cordoned by ops (manual) since " in ran.output
    assert any(line.rstrip().endswith(f": {CORDON_REASON}") for line in ran.output.splitlines())
    assert_shown_as_data(ran.output)


@pytest.mark.usefixtures("swept")
def test_json_carries_the_exact_data() -> None:
    """`--json` is the data as stored, escapes and all: JSON escaping is its safety."""
    stored = StateStore(paths.state_file()).read()
    assert stored is not None
    ran = ugro("health", "--json")
    assert_shown_as_data(ran.output)
    (node,) = json.loads(ran.output)["nodes"]
    assert node["checks"] == stored.nodes["gpu7"].to_json()["checks"]
    assert node["gpus"] == stored.nodes["gpu7"].to_json()["gpus"]
    alerts = json.loads(ugro("alerts", "--json").output)
    assert alerts["delivery"]["chat"]["last_error"] == f"HTTP 500: {MARKUP}"


@pytest.mark.usefixtures("swept")
def test_stderr_lists_are_one_line_per_node() -> None:
    """`ugro hosts` says why gpu7 is left out on one line of stderr, without escapes."""
    ran = ugro("hosts")
    assert ran.exit_code == 1
    lines = ran.stderr.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["ugro", "ugro"]
    assert lines[0].startswith("ugro: left out gpu7: ")
    assert MARKUP in lines[0]
    assert_shown_as_data(ran.stderr)


@pytest.mark.usefixtures("swept")
def test_preflight_and_daemon_status_show_data() -> None:
    """`ugro preflight` and `ugro daemon status` quote the node and a sink's error as text."""
    ran = ugro("preflight", "--max-age", "1h")
    assert ran.exit_code == 2, ran.output
    assert "  gpu7: " in ran.output
    assert_shown_as_data(ran.output)
    status = ugro("daemon", "status")
    assert status.exit_code == 3
    assert f"last error: HTTP 500: {MARKUP}" in status.output
    assert_shown_as_data(status.output)


def test_the_log_keeps_one_event_a_line(swept: Config) -> None:
    """In monitor.log every line is one event: the node's newline forged none, no escape got in."""
    del swept
    for handler in logging.getLogger("ugro").handlers:
        handler.flush()
    text = paths.log_file().read_text(encoding="utf-8")
    assert_shown_as_data(text)
    lines = text.splitlines()
    assert all(LOG_LINE.match(line) for line in lines), text
    (change,) = [line for line in lines if " gpu7: unknown -> unhealthy " in line]
    assert f"⏎{FORGED}" in change
    assert any("alert firing: [CRITICAL] gpu7: " in line for line in lines)


def test_the_daemons_stderr_is_as_clean_as_its_file(
    swept: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the daemon logs to stderr (the journal) is one line per event, without escapes."""
    # Set up again here: a handler writes to the stderr it found, and set-up's is gone.
    logs.setup_logging(swept.monitor, paths.log_file(), to_stderr=True)
    logging.getLogger("ugro.daemon.loop").warning("node said: %s", f"{GPU_NAME}\n{FORGED}")
    err = capsys.readouterr().err
    assert_shown_as_data(err)
    assert LOG_LINE.match(err)
    assert err.endswith(f" WARNING node said: NVIDIA A100⏎{FORGED}\n")


@pytest.fixture
def cordons(isolated_home: Path) -> Path:
    """A cluster.yaml of gpu1 and gpu2, the default place, for `ugro cordon`."""
    isolated_home.mkdir(parents=True)
    path = isolated_home / "cluster.yaml"
    path.write_text(
        "workers:\n  - {name: gpu1, ip: 10.0.0.1}\n  - {name: gpu2, ip: 10.0.0.2}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.usefixtures("cordons")
@pytest.mark.parametrize(
    "reason", ["[/]", "[/oops]", "[link=https://evil.example/]ticket 42[/link]", "[bold]x"]
)
def test_markup_in_a_cordon_reason_is_shown_as_typed(reason: str) -> None:
    """`ugro cordon gpu1 --reason "[/]"`, then `ugro cordon`, lists the reason as typed."""
    placed = ugro("cordon", "gpu1", "--reason", reason)
    assert placed.exit_code == 0, placed.output
    assert placed.output == f"cordoned gpu1: {reason}\n"
    listed = ugro("cordon")
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines()[1].rstrip().endswith(reason)
    health = ugro("health")
    assert health.exit_code == 3  # no verdict yet: the cordon alone does not break it
    again = ugro("cordon", "gpu1", "--reason", reason)
    assert again.output.rstrip().endswith(reason)
    reworded = ugro("cordon", "gpu1", "--reason", f"{reason} again")
    assert reworded.output == (
        f"gpu1 was already cordoned; reason updated: {reason!r} → {reason + ' again'!r}\n"
    )
    lifted = ugro("uncordon", "gpu1")
    assert lifted.exit_code == 0
    assert lifted.output.rstrip().endswith(f"{reason} again)")


@pytest.mark.usefixtures("cordons")
def test_escapes_in_a_cordon_reason_are_not_let_out() -> None:
    """A reason with an OSC title and a newline is one line of plain text; `--json` is exact."""
    reason = f"fan\x1b]0;owned\x07 broken\n{FORGED}"
    placed = ugro("cordon", "gpu2", "--reason", reason)
    # The newline was already folded into a space when the cordon was placed.
    assert placed.output == f"cordoned gpu2: fan broken {FORGED}\n"
    listed = ugro("cordon")
    assert_shown_as_data(listed.output)
    assert len(listed.output.splitlines()) == 2
    document: dict[str, Any] = json.loads(ugro("cordon", "--json").output)
    assert document["cordons"][0]["reason"] == f"fan\x1b]0;owned\x07 broken {FORGED}"
    assert CordonStore().read()["gpu2"] == Cordon.from_json(document["cordons"][0])


@pytest.mark.usefixtures("cordons")
def test_a_reason_that_is_not_utf8_is_shown_and_kept() -> None:
    """A reason with a stray byte (a lone surrogate), an 8-bit CSI and a bidi override."""
    reason = "bad byte \udcff, \x9b2Jan 8-bit CSI, \u202egnp.exe"
    placed = ugro("cordon", "gpu1", "--reason", reason)
    assert placed.exit_code == 0, placed.output
    assert placed.output == "cordoned gpu1: bad byte \ufffd, an 8-bit CSI, \ufffdgnp.exe\n"
    listed = ugro("cordon")
    assert listed.exit_code == 0, listed.output
    assert_shown_as_data(listed.output)
    shown = ugro("cordon", "--json")
    assert shown.exit_code == 0, shown.output
    assert_shown_as_data(shown.output)
    assert "\\u202e" in shown.output
    assert json.loads(shown.output)["cordons"][0]["reason"] == reason
