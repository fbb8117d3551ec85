"""The shared GPU health query: one command string, one parser, the checks built on it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from conftest import fixture_text
from gpuhealth import DRIVER_GONE, node, smi
from ugro.checks import Context, gpuquery, registry
from ugro.config import CORE_CHECKS as CORE
from ugro.config import GPU_HEALTH_CHECKS as GPU_HEALTH
from ugro.errors import CommandTimeout
from ugro.model import CheckResult, CommandResult, NodeStatus, NodeVerdict, Status
from ugro.verdict import scoring

SHARED = ("ecc", "throttle", "pcie", "temperature")


def test_every_shared_check_issues_the_same_command() -> None:
    """ecc, throttle, pcie and temperature run one identical string, so it runs once a node."""
    checks = registry()
    commands = {checks[name].command(node()) for name in SHARED}  # type: ignore[attr-defined]
    assert commands == {gpuquery.COMMAND}
    assert gpuquery.COMMAND.startswith("nvidia-smi --query-gpu=index,uuid,pci.bus_id,")
    assert gpuquery.COMMAND.endswith(" --format=csv,noheader,nounits")
    assert "clocks_throttle_reasons.active" in gpuquery.COMMAND


def test_parser_reads_every_field_of_every_gpu() -> None:
    """Eight H100 lines become eight rows with identity and raw fields."""
    rows = gpuquery.parse(fixture_text("nvidia-smi", "health-8xh100.csv"))
    assert [r.index for r in rows] == list(range(8))
    assert rows[1].bus_id == "00000000:2A:00.0"
    assert rows[0].name == "NVIDIA H100 80GB HBM3"
    assert rows[0].number("temperature.gpu") == 58
    assert rows[0].unsupported("retired_pages.pending")
    assert gpuquery.driver_versions(rows) == {"driver": "535.183.01"}


def test_unknown_error_is_failed_not_unsupported() -> None:
    """[Unknown Error] is a failed reading, [N/A] an unsupported one."""
    row = gpuquery.parse(fixture_text("nvidia-smi", "health-2x4090-unknown-error.csv"))[0]
    assert row.failed("ecc.errors.uncorrected.volatile.total") == "Unknown Error"
    assert not row.unsupported("ecc.errors.uncorrected.volatile.total")
    assert row.number("ecc.errors.uncorrected.volatile.total") is None
    assert row.unsupported("retired_pages.pending")
    assert row.failed("retired_pages.pending") is None


@pytest.mark.parametrize("name", ["garbage.txt", "healthy-2x4090.csv", "apps-training.csv"])
def test_other_output_raises(name: str) -> None:
    """Anything but the query's CSV (even the gpu check's CSV) is a parse error."""
    with pytest.raises(ValueError, match="comma-separated"):
        gpuquery.parse(fixture_text("nvidia-smi", name))


@pytest.mark.parametrize("cut", [120, 200, 300])
def test_truncated_line_raises(cut: int) -> None:
    """A line cut short (even right after a comma) is an error, not a GPU missing fields."""
    text = fixture_text("nvidia-smi", "health-2x4090.csv")[:cut]
    with pytest.raises(ValueError, match="comma-separated"):
        gpuquery.parse(text)


@pytest.mark.parametrize("name", SHARED)
def test_driver_failure_is_unknown_with_the_cause(name: str) -> None:
    """A broken driver is the gpu check's failure; the others say UNKNOWN and why."""
    result = registry()[name].evaluate(DRIVER_GONE, node())  # type: ignore[attr-defined]
    assert result.status is Status.UNKNOWN
    assert result.message == (
        "not read: the NVIDIA driver is not loaded (exit 9) (see the gpu check)"
    )


@pytest.mark.parametrize("name", SHARED)
def test_no_gpu_listed_is_unknown(name: str) -> None:
    """An empty answer is missing data, never a pass."""
    result = registry()[name].evaluate(CommandResult(0, ""), node())  # type: ignore[attr-defined]
    assert result.status is Status.UNKNOWN
    assert "listed no GPU" in result.message


@pytest.mark.parametrize("name", SHARED)
def test_driver_version_is_reported(name: str) -> None:
    """Every shared-query check reports the driver version for drift detection."""
    result = registry()[name].evaluate(smi("health-2x4090.csv"), node())  # type: ignore[attr-defined]
    assert result.versions == {"driver": "550.127.05"}


@pytest.mark.parametrize("name", [*SHARED, "remap", "xid", "processes"])
def test_gpu_health_checks_skip_nodes_without_gpus(name: str) -> None:
    """A CPU-only node (gpus: 0) runs none of the GPU health checks."""
    check = registry()[name]
    assert check.applies(node())
    assert not check.applies(node(gpus=0))


class HungSession:
    """A session whose nvidia-smi never answers; other commands print nothing."""

    peer = None

    def round_trip(self) -> None:
        """No TCP connection of its own: the latency check falls back to probes."""

    async def run(self, command: str, *, timeout: float) -> CommandResult:
        """Raise as the transport does when a command outlives its timeout."""
        if command.startswith("nvidia-smi"):
            raise CommandTimeout(f"{command[:20]} timed out after {timeout:g} s")
        return CommandResult(0, "")


@pytest.mark.parametrize("name", [*SHARED, "remap", "processes"])
def test_hung_nvidia_smi_is_unknown(name: str) -> None:
    """A hung nvidia-smi fails the gpu check only; these say UNKNOWN."""
    check = registry()[name]
    result = asyncio.run(check.run(node(), HungSession(), Context()))
    assert result.status is Status.UNKNOWN
    assert "nvidia-smi did not answer within 10 s" in result.message


def test_weights_keep_all_ok_at_100_and_a_failure_decides() -> None:
    """Five points each: all ok scores 100; a failing ecc costs 5 of 135 and is decisive."""
    weights = {name: check.weight for name, check in registry().items()}
    assert [weights[n] for n in GPU_HEALTH] == [5] * 7
    names = (*CORE, *GPU_HEALTH)

    def judge(failing: str | None, status: Status = Status.FAIL) -> NodeVerdict:
        checks = tuple(CheckResult(n, status if n == failing else Status.OK, "") for n in names)
        return scoring.verdict(
            name="n1",
            address="10.0.0.1",
            when=datetime.now(UTC),
            checks=checks,
            weights=weights,
            thresholds=scoring.Thresholds(0.9, 80),
            core=frozenset(CORE),
        )

    healthy = judge(None)
    assert (healthy.status, healthy.health_score) == (NodeStatus.HEALTHY, 100)
    failed = judge("ecc")
    # A failing GPU health check is evidence the node cannot train, whatever its 5 points:
    # the failing part of the unhealthy band, 1 + 33 × 130/135 (docs/scoring.md).
    assert (failed.status, failed.health_score) == (NodeStatus.UNHEALTHY, 32.8)
    warned = judge("throttle", Status.WARN)
    assert (warned.status, warned.health_score) == (NodeStatus.DEGRADED, 88.6)
