"""Version drift: tables of clusters, and properties that hold for any cluster."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ugro.cli.views import verdicts as view
from ugro.model import CheckResult, NodeStatus, NodeVerdict, Status
from ugro.verdict import drift, report
from ugro.verdict.rows import Row, findings

TORCH = "2.4.1+cu124"
OLD = "2.3.0+cu121"


def test_one_odd_node_is_named_against_the_majority() -> None:
    """Seven nodes agree, one does not: the finding names it, its version and the majority."""
    versions = {f"gpu{i}": {"torch": TORCH} for i in range(8)}
    versions["gpu3"] = {"torch": OLD}
    [finding] = drift.version_drift(versions)
    assert finding.to_json() == {
        "kind": "version_drift",
        "component": "torch",
        "majority": TORCH,
        "odd": {"gpu3": OLD},
        "groups": {TORCH: ["gpu0", "gpu1", "gpu2", "gpu4", "gpu5", "gpu6", "gpu7"], OLD: ["gpu3"]},
        "message": f"torch differs: gpu3 {OLD}, against {TORCH} on 7 nodes; NCCL fails in "
        "confusing ways across versions; install the same version on every node",
    }


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        ({}, []),
        ({"a": {"torch": TORCH}}, []),
        ({"a": {"torch": TORCH}, "b": {"torch": TORCH}}, []),
        # Unknown is not a version: a node without torch is no drift.
        ({"a": {"torch": TORCH}, "b": {}, "c": {"python": "3.11.9"}}, []),
        ({"a": {"torch": TORCH}, "b": {"torch": ""}}, []),
        (
            {"a": {"nccl": "2.21.5"}, "b": {"nccl": "2.20.5"}},
            [("nccl", None, {})],
        ),
        (
            {
                "a": {"driver": "550.54.15", "python": "3.11.9"},
                "b": {"driver": "550.54.15", "python": "3.10.12"},
                "c": {"driver": "535.161.08", "python": "3.11.9"},
            },
            [("driver", "550.54.15", {"c": "535.161.08"}), ("python", "3.11.9", {"b": "3.10.12"})],
        ),
        (
            {"a": {"cuda": "12.4"}, "b": {"cuda": "12.1"}, "c": {"cuda": "11.8"}},
            [("cuda", None, {})],
        ),
    ],
)
def test_drift_table(
    versions: dict[str, dict[str, str]],
    expected: list[tuple[str, str | None, dict[str, str]]],
) -> None:
    """Which components drift, the majority (None on a tie) and the odd nodes."""
    found = drift.version_drift(versions)
    assert [(f.component, f.majority, f.odd) for f in found] == expected


def test_a_tie_says_so_and_lists_every_group() -> None:
    """With no majority, the message says so and names every side."""
    [finding] = drift.version_drift(
        {"a": {"nccl": "2.21.5"}, "b": {"nccl": "2.21.5"}, "c": {"nccl": "2.20.5"}, "d": {}}
        | {"e": {"nccl": "2.20.5"}}
    )
    assert finding.majority is None
    assert finding.groups == {"2.20.5": ("c", "e"), "2.21.5": ("a", "b")}
    assert finding.message.startswith(
        "NCCL differs with no majority: 2.20.5 on c, e; 2.21.5 on a, b; NCCL fails"
    )


def test_long_lists_are_shortened_in_the_message_only() -> None:
    """A message names five nodes and counts the rest; `odd` names them all."""
    versions = {f"n{i:02}": {"python": "3.10.12"} for i in range(7)}
    versions |= {f"m{i:02}": {"python": "3.11.9"} for i in range(9)}
    [finding] = drift.version_drift(versions)
    assert "n00, n01, n02, n03, n04 and 2 more 3.10.12" in finding.message
    assert len(finding.odd) == 7


VERSIONS = st.sampled_from(["1", "2", "3", ""])
NODES = st.dictionaries(
    st.text("abcdefgh", min_size=1, max_size=4),
    st.dictionaries(st.sampled_from(list(drift.COMPONENTS)), VERSIONS, max_size=5),
    max_size=12,
)


@given(NODES)
def test_every_odd_node_is_named_and_no_majority_node_is(
    versions: dict[str, dict[str, str]],
) -> None:
    """Every node outside the majority is in `odd` with its version; none inside it is."""
    for finding in drift.version_drift(versions):
        known = {n: v[finding.component] for n, v in versions.items() if v.get(finding.component)}
        assert sorted(n for group in finding.groups.values() for n in group) == sorted(known)
        if finding.majority is None:
            sizes = [len(g) for g in finding.groups.values()]
            assert sizes.count(max(sizes)) >= 2
            assert finding.odd == {}
        else:
            assert finding.odd == {n: v for n, v in known.items() if v != finding.majority}
            biggest = len(finding.groups[finding.majority])
            assert all(len(finding.groups[v]) < biggest for v in finding.odd.values())


@given(NODES)
def test_drift_only_where_known_versions_differ(versions: dict[str, dict[str, str]]) -> None:
    """A component drifts exactly when its known versions differ; unknowns never count."""
    drifting = {f.component for f in drift.version_drift(versions)}
    for component in drift.COMPONENTS:
        known = {v[component] for v in versions.values() if v.get(component)}
        assert (component in drifting) == (len(known) > 1)


@given(st.lists(st.text("abc", min_size=1), unique=True, max_size=10), VERSIONS)
def test_all_equal_means_no_finding(nodes: list[str], version: str) -> None:
    """When every node has the same version of everything, there is nothing to say."""
    versions = {n: dict.fromkeys(drift.COMPONENTS, version) for n in nodes}
    assert drift.version_drift(versions) == []


def verdict(name: str, status: NodeStatus, versions: dict[str, str]) -> NodeVerdict:
    """A minimal verdict with versions."""
    return NodeVerdict(
        name=name,
        address="10.0.0.1",
        status=status,
        health_score=100.0,
        pass_rate=1.0,
        last_check=datetime(2026, 11, 28, tzinfo=UTC),
        checks=(CheckResult("ssh", Status.OK, "ok"),),
        versions=versions,
    )


def test_report_compares_reachable_nodes_and_lists_findings() -> None:
    """The JSON document has a top-level `findings` list; unreachable nodes are left out."""
    now = datetime(2026, 11, 28, 0, 1, tzinfo=UTC)
    rows = [
        Row.of(verdict("a", NodeStatus.HEALTHY, {"torch": TORCH}), now),
        Row.of(verdict("b", NodeStatus.HEALTHY, {"torch": TORCH}), now),
        Row.of(verdict("c", NodeStatus.UNHEALTHY, {"torch": OLD}), now),
        Row.of(verdict("d", NodeStatus.UNREACHABLE, {"torch": "0.1"}), now),
    ]
    document = report.document(rows, source="state", now=now)
    [finding] = document["findings"]
    assert finding["odd"] == {"c": OLD}
    assert view.findings_text(findings(rows)) == [f"drift: {finding['message']}"]
    assert document["nodes"][0]["versions"] == {"torch": TORCH}


def test_table_shows_brackets_literally(capsys: pytest.CaptureFixture[str]) -> None:
    """Versions and node output with brackets are printed as they are, not read as markup."""
    now = datetime(2026, 11, 28, 0, 1, tzinfo=UTC)
    rows = [Row.of(verdict("a", NodeStatus.HEALTHY, {"torch": "2.6.0[/]rc1"}), now)]
    view.print_table(rows, footer="drift: torch differs: a 2.6.0[/]rc1 [bold]")
    assert "drift: torch differs: a 2.6.0[/]rc1 [bold]" in capsys.readouterr().out
