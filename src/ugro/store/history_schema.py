"""The history database's schema, and how to tell ugro's database from another one."""

from __future__ import annotations

import functools
import sqlite3

SCHEMA_VERSION = 1
SCHEMA = f"""
PRAGMA user_version = {SCHEMA_VERSION};
CREATE TABLE IF NOT EXISTS names (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, UNIQUE (kind, name));
CREATE TABLE IF NOT EXISTS node_samples (
    node INTEGER NOT NULL, ts INTEGER NOT NULL, status INTEGER NOT NULL,
    observed INTEGER NOT NULL, score REAL NOT NULL, weight_ms INTEGER NOT NULL,
    PRIMARY KEY (node, ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS check_samples (
    node INTEGER NOT NULL, check_id INTEGER NOT NULL, ts INTEGER NOT NULL,
    status INTEGER NOT NULL, value REAL, duration_ms INTEGER NOT NULL,
    PRIMARY KEY (node, check_id, ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS transitions (
    node INTEGER NOT NULL, ts INTEGER NOT NULL, from_status TEXT NOT NULL,
    to_status TEXT NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (node, ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS node_hours (
    node INTEGER NOT NULL, hour INTEGER NOT NULL, samples INTEGER NOT NULL,
    weight_ms INTEGER NOT NULL, good_ms INTEGER NOT NULL, bad_ms INTEGER NOT NULL,
    score_min REAL NOT NULL, score_sum REAL NOT NULL,
    PRIMARY KEY (node, hour)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latency_hours (
    node INTEGER NOT NULL, hour INTEGER NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (node, hour, bucket)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, node INTEGER NOT NULL, ts INTEGER NOT NULL, kind TEXT NOT NULL,
    detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_node ON events (node, ts);
"""


def layout(db: sqlite3.Connection) -> dict[str, list[str]]:
    """Each table's column names: what tells ugro's database from another one at that path."""
    tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {
        name: [row[0] for row in db.execute("SELECT name FROM pragma_table_info(?)", (name,))]
        for (name,) in tables
    }


@functools.cache
def expected() -> dict[str, list[str]]:
    """The tables SCHEMA makes, as `layout` reads them."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(SCHEMA)
        return layout(db)
    finally:
        db.close()
