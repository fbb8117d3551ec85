"""The check registry: the one list of checks, what config derives from it, and the docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gpuhealth import node
from ugro import config
from ugro.checks import CHECK_MODULES, DuplicateCheckError, index, registry
from ugro.checks import gpu as gpu_check
from ugro.errors import UgroError

CHECKS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "checks.md"
# The cells of the checks page's summary table that state a registry flag.
GPU_HEALTH_CELL = "nodes with `gpus` > 0"
NOT_LOCAL_CELL = "not in the embedded default"


def documented_checks() -> list[list[str]]:
    """The rows of the table on the checks page that lists every check, as stripped cells."""
    text = CHECKS_PAGE.read_text(encoding="utf-8")
    lines = text.split("\n## ", 1)[0].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| check | core |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_docs_list_every_check_with_its_facts() -> None:
    """The checks page's table names each check in order, its core flag and timeout."""
    checks = registry()
    rows = documented_checks()
    assert [row[0] for row in rows] == [f"`{name}`" for name in checks]
    for (_, core, runs_on, timeout), check in zip(rows, checks.values(), strict=True):
        assert core == ("yes" if check.core else "no"), check.name
        seconds = re.match(r"\d+(\.\d+)?", timeout)
        assert seconds, f"{check.name}: no timeout in {timeout!r}"
        assert float(seconds[0]) == check.default_timeout_s, check.name
        assert (GPU_HEALTH_CELL in runs_on) == check.gpu_health, check.name
        assert (NOT_LOCAL_CELL in runs_on) == (not check.local), check.name


def test_the_registry_is_the_list_of_modules_in_order() -> None:
    """Each module of CHECK_MODULES gives one check, in that order."""
    checks = registry()
    assert [type(c).__module__ for c in checks.values()] == [
        f"ugro.checks.{module}" for module in CHECK_MODULES
    ]
    assert tuple(checks) == config.ALL_CHECKS


def test_a_name_given_twice_is_refused() -> None:
    """Two checks with one name are a DuplicateCheckError, one of ugro's own errors."""
    with pytest.raises(DuplicateCheckError, match="'gpu' is already registered") as caught:
        index([gpu_check.CHECK, gpu_check.CHECK])
    assert isinstance(caught.value, UgroError)


def test_config_derives_the_check_lists_from_the_flags() -> None:
    """The core five of the design, seven GPU health checks, and no latency on this machine."""
    assert config.CORE_CHECKS == ("ssh", "gpu", "torch", "disk", "latency")
    assert config.GPU_HEALTH_CHECKS == (
        "ecc",
        "remap",
        "xid",
        "throttle",
        "pcie",
        "processes",
        "temperature",
    )
    assert tuple(n for n in config.ALL_CHECKS if n != "latency") == config.LOCAL_CHECKS
    assert config.local_default().nodes[0].checks == list(config.LOCAL_CHECKS)


def test_timeouts_have_one_valid_default_per_check() -> None:
    """`timeouts` has connect, then each check's own default, and every default validates."""
    defaults = config.Timeouts()
    assert list(type(defaults).model_fields) == ["connect", *registry()]
    for name, check in registry().items():
        assert getattr(defaults, name) == check.default_timeout_s
    assert config.Timeouts.model_validate(defaults.model_dump()) == defaults


@pytest.mark.parametrize("name", config.GPU_HEALTH_CHECKS)
def test_gpu_health_checks_skip_nodes_without_gpus(name: str) -> None:
    """A GPU health check applies where GPUs are expected, and nowhere else."""
    check = registry()[name]
    assert check.applies(node(gpus=2))
    assert not check.applies(node(gpus=0))


# rendezvous and deep apply only where asked for (their own tests).
EVERYWHERE = [
    n for n in config.ALL_CHECKS if n not in (*config.GPU_HEALTH_CHECKS, "rendezvous", "deep")
]


@pytest.mark.parametrize("name", EVERYWHERE)
def test_other_checks_apply_without_gpus(name: str) -> None:
    """Checks that are not GPU health checks run on a node with `gpus: 0` too."""
    assert registry()[name].applies(node(gpus=0))
