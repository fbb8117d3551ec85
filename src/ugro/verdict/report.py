"""The verdicts as one JSON document: `ugro check/health --json` and the dashboard's API.

Both surfaces build it here, so `/api/v1/health` is the `ugro health --json` document. The
schema (README, "JSON output") is stable: fields are added, never renamed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ugro.verdict.rows import exit_code, findings

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ugro.verdict import drift
    from ugro.verdict.rows import Row

# The version of every `--json` document about verdicts (check, health, preflight).
JSON_SCHEMA_VERSION = 1


def document(
    rows: Sequence[Row],
    *,
    source: str,
    now: datetime | None = None,
    notes: Sequence[str] = (),
    found: Sequence[drift.Finding] | None = None,
) -> dict[str, Any]:
    """The `--json` document; `found` defaults to the findings of `rows`."""
    now = now or datetime.now(UTC)
    found = findings(rows) if found is None else found
    summary: dict[str, int] = {}
    for row in rows:
        summary[row.status.value] = summary.get(row.status.value, 0) + 1
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "source": source,
        "generated_at": now.isoformat(),
        "exit_code": exit_code(rows),
        "summary": summary,
        "notes": list(notes),
        "findings": [f.to_json() for f in found],
        "nodes": [node_json(row) for row in rows],
    }


def node_json(row: Row) -> dict[str, Any]:
    """A node of the `--json` document: its verdict as shown now.

    A node never checked has its name, `"status": "unknown"`, `"checked": false`, and null
    or empty where a verdict would say something.
    """
    entry = {
        **row.verdict.to_json(),
        "status": row.status.value,
        "checked": row.checked,
        "checked_status": row.verdict.status.value,
        "age_s": round(row.age_s, 1),
        "cordon": row.cordon.to_json() if row.cordon else None,
    }
    if not row.checked:
        entry.update(
            address=None,
            health_score=None,
            pass_rate=None,
            last_check=None,
            checked_status=None,
            age_s=None,
        )
    return entry
