"""The rendezvous check: its parser fed captured reports, and the probe run against real sockets."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys

import pytest

import python38
from conftest import closed_port, fixture_text
from ugro.checks import rendezvous
from ugro.config import Worker
from ugro.model import CommandResult, Status


def node(**settings: object) -> Worker:
    """A worker whose training master is 10.0.0.1:29500."""
    return Worker.model_validate(
        {"name": "gpu2", "ip": "10.0.0.12", "master": {"addr": "10.0.0.1"}, **settings}
    )


def report(name: str, exit_status: int = 0) -> CommandResult:
    """The probe's result with a captured output."""
    return CommandResult(exit_status, fixture_text("rendezvous", name))


@pytest.mark.parametrize(
    ("fixture", "status", "phrase"),
    [
        ("connected.txt", Status.OK, "reaches 10.0.0.1:29500: a rendezvous is listening"),
        ("conda-banner.txt", Status.OK, "reaches 10.0.0.1:29500"),
        ("refused.txt", Status.OK, "nothing listens there now (no job running"),
        (
            "timeout.txt",
            Status.FAIL,
            (
                "gpu2 cannot reach 10.0.0.1:29500 (timed out): a firewall drops it; training would "
                "hang at rendezvous"
            ),
        ),
        ("unreachable.txt", Status.FAIL, "([Errno 113] No route to host): no route"),
        ("dns.txt", Status.FAIL, "gpu2 cannot resolve 10.0.0.1 ([Errno -2] Name or service"),
        ("unknown-result.txt", Status.UNKNOWN, "not understood"),
        ("truncated.txt", Status.UNKNOWN, "no rendezvous report (exit 0)"),
        ("garbage.txt", Status.UNKNOWN, "SyntaxError: invalid syntax"),
        ("empty.txt", Status.UNKNOWN, "no rendezvous report (exit 0)"),
    ],
)
def test_reports_map_to_verdicts(fixture: str, status: Status, phrase: str) -> None:
    """Connected and refused pass; timed out, unreachable and unresolvable fail."""
    result = rendezvous.CHECK.evaluate(report(fixture), node())
    assert result.status is status, result.message
    assert phrase in result.message


def test_on_the_master_itself_says_loopback() -> None:
    """The master checks its own address too, and the message says so."""
    result = rendezvous.CHECK.evaluate(report("connected.txt"), node(ip="10.0.0.1"))
    assert "(the master itself, over loopback)" in result.message


def test_connect_time_is_the_value() -> None:
    """The connect time is the measured value, in ms."""
    result = rendezvous.CHECK.evaluate(report("connected.txt"), node())
    assert (result.value, result.unit) == (0.4, "ms")


def test_missing_interpreter_fails() -> None:
    """Without the configured python the way to the master is untested: a failure."""
    result = rendezvous.CHECK.evaluate(CommandResult(127, "", "python3: not found"), node())
    assert result.status is Status.FAIL
    assert "`python:`" in result.message


def test_applies_only_with_a_master() -> None:
    """Without `master:` there is nothing to reach."""
    assert rendezvous.CHECK.applies(node())
    assert not rendezvous.CHECK.applies(Worker(name="n", ip="10.0.0.2"))


def test_command_quotes_the_address_and_connects_within_half_the_timeout() -> None:
    """Config values reach the node as single quoted words; the connect gets half the time."""
    worker = node(python="conda run -n t python", timeouts={"rendezvous": 7})
    argv = shlex.split(rendezvous.CHECK.command(worker))
    assert argv == [
        "conda",
        "run",
        "-n",
        "t",
        "python",
        "-c",
        rendezvous.PROBE,
        "10.0.0.1",
        "29500",
        "3.5",
    ]


def test_probe_is_python_38() -> None:
    """Node pythons are old: the probe uses no grammar, builtin or method newer than 3.8."""
    assert python38.problems(rendezvous.PROBE) == []


def probe(addr: str, port: int, limit: float = 2.0) -> CommandResult:
    """Run the real probe here."""
    argv = [sys.executable, "-S", "-c", rendezvous.PROBE, addr, str(port), str(limit)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30)
    return CommandResult(done.returncode, done.stdout, done.stderr)


def test_probe_connects_to_a_listener() -> None:
    """A listening socket is reported as connected."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        out = probe("127.0.0.1", port)
    worker = node(master={"addr": "127.0.0.1", "port": port})
    assert rendezvous.CHECK.evaluate(out, worker).status is Status.OK
    assert '"connected"' in out.stdout


def test_probe_reports_refused() -> None:
    """A port where nothing listens is reported as refused: the host is reachable, so it passes."""
    port = closed_port()
    out = probe("127.0.0.1", port)
    assert '"refused"' in out.stdout
    result = rendezvous.CHECK.evaluate(out, node(master={"addr": "127.0.0.1", "port": port}))
    assert result.status is Status.OK, result.message
    assert "nothing listens there now" in result.message


def test_probe_reports_an_unknown_name() -> None:
    """A name that does not resolve (.invalid never does, RFC 6761) is a DNS failure."""
    out = probe("master.invalid", 29500)
    worker = node(master={"addr": "master.invalid"})
    result = rendezvous.CHECK.evaluate(out, worker)
    assert result.status is Status.FAIL
    assert "cannot resolve master.invalid" in result.message
