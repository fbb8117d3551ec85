"""Output the transport cut at its limit: every check is unknown, saying so, never judged.

A parser needs the whole output; judged from its first megabyte, a node would pass or fail on
what it printed first. The one exception is a hardware Xid: the kernel log's lines are in
order, so one that was read is proof, whatever followed.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

import pytest

from conftest import fixture_text
from gpuhealth import node, smi
from ugro.checks import deep, disk, gpu, processes, reachability, registry, remap, rendezvous, xid
from ugro.checks import torch as torch_check
from ugro.checks.gpuquery import GpuHealthCheck
from ugro.config import Worker
from ugro.model import CommandResult, Status

if TYPE_CHECKING:
    from collections.abc import Callable

    from ugro.model import Evaluation

MESSAGE = "printed more than 1 MiB (or 64 KiB of errors)"


def cut(result: CommandResult) -> CommandResult:
    """`result` as the transport returns it when the command printed past the limit."""
    return dataclasses.replace(result, exit_status=None, truncated=True)


def text(*parts: str) -> CommandResult:
    """A captured output that a healthy node prints, before it is cut."""
    return CommandResult(0, fixture_text(*parts))


def shared_query_check(name: str) -> Evaluation:
    """The GPU health check `name`'s evaluation of the shared query, cut."""
    check = registry()[name]
    assert isinstance(check, GpuHealthCheck)
    return check.evaluate(cut(smi("health-2x4090.csv")), node())


MASTER = Worker.model_validate(
    {"name": "n1", "ip": "10.0.0.1", "gpus": 2, "master": {"addr": "10.0.0.9", "port": 29500}}
)
#: Each check's evaluation of a cut answer that, whole, would pass.
CUT: dict[str, Callable[[], Evaluation]] = {
    "ssh": lambda: reachability.CHECK.evaluate(cut(text("proc", "healthy.txt")), node()),
    "gpu": lambda: gpu.CHECK.evaluate(cut(smi("healthy-2x4090.csv")), node()),
    "torch": lambda: torch_check.CHECK.evaluate(cut(text("torch", "healthy.txt")), node()),
    "disk": lambda: disk.CHECK.evaluate(
        cut(text("df", "healthy-two-paths.txt")),
        node(disk_paths=["/", "/scratch"]),
    ),
    **{
        name: functools.partial(shared_query_check, name)
        for name in ("ecc", "throttle", "pcie", "temperature")
    },
    "remap (shared query)": lambda: remap.CHECK.evaluate(
        smi("remap-2x4090-na.csv"), cut(smi("health-2x4090.csv")), node()
    ),
    "remap (remapped rows)": lambda: remap.CHECK.evaluate(
        cut(smi("remap-2x4090-na.csv")), smi("health-2x4090.csv"), node()
    ),
    "processes (apps)": lambda: processes.CHECK.evaluate(
        cut(smi("apps-training.csv")), text("ps", "training.txt"), node()
    ),
    "processes (ps)": lambda: processes.CHECK.evaluate(
        smi("apps-training.csv"), cut(text("ps", "training.txt")), node()
    ),
    "xid": lambda: xid.CHECK.evaluate(
        cut(text("kernel-log", "dmesg-app-xids.txt")), node(), window=300
    ),
    "rendezvous": lambda: rendezvous.CHECK.evaluate(
        cut(text("rendezvous", "connected.txt")), MASTER
    ),
    "deep": lambda: deep.evaluate(cut(text("deep", "healthy-2x4090.txt")), node()),
}


@pytest.mark.parametrize("check", CUT)
def test_cut_output_is_unknown_and_says_so(check: str) -> None:
    """Whatever the check, a cut answer is unknown with a message naming the limit."""
    result = CUT[check]()
    assert result.status is Status.UNKNOWN, result
    assert MESSAGE in result.message
    assert result.message.startswith("not judged: ")


def test_deep_does_not_run_when_the_process_list_was_cut() -> None:
    """A cut --query-compute-apps cannot tell which GPUs are busy: the probe does not run."""
    busy = deep.parse_apps(cut(smi("apps-training.csv")))
    assert isinstance(busy, str)
    assert busy.startswith("not run: cannot tell which GPUs a job is using")
    assert MESSAGE in busy


def test_a_hardware_xid_in_cut_output_still_fails() -> None:
    """A hardware Xid that was read before the cut fails the check, saying more may follow."""
    log = fixture_text("kernel-log", "dmesg-xid79.txt") + "[86001.0] noise\n" * 10
    result = xid.CHECK.evaluate(cut(CommandResult(0, log)), node(), window=600)
    assert result.status is Status.FAIL
    assert "Xid 79" in result.message
    assert "; and more: the kernel log printed more than 1 MiB" in result.message


def test_the_line_the_cut_went_through_is_not_read() -> None:
    """The cut's last line may end mid-number ('Xid 7' of 'Xid 79'): it is dropped."""
    head = fixture_text("kernel-log", "dmesg-none.txt")
    partial = head + "[86000.25] NVRM: Xid (PCI:0000:41:00): 79"
    result = xid.CHECK.evaluate(cut(CommandResult(0, partial)), node(), window=600)
    assert result.status is Status.UNKNOWN
