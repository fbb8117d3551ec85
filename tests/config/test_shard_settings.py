"""Shards and the Prometheus source: which monitor owns a node, and what cluster.yaml accepts."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import pytest

from ugro import config
from ugro.config import shards
from ugro.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

WORKERS = "workers:\n  - {name: gpu1, ip: 10.0.0.1}\n  - {name: gpu2, ip: 10.0.0.2}\n"


def load(tmp_path: Path, text: str) -> config.Config:
    """Load `text` as cluster.yaml."""
    path = tmp_path / "cluster.yaml"
    path.write_text(text, encoding="utf-8")
    return config.load(path)


def workers(count: int) -> list[config.Worker]:
    """`count` workers named gpu0001 on, with distinct addresses."""
    return [
        config.Worker(name=f"gpu{i:04d}", ip=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        for i in range(count)
    ]


# --- the hash -------------------------------------------------------------------------------


def test_the_owner_is_the_sha256_of_the_name() -> None:
    """Known owners, the same on every machine and run (Python's own hash() is salted)."""
    assert [shards.shard_of(n, 2) for n in ("h0", "h1", "h2", "h3")] == [1, 1, 0, 0]
    assert [shards.shard_of(n, 3) for n in ("gpu1", "gpu2", "gpu3")] == [2, 0, 2]
    assert shards.shard_of("anything", 1) == 0


def test_every_node_has_exactly_one_owner_and_the_slices_are_even() -> None:
    """Seven shards over 1000 nodes: each node in one slice, each slice within 20 % of even."""
    nodes = workers(1000)
    slices = [shards.owned(nodes, config.ShardSettings(index=k, count=7)) for k in range(7)]
    owners = Counter(n.name for s in slices for n in s)
    assert set(owners.values()) == {1}
    assert len(owners) == 1000
    for s in slices:
        assert abs(len(s) - 1000 / 7) < 0.2 * 1000 / 7


def test_adding_nodes_moves_no_node() -> None:
    """A node keeps its monitor when others join the fleet: the slice depends on its name only."""
    shard = config.ShardSettings(index=1, count=4)
    before = {n.name for n in shards.owned(workers(100), shard)}
    after = {n.name for n in shards.owned(workers(300), shard)}
    assert before == {name for name in after if int(name[3:]) < 100}


def test_without_shards_a_monitor_owns_every_node(tmp_path: Path) -> None:
    """No `monitor.shard`: every node, and the config unchanged."""
    cfg = load(tmp_path, WORKERS)
    assert cfg.monitor.shard is None
    assert shards.narrowed(cfg) is cfg


def test_a_shard_narrows_the_config_to_its_nodes(tmp_path: Path) -> None:
    """`monitor.shard: {index: 0, count: 3}` keeps gpu2 of gpu1-gpu3 (the hash says so)."""
    cfg = load(
        tmp_path,
        "monitor: {shard: {index: 0, count: 3}}\n" + WORKERS + "  - {name: gpu3, ip: 10.0.0.3}\n",
    )
    assert cfg.monitor.shard == config.ShardSettings(index=0, count=3)
    assert [n.name for n in shards.narrowed(cfg).nodes] == ["gpu2"]
    assert [n.name for n in cfg.nodes] == ["gpu1", "gpu2", "gpu3"]


# --- what cluster.yaml accepts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("shard", "message"),
    [
        ("{index: 2, count: 2}", "monitor.shard: index must be below count (0 to 1), got 2"),
        (
            "{index: -1, count: 2}",
            "monitor.shard.index: Input should be greater than or equal to 0",
        ),
        ("{index: 0, count: 0}", "monitor.shard.count: Input should be greater than or equal to 1"),
        ("{index: '1', count: 2}", "monitor.shard.index: Input should be a valid integer"),
        ("{index: 1.5, count: 2}", "monitor.shard.index: Input should be a valid integer"),
        ("{index: yes, count: 2}", "monitor.shard.index: Input should be a valid integer"),
        ("{count: 2}", "monitor.shard.index: required, but missing"),
        ("{index: 0, count: 2, of: 3}", "monitor.shard.of: unknown key; expected one of: "),
        ("{index: 0, count: 1e400}", "monitor.shard.count: Input should be a valid integer"),
        ("3", "monitor.shard: Input should be a valid dictionary"),
    ],
)
def test_a_bad_shard_is_refused_naming_line_and_field(
    tmp_path: Path, shard: str, message: str
) -> None:
    """Each bad `monitor.shard` names the file, its line, the field and what was expected."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"monitor:\n  shard: {shard}\n" + WORKERS)
    assert f"cluster.yaml:2: {message}" in str(caught.value)


def test_a_misspelt_shard_key_is_told_the_right_ones(tmp_path: Path) -> None:
    """A typo inside `shard:` is told the key it most likely meant."""
    typo = r"monitor\.shard\.idx: unknown key; did you mean 'index'"
    with pytest.raises(ConfigError, match=typo):
        load(tmp_path, "monitor:\n  shard: {idx: 0, count: 2}\n" + WORKERS)


def test_the_prometheus_source_is_read(tmp_path: Path) -> None:
    """`prometheus: {url, timeout_s}` is the default source of hosts and preflight."""
    cfg = load(tmp_path, "prometheus: {url: 'http://prom:9090', timeout_s: 3}\n" + WORKERS)
    assert cfg.prometheus == config.PrometheusSettings(url="http://prom:9090", timeout_s=3)
    assert load(tmp_path, WORKERS).prometheus.url is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ftp://prom:9090", "expected Prometheus's address, starting with http:// or https://"),
        ('"http://ops:s3cret@prom\\n:9090"', "has a line break or control character"),
        ("''", "String should have at least 1 character"),
    ],
)
def test_a_bad_prometheus_url_is_refused_without_echoing_it(
    tmp_path: Path, value: str, message: str
) -> None:
    """A URL that is not http(s), or holds a line break: refused, its value never repeated."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"prometheus:\n  url: {value}\n" + WORKERS)
    assert f"cluster.yaml:2: prometheus.url: {message}" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert "ftp://" not in str(caught.value)
