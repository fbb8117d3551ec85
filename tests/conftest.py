"""Shared fixtures: every test gets its own $UGRO_HOME, and helpers to run the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sshcluster import TestCluster
from ugro import config

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ugro.config import Worker

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every ugro file at a fresh directory, so no test sees another's state."""
    home = tmp_path / "ugro-home"
    monkeypatch.setenv("UGRO_HOME", str(home))
    monkeypatch.delenv("UGRO_CONFIG", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return home


@dataclass(frozen=True)
class Ran:
    """What a `ugro` process did."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """Stdout parsed as JSON."""
        return json.loads(self.out)


def run_ugro(
    *args: str | os.PathLike[str], timeout: float = 60, env: dict[str, str] | None = None
) -> Ran:
    """Run the real `ugro` command line in a subprocess, as an operator would."""
    done = subprocess.run(
        [sys.executable, "-m", "ugro", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Ran(done.returncode, done.stdout, done.stderr)


def fixture_text(*parts: str) -> str:
    """A captured output file from tests/fixtures."""
    return FIXTURES.joinpath(*parts).read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCluster]:
    """Five real sshd test hosts on 127.0.0.x, started once for the whole run."""
    cluster = TestCluster.start(tmp_path_factory.mktemp("cluster"), 5)
    yield cluster
    cluster.stop_all()


@pytest.fixture
def cluster(shared_cluster: TestCluster) -> TestCluster:
    """The shared test hosts, each healthy, running and with its original key."""
    shared_cluster.reset()
    return shared_cluster


def nodes_of(path: Path) -> dict[str, Worker]:
    """The resolved workers of a cluster.yaml, by name."""
    return {n.name: n for n in config.parse_file(path).nodes()}
