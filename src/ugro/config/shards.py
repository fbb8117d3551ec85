"""Which monitor of a sharded fleet owns a node: a stable hash of its name (docs/scaling.md).

Every monitor of a fleet reads the same workers and its own `monitor.shard` index; a node
belongs to the monitor whose index is the SHA-256 of the node's name modulo the count. The
hash is the same on every machine, Python version and run (unlike the built-in `hash()`,
which is salted per process), so the monitors agree without talking to each other, and a
node stays with its monitor as other nodes come and go.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ugro.config.loader import Config
    from ugro.config.settings import ShardSettings, Worker


def shard_of(name: str, count: int) -> int:
    """The index, 0 to `count` - 1, of the shard that owns node `name`."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def owned(nodes: Sequence[Worker], shard: ShardSettings | None) -> list[Worker]:
    """The nodes of `nodes` that the monitor of `shard` checks: all of them without shards."""
    if shard is None:
        return list(nodes)
    return [n for n in nodes if shard_of(n.name, shard.count) == shard.index]


def narrowed(cfg: Config) -> Config:
    """`cfg` with only the nodes its monitor's shard owns (`cfg` itself without shards)."""
    shard = cfg.monitor.shard
    if shard is None:
        return cfg
    return dataclasses.replace(cfg, nodes=owned(cfg.nodes, shard))
