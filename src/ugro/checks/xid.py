"""The `xid` check: no hardware Xid error in the node's kernel log since the last check.

The NVIDIA driver reports GPU errors to the kernel log as `NVRM: Xid (PCI:<bus>): <n>, ...`
(NVIDIA, "Xid Errors", https://docs.nvidia.com/deploy/xid-errors/). Some Xids mean the
hardware or the driver is in trouble (the node cannot be trusted to train); others are a
program's own fault (a bad memory access) and say nothing about the node.

Which part of the log: everything since this node's previous check, at least `xid_hold_s`,
at most `xid_lookback_s` (the whole lookback on a first check). The minimum matters: a
one-off hardware Xid must still be there when the daemon re-checks the node to confirm the
failure (hysteresis), or it would be shrugged off as a blip; it also keeps a node that just
had one off the training roster for a while. The maximum keeps a daemon that was stopped for
a week from failing nodes for errors long dealt with.

Clock skew cannot shift the window: the control node sends only a length (seconds, an int it
computed), and the node measures it back from its own clock. dmesg's timestamps are seconds
since boot; the node's `date +%s` and `/proc/uptime` turn them into times. Where dmesg is not
permitted (`kernel.dmesg_restrict=1` for a non-root user), the journal's kernel messages are
read instead, with the node's own `--since`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ugro.checks import Answering, cut_note, cut_short
from ugro.checks.gpuquery import COMMAND as SHARED_QUERY
from ugro.checks.gpuquery import GpuHealth, GpuRow, parse
from ugro.checks.readings import SECONDS, UNIX_TIME, XID, number, shown, whole
from ugro.errors import CommandTimeout, InvalidOutput
from ugro.model import CommandResult, Evaluation, Status

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ugro.checks import Context
    from ugro.config import Worker

SOURCE_URL = "https://docs.nvidia.com/deploy/xid-errors/"

# Xids that mean the GPU, its memory, its links or the driver's firmware are in trouble:
# (meaning, what to do). From NVIDIA's Xid catalog (SOURCE_URL) and "A100 GPU Memory Error
# Management" (docs.nvidia.com/deploy/a100-gpu-mem-error-mgmt/).
HARDWARE: dict[int, tuple[str, str]] = {
    48: (
        "double-bit ECC error (uncorrectable memory error)",
        "drain the node, reset the GPU or reboot, and replace it if it recurs",
    ),
    62: ("internal micro-controller halt", "reset the GPU or reboot the node"),
    63: (
        "ECC page retirement or row remapping recorded",
        "drain the node and reset the GPU to apply it",
    ),
    64: (
        "ECC page retirement or row remapping failed",
        "drain the node and replace the GPU",
    ),
    74: ("NVLink error", "drain the node, reset the GPUs, check `nvidia-smi nvlink -e`"),
    79: (
        "GPU has fallen off the bus",
        "reboot the node; if it recurs, reseat the GPU and check its power and riser",
    ),
    92: (
        "high single-bit ECC error rate",
        "watch `nvidia-smi -q -d ECC` and plan to replace the GPU",
    ),
    94: ("contained ECC error", "restart the affected job, reset the GPU when it is idle"),
    95: ("uncontained ECC error", "drain the node and reset the GPU or reboot"),
    119: ("GSP RPC timeout", "reset the GPU or reboot; update the driver if it recurs"),
    120: ("GSP error", "reset the GPU or reboot; update the driver if it recurs"),
}
# Xids a program causes on healthy hardware: shown, never a failure.
APPLICATION: dict[int, str] = {
    13: "graphics engine exception",
    31: "GPU memory page fault",
    43: "GPU stopped processing",
    45: "preemptive cleanup",
    68: "video decoder exception",
    69: "graphics engine class error",
}

# Added to the window so an Xid logged while the previous check ran is not missed.
SLACK_S = 5
# Distinct (Xid, GPU) pairs a message spells out; the rest are counted.
MAX_SHOWN = 4
MARK = "@@ugro "
# Matched where the line says "NVRM: Xid (" first: searched for, a line of a million of them
# with no ")" would cost a scan to its end for each.
XID_TAG = "NVRM: Xid ("
_XID = re.compile(r"NVRM: Xid \((?P<where>[^)]*)\): (?P<xid>[^,\s]*),?\s*(?P<rest>.*)$")
# A dmesg line's stamp, and a journal line's (-o short-unix): whatever stands there is read as
# the time, so a garbled one is refused rather than taken for a line without one.
_DMESG_TIME = re.compile(r"^(?:<\d+>)?\[(?P<ts>[^\]]*)\]")
_JOURNAL_TIME = re.compile(r"^(?P<ts>\S+)\s")
_BUS = re.compile(r"(?P<domain>[0-9a-fA-F]{4,8}):(?P<bus>[0-9a-fA-F]{2}):(?P<dev>[0-9a-fA-F]{2})")
# journalctl run by a user who may not read the system journal says so and shows nothing.
_JOURNAL_DENIED = ("not seeing messages", "insufficient permissions", "no journal files")


def command(window_s: int) -> str:
    """The node's shell command for the last `window_s` seconds of kernel log."""
    since = f"$((now - {int(window_s)}))"
    return (
        f'now=$(date +%s); echo "{MARK}now $now"; '
        f"echo \"{MARK}uptime $(cut -d' ' -f1 /proc/uptime)\"; "
        "if log=$(dmesg 2>&1); then "
        f"echo '{MARK}source dmesg'; printf '%s\\n' \"$log\" | grep -F 'NVRM: Xid'; "
        "else "
        f'echo "{MARK}dmesg-error $(printf \'%s\\n\' "$log" | head -n 1)"; '
        f"if log=$(journalctl -k -o short-unix --no-pager --since=@{since} 2>&1); then "
        f"echo '{MARK}source journal'; printf '%s\\n' \"$log\" | grep -i "
        "-e 'NVRM: Xid' -e 'not seeing messages' -e 'insufficient permissions' "
        "-e 'no journal files'; "
        f'else echo "{MARK}journal-error $(printf \'%s\\n\' "$log" | head -n 1)"; fi; '
        "fi; exit 0"
    )


def window_s(node: Worker, context: Context) -> int:
    """Seconds of log to read (module docstring): since the last check, within the bounds."""
    lookback = node.xid_lookback_s
    if context.previous_check is None:
        seconds = lookback
    else:
        elapsed = (context.started - context.previous_check).total_seconds() + SLACK_S
        seconds = min(max(elapsed, node.xid_hold_s), lookback)
    return max(1, math.ceil(seconds))


@dataclass(frozen=True, slots=True)
class XidEvent:
    """One Xid line: when (the node's clock, Unix seconds), which GPU, which Xid."""

    when: float
    where: str
    xid: int
    text: str

    @property
    def bus(self) -> str | None:
        """The PCI bus id in a normal form ('0:3b:00'), to match nvidia-smi's."""
        return _bus_key(self.where)


def _bus_key(text: str) -> str | None:
    match = _BUS.search(text)
    if match is None:
        return None
    return f"{int(match['domain'], 16):x}:{match['bus']}:{match['dev']}".lower()


@dataclass(frozen=True, slots=True)
class KernelLog:
    """What the node's command reported: its clock, the source read, and the Xid lines."""

    now: float
    source: str | None
    events: tuple[XidEvent, ...]
    errors: tuple[str, ...]


def parse_log(stdout: str) -> KernelLog:
    """The command's marked output; raise ValueError when the markers are missing."""
    marks: dict[str, str] = {}
    lines: list[str] = []
    for line in stdout.splitlines():
        if line.startswith(MARK):
            key, _, value = line.removeprefix(MARK).partition(" ")
            marks[key] = value.strip()
        elif line.strip():
            lines.append(line)
    if "now" not in marks or "uptime" not in marks:
        raise ValueError(f"the node reported no clock and uptime: {stdout[:120]!r}")
    now = number(marks["now"], "the node's clock (date +%s)", UNIX_TIME)
    uptime = number(marks["uptime"], "the node's uptime", SECONDS)
    source = marks.get("source")
    errors = [f"dmesg: {marks['dmesg-error']}" if "dmesg-error" in marks else ""]
    if "journal-error" in marks:
        errors.append(f"journalctl: {marks['journal-error']}")
    events = []
    for line in lines:
        if source == "journal" and any(d in line.lower() for d in _JOURNAL_DENIED):
            errors.append(f"journalctl: {line.strip()}")
            source = None
            continue
        if XID_TAG in line:
            # dmesg stamps seconds since boot; the node's clock less its uptime is the boot.
            boot = now - uptime if source == "dmesg" else None
            events.append(_event(line, boot, now))
    return KernelLog(now, source, tuple(events), tuple(e for e in errors if e))


def _event(line: str, boot: float | None, now: float) -> XidEvent:
    """The Xid of one line, timed from its dmesg stamp (after `boot`) or its journal stamp.

    A line without a stamp happened `now`; one whose stamp or Xid is garbled is refused.
    """
    match = _XID.match(line, line.find(XID_TAG))
    if match is None:
        # The driver writes every Xid line alike: one it did not is garbled, not absent.
        raise InvalidOutput(f"an Xid line is not the driver's: {shown(line)}")
    if boot is not None:
        stamp = _DMESG_TIME.match(line)
        when = boot + number(stamp["ts"], "a dmesg time", SECONDS) if stamp else now
    else:
        stamp = _JOURNAL_TIME.match(line)
        when = number(stamp["ts"], "a journal time", UNIX_TIME) if stamp else now
    xid = whole(match["xid"], "an Xid number", XID)
    return XidEvent(when, match["where"], xid, match["rest"].strip())


def _time(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Xid(GpuHealth, Answering):
    """FAIL on hardware Xids logged since the last check; application Xids are only shown."""

    name = "xid"
    weight = 5
    default_timeout_s = 10
    hang_hint = "reading the kernel log hung: the node is overloaded or its journal is stuck"

    def asks(self, node: Worker, context: Context) -> tuple[str, ...]:
        """The log window since the last check, and the shared GPU query (to name GPUs)."""
        return (command(window_s(node, context)), SHARED_QUERY)

    def answer(
        self, results: Sequence[CommandResult | None], node: Worker, context: Context
    ) -> Evaluation:
        """Evaluate the log; a log that did not come in time is a timeout."""
        log, shared = results
        if log is None:
            raise CommandTimeout(f"did not finish within {self.timeout(node):g} s")
        gpus: tuple[GpuRow, ...] = ()
        if shared is not None and shared.exit_status == 0 and not shared.truncated:
            try:
                gpus = parse(shared.stdout)
            except ValueError:
                gpus = ()  # the shared query's own checks report it; Xids name bus ids then
        window = window_s(node, context)
        return self.evaluate(log, node, window=window, gpus=gpus)

    def evaluate(
        self,
        result: CommandResult,
        node: Worker,  # noqa: ARG002 - the verdict needs no node setting beyond the window
        *,
        window: int,
        gpus: tuple[GpuRow, ...] = (),
    ) -> Evaluation:
        """Judge the Xids of the last `window` seconds; pure, so tests feed it fixtures.

        Output the transport cut still proves a hardware Xid it shows (the log's lines are in
        order, the marks first); without one it proves nothing, and the check is unknown.
        """
        if result.exit_status != 0 and not result.truncated:
            return Evaluation(
                Status.UNKNOWN,
                f"cannot read the kernel log (exit {result.exit_status}){result.said(first=True)}",
            )
        # A cut output's last line may be cut in the middle ("Xid 7" of "Xid 79"): dropped.
        log = parse_log(result.stdout.rpartition("\n")[0] if result.truncated else result.stdout)
        if log.source is None:
            return Evaluation(
                Status.UNKNOWN,
                "cannot read the kernel log: "
                + "; ".join(log.errors or ["no dmesg and no journal"])
                + ". Add the SSH user to the `adm` or `systemd-journal` group, or set "
                "`sysctl kernel.dmesg_restrict=0`",
            )
        names = {_bus_key(g.bus_id): f"GPU {g.index} ({g.bus_id})" for g in gpus}
        start = log.now - window
        recent = [e for e in log.events if e.when >= start]
        hardware = [e for e in recent if e.xid in HARDWARE]
        others = [e for e in recent if e.xid not in HARDWARE]
        span = _span(window)
        if hardware:
            return Evaluation(
                Status.FAIL,
                _join([_describe(e, n, names) for e, n in _latest(hardware)])
                + f" (kernel log, last {span})"
                + (f"; and more: {cut_note('the kernel log')}" if result.truncated else ""),
                value=len(hardware),
                unit="xids",
            )
        if (short := cut_short(result, "the kernel log")) is not None:
            return short
        if others:
            shown = _join([_describe(e, n, names) for e, n in _latest(others)])
            return Evaluation(
                Status.OK,
                f"no hardware Xid in the last {span}; application Xids: {shown}",
                value=0,
                unit="xids",
            )
        return Evaluation(
            Status.OK, f"no Xid in the last {span} ({log.source})", value=0, unit="xids"
        )


def _join(items: list[str], shown: int = MAX_SHOWN) -> str:
    """The first `shown` items, and how many more there are: a message stays readable."""
    more = f"; and {len(items) - shown} more" if len(items) > shown else ""
    return "; ".join(items[:shown]) + more


def _latest(events: list[XidEvent]) -> list[tuple[XidEvent, int]]:
    """One event per (Xid, GPU), the latest, with how many were logged; oldest first."""
    seen: dict[tuple[int, str], list[XidEvent]] = {}
    for event in events:
        seen.setdefault((event.xid, event.bus or event.where), []).append(event)
    latest = [(max(group, key=lambda e: e.when), len(group)) for group in seen.values()]
    return sorted(latest, key=lambda pair: (pair[0].when, pair[0].xid))


def _describe(event: XidEvent, count: int, names: dict[str | None, str]) -> str:
    gpu = names.get(event.bus) or event.where
    times = f" ×{count}" if count > 1 else ""
    said = f"Xid {event.xid}{times}"
    if event.xid in HARDWARE:
        meaning, action = HARDWARE[event.xid]
        return f"{said} ({meaning}) on {gpu} at {_time(event.when)}: {action}"
    meaning = APPLICATION.get(event.xid, "not a hardware Xid; see NVIDIA's catalog")
    return f"{said} ({meaning}) on {gpu} at {_time(event.when)}"


def _span(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds >= 120:
        return f"{seconds // 60} min"
    return f"{seconds} s"


CHECK = Xid()
