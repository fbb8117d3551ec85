"""The node table: one line per node, cut to the terminal, never wrapped in a pipe.

Rendered at fixed widths, piped through the real command line (click's runner: stdout is
not a terminal) and, for the cut, on a real pseudo-terminal; text from nodes is hostile.
"""

from __future__ import annotations

import io
import json
import os
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result

from conftest import run_ugro
from ugro import paths
from ugro.cli import main
from ugro.cli.views import dumps, grouping, table
from ugro.cli.views import verdicts as view
from ugro.model import Alert, CheckResult, NodeStatus, NodeVerdict, Status
from ugro.store.cordons import Cordon
from ugro.store.state import StateStore
from ugro.verdict.rows import Row, cluster_rows, natural

if TYPE_CHECKING:
    from collections.abc import Sequence

LONG = "torch: import torch failed: " + "RuntimeError: CUDA error " * 40
ESCAPES = "GPU \x1b]0;owned\x07\x1b[2Jfell off the bus [bold]now[/bold]\nforged line"
WIDE = "温度が高すぎます " * 10
CONTROL = re.compile("[\x1b\x07\x9b\x9c\x9d]")


def verdict(
    name: str,
    status: NodeStatus = NodeStatus.HEALTHY,
    alerts: Sequence[Alert] = (),
    *,
    age_s: float = 0.0,
) -> NodeVerdict:
    """A verdict of `name` with `alerts`, checked `age_s` seconds ago."""
    return NodeVerdict(
        name=name,
        address=f"10.0.0.{len(name)}",
        status=status,
        health_score=100.0 if status is NodeStatus.HEALTHY else 30.0,
        pass_rate=1.0,
        last_check=datetime.now(UTC) - timedelta(seconds=age_s),
        checks=(CheckResult("ssh", Status.OK, "ok", duration_ms=2.0),),
        alerts=tuple(alerts),
    )


def rows_of(*verdicts: NodeVerdict) -> list[Row]:
    """The rows `ugro health` would show for `verdicts`."""
    return cluster_rows({v.name: v for v in verdicts}, None, datetime.now(UTC))


def mixed() -> list[Row]:
    """A long problem, hostile text, wide characters, several problems and a healthy node."""
    return rows_of(
        verdict("gpu1"),
        verdict("gpu2", NodeStatus.UNHEALTHY, [Alert("critical", LONG)]),
        verdict("gpu3", NodeStatus.UNHEALTHY, [Alert("critical", ESCAPES)]),
        verdict("gpu4", NodeStatus.DEGRADED, [Alert("warning", WIDE)]),
        verdict(
            "gpu5",
            NodeStatus.UNHEALTHY,
            [Alert("warning", "hot"), Alert("critical", "xid: Xid 79"), Alert("warning", "load")],
        ),
    )


def save(*verdicts: NodeVerdict, configured: Sequence[str] | None = None) -> None:
    """Store verdicts, and the configured nodes, where `ugro health` reads them."""
    StateStore(paths.state_file()).update(verdicts, keep=configured)


def ugro(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run the real command line in this process, stdout captured (a pipe, to ugro)."""
    return CliRunner().invoke(main, list(args), env=env)


# --- the table at fixed widths -------------------------------------------------------------


@pytest.mark.parametrize("width", [20, 40, 60, 80, 120])
def test_every_line_fits_the_width_and_each_node_is_one_line(width: int) -> None:
    """At any width the table is one line per node, none wider than the terminal."""
    lines = view.table_lines(mixed(), width=width, wide=False, colour=False)
    assert len(lines) == 1 + 5
    lead = len("gpu1  unhealthy  SCORE  CHECKED  ")
    for line in lines:
        assert table.cells(line) <= max(width, lead + len("+2 more")), line
        assert not CONTROL.search(line)


def test_the_most_important_problem_leads_and_the_rest_are_counted() -> None:
    """A critical problem is shown before warnings, and `+N more` survives the cut."""
    lines = view.table_lines(mixed(), width=60, wide=False, colour=False)
    [gpu5] = [line for line in lines if line.startswith("gpu5")]
    assert "xid: Xid 79" in gpu5
    assert gpu5.endswith("+2 more")


def test_a_cut_problem_ends_in_an_ellipsis_and_keeps_wide_characters_whole() -> None:
    """Cut text ends in "…"; CJK characters (two cells each) are never split."""
    lines = view.table_lines(mixed(), width=61, wide=False, colour=False)
    [gpu2] = [line for line in lines if line.startswith("gpu2")]
    [gpu4] = [line for line in lines if line.startswith("gpu4")]
    assert gpu2.endswith("…")
    assert gpu4.endswith("…")
    assert table.cells(gpu4) <= 61
    assert "温度" in gpu4


def test_wide_shows_every_problem_uncut() -> None:
    """`--wide`: every problem of the node on its line, whatever the width."""
    lines = view.table_lines(mixed(), width=40, wide=True, colour=False)
    [gpu5] = [line for line in lines if line.startswith("gpu5")]
    assert gpu5.endswith("xid: Xid 79; hot; load")
    [gpu2] = [line for line in lines if line.startswith("gpu2")]
    assert LONG.strip() in gpu2


def test_node_text_is_shown_as_data() -> None:
    """Escapes are removed, a newline cannot forge a line, markup is shown as typed."""
    lines = view.table_lines(mixed(), width=None, wide=True, colour=False)
    text = "\n".join(lines)
    assert not CONTROL.search(text)
    assert "forged line" not in [line.strip() for line in lines]
    assert "[bold]now[/bold]⏎forged line" in text


def test_colour_is_only_on_the_status() -> None:
    """With colour, the status is coloured and node text still carries no escape of its own."""
    lines = view.table_lines(mixed(), width=None, wide=False, colour=True)
    [gpu3] = [line for line in lines if line.startswith("gpu3")]
    assert "\x1b[31munhealthy\x1b[0m" in gpu3
    assert "]0;owned" not in gpu3


def test_stale_and_cordoned_nodes_say_so() -> None:
    """A stale node names the status it had; a cordoned one shows `,cordoned` and why."""
    now = datetime.now(UTC)
    old = verdict("gpu1", age_s=3600)
    cordon = Cordon("gpu2", "manual", "RMA \x1b[2J", now, user="ops")
    rows = cluster_rows(
        {"gpu1": old, "gpu2": verdict("gpu2")},
        None,
        now,
        stale_after_s=90,
        cordons={"gpu2": cordon},
    )
    lines = view.table_lines(rows, width=None, wide=False, colour=False)
    assert lines[1].split()[:2] == ["gpu1", "stale"]
    assert "stale: healthy when last checked" in lines[1]
    assert lines[2].split()[:2] == ["gpu2", "healthy,cordoned"]
    assert lines[2].endswith("cordoned by ops (manual) since " + f"{now:%Y-%m-%d %H:%M:%S}Z: RMA")


# --- grouping ------------------------------------------------------------------------------


def test_shared_problems_are_grouped_under_the_table() -> None:
    """Twelve nodes refused alike are one line, their names compressed into a run."""
    refused = Alert("critical", "unreachable: connection refused on port 22")
    rows = rows_of(
        *(verdict(f"host{i}", NodeStatus.UNREACHABLE, [refused]) for i in range(5, 17)),
        verdict("gpu1", NodeStatus.DEGRADED, [Alert("warning", "load 70 on 64 CPUs")]),
    )
    assert view.group_lines(rows, width=None) == [
        "12 nodes unreachable — connection refused on port 22: host5…host16"
    ]


def test_grouped_names_are_shown_as_data() -> None:
    """Node names with escapes in a group line are printable, as in the table."""
    refused = Alert("critical", "unreachable: timed out")
    rows = rows_of(
        *(verdict(f"n{i}\x1b]0;x\x07", NodeStatus.UNREACHABLE, [refused]) for i in (1, 2))
    )
    [line] = view.group_lines(rows, width=None)
    assert not CONTROL.search(line)
    assert line.endswith(": n1, n2")


def test_grouping_lines_are_cut_to_the_terminal() -> None:
    """On a terminal a group's names are cut to the width; piped they are all there."""
    refused = Alert("critical", "unreachable: timed out")
    rows = rows_of(*(verdict(f"n{i}", NodeStatus.UNREACHABLE, [refused]) for i in range(0, 60, 2)))
    [cut] = view.group_lines(rows, width=50)
    assert table.cells(cut) == 50
    assert cut.endswith("…")
    [whole] = view.group_lines(rows, width=None)
    assert whole.endswith("n56, n58")


@pytest.mark.parametrize(
    ("names", "said"),
    [
        pytest.param([f"host{i}" for i in range(5, 17)], "host5…host16", id="run"),
        pytest.param(["gpu1", "gpu2"], "gpu1, gpu2", id="two-are-listed"),
        pytest.param(["a1", "a2", "a3", "b4", "a5"], "a1…a3, b4, a5", id="prefix-breaks-run"),
        pytest.param(["n08", "n09", "n10", "n011"], "n08…n10, n011", id="zero-padding"),
        pytest.param(["n9", "n10", "n11"], "n9…n11", id="more-digits"),
        pytest.param(["ctl", "x" + "9" * 5000, "y"], "ctl, x" + "9" * 5000 + ", y", id="huge"),
        pytest.param([], "", id="none"),
    ],
)
def test_runs_of_names_are_compressed(names: list[str], said: str) -> None:
    """Consecutive numbers of one prefix are said as their ends; anything else as it is."""
    assert grouping.compress(names) == said


def test_names_sort_as_people_count() -> None:
    """gpu2 before gpu10, and a name of thousands of digits sorts without converting it."""
    names = ["gpu10", "gpu2", "ctl", "gpu" + "9" * 5000, "gpu02", "٣", "²"]
    ordered = sorted(names, key=natural)
    assert ordered.index("gpu2") < ordered.index("gpu10") < ordered.index("gpu" + "9" * 5000)


# --- the command, piped --------------------------------------------------------------------


def test_piped_output_is_never_wrapped_or_cut() -> None:
    """A pipe has no width: a node is one line however long its problem, whatever COLUMNS."""
    save(verdict("gpu1", NodeStatus.UNHEALTHY, [Alert("critical", LONG)]), verdict("gpu2"))
    ran = ugro("health", env={"COLUMNS": "40"})
    assert ran.exit_code == 2, ran.output
    lines = ran.output.splitlines()
    assert lines[0].split() == ["NODE", "STATUS", "SCORE", "CHECKED", "PROBLEM"]
    assert lines[1].startswith("gpu1")
    assert lines[1].endswith(LONG.strip())
    assert lines[2].startswith("gpu2")


def test_format_options_agree() -> None:
    """`-o wide`, `--format wide` and `--wide` are one thing; so are `-o json` and `--json`."""
    save(verdict("gpu1", NodeStatus.DEGRADED, [Alert("warning", "a"), Alert("warning", "b")]))
    wide = {
        ugro("health", *args).output for args in (["-o", "wide"], ["--wide"], ["--format=wide"])
    }
    assert len(wide) == 1
    assert "a; b" in wide.pop()
    as_json = [json.loads(ugro("health", *args).output) for args in (["-o", "json"], ["--json"])]
    assert [d["nodes"] for d in as_json] == [as_json[0]["nodes"]] * 2


def test_two_formats_at_once_are_a_usage_error() -> None:
    """`--json --wide` is refused with exit 3, as every usage error of a verdict command."""
    ran = ugro("health", "--json", "--format", "nagios")
    assert ran.exit_code == 3
    assert "choose one output format" in ran.output


def test_json_lines_are_one_per_node_and_parse_to_the_same_data() -> None:
    """The document is exact JSON; each node is one line of it; unsafe characters are escaped."""
    document = {"a": 1, "nodes": [{"x": "\u2028\x9b"}, {"y": [1, 2]}], "e": [], "d": {"k": None}}
    text = dumps(document)
    assert json.loads(text) == document
    assert '    {"x": "\\u2028\\u009b"},' in text.splitlines()
    assert dumps([1]) == "[1]"


# --- every configured node -----------------------------------------------------------------


def test_configured_nodes_without_a_verdict_are_unknown_never_checked() -> None:
    """With ctl and gpu1 configured and only ctl checked, gpu1 is shown unknown, exit 3."""
    save(verdict("ctl"), configured=["ctl", "gpu1"])
    ran = ugro("health")
    assert ran.exit_code == 3, ran.output
    [gpu1] = [line for line in ran.output.splitlines() if line.startswith("gpu1")]
    assert gpu1.split() == ["gpu1", "unknown", "-", "never", "never", "checked"]
    assert "2 nodes: 1 healthy, 1 unknown (1 never checked)" in ran.output
    document = json.loads(ugro("health", "--json").output)
    nodes = {n["name"]: n for n in document["nodes"]}
    assert nodes["gpu1"]["checked"] is False
    assert nodes["gpu1"]["status"] == "unknown"
    assert nodes["gpu1"]["last_check"] is None
    assert nodes["ctl"]["checked"] is True
    assert document["exit_code"] == 3


def test_nodes_no_longer_configured_are_not_shown() -> None:
    """A verdict of a node the config no longer has is not part of the cluster."""
    save(verdict("old"), verdict("gpu1"))
    (paths.state_file().parent / "cluster.yaml").write_text(
        "workers:\n  - name: gpu1\n    ip: 10.0.0.1\n", encoding="utf-8"
    )
    ran = ugro("health", "--config", str(paths.state_file().parent / "cluster.yaml"))
    assert ran.exit_code == 0, ran.output
    assert "old" not in ran.output
    assert "1 node: 1 healthy" in ran.output


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("before", id="ugro --config X health"),
        pytest.param("after", id="ugro health --config X"),
        pytest.param("env", id="UGRO_CONFIG=X ugro health"),
    ],
)
def test_config_means_the_same_before_or_after_the_command(where: str) -> None:
    """--config before the command, after it, or $UGRO_CONFIG: the same cluster, named below."""
    save(verdict("gpu1"), configured=["gpu1"])
    config = paths.state_file().parent / "other.yaml"
    config.write_text(
        "workers:\n  - name: gpu1\n    ip: 10.0.0.1\n  - name: gpu9\n    ip: 10.0.0.9\n",
        encoding="utf-8",
    )
    args = {
        "before": ["--config", str(config), "health"],
        "after": ["health", "--config", str(config)],
        "env": ["health"],
    }[where]
    ran = ugro(*args, env={"UGRO_CONFIG": str(config)} if where == "env" else None)
    assert ran.exit_code == 3, ran.output
    assert any(line.startswith("gpu9") for line in ran.output.splitlines())
    assert f"config: {config}; state: {paths.state_file()}" in ran.output


@pytest.mark.parametrize(
    "args", [["--config", "/nope.yaml", "health"], ["health", "--config", "/nope.yaml"]]
)
def test_a_missing_config_is_no_such_file_exit_3(args: list[str]) -> None:
    """A named config that does not exist: "no such file", exit 3, as `check` says it."""
    save(verdict("gpu1"))
    ran = ugro(*args)
    assert ran.exit_code == 3
    assert "/nope.yaml: no such file" in ran.output
    assert "gpu1" not in ran.output


def test_the_footer_names_the_state_and_where_the_node_list_came_from() -> None:
    """Without a named config, the footer says which config the last full check used."""
    StateStore(paths.state_file()).update([verdict("gpu1")], keep=["gpu1"], config="/etc/c.yaml")
    ran = ugro("health")
    assert ran.output.splitlines()[-1] == f"config: /etc/c.yaml; state: {paths.state_file()}"


def test_an_old_state_file_shows_its_own_nodes() -> None:
    """A state written before the node list was recorded still reads: its nodes are shown."""
    save(verdict("gpu1"), verdict("gpu2"))
    ran = ugro("health")
    assert ran.exit_code == 0, ran.output
    assert "2 nodes: 2 healthy" in ran.output
    assert "config: not recorded yet" in ran.output


# --- nagios --------------------------------------------------------------------------------

NAGIOS = re.compile(r"^UGRO (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+ \| (\w+=\d+;;;0;\d+ ?)+$")


@pytest.mark.parametrize(
    ("statuses", "code", "state"),
    [
        pytest.param([NodeStatus.HEALTHY] * 2, 0, "OK", id="ok"),
        pytest.param([NodeStatus.HEALTHY, NodeStatus.DEGRADED], 1, "WARNING", id="warning"),
        pytest.param([NodeStatus.DEGRADED, NodeStatus.UNHEALTHY], 2, "CRITICAL", id="critical"),
        pytest.param([NodeStatus.UNREACHABLE, NodeStatus.UNKNOWN], 2, "CRITICAL", id="down"),
        pytest.param([NodeStatus.HEALTHY, NodeStatus.UNKNOWN], 3, "UNKNOWN", id="unknown"),
    ],
)
def test_nagios_line_and_exit_code(statuses: list[NodeStatus], code: int, state: str) -> None:
    """One plugin line with perfdata; the exit code is the service state."""
    save(
        *(
            verdict(f"gpu{i}", s, [Alert("critical", f"{s.value} | because")])
            for i, s in enumerate(statuses)
        )
    )
    ran = ugro("health", "--format", "nagios")
    assert ran.exit_code == code, ran.output
    [line] = ran.output.splitlines()
    assert NAGIOS.match(line), line
    assert line.startswith(f"UGRO {state} - ")
    assert f"healthy={statuses.count(NodeStatus.HEALTHY)};;;0;{len(statuses)}" in line
    assert line.count("|") == 1


def test_nagios_names_five_culprits_and_counts_the_rest() -> None:
    """Twelve unhealthy nodes: five named with their problem, `+7 more`, nothing forged."""
    save(*(verdict(f"n{i}", NodeStatus.UNHEALTHY, [Alert("critical", ESCAPES)]) for i in range(12)))
    [line] = ugro("health", "-o", "nagios").output.splitlines()
    assert line.startswith("UGRO CRITICAL - 12 of 12 nodes unhealthy or unreachable: n0 (GPU")
    assert "+7 more |" in line
    assert not CONTROL.search(line)


def test_nagios_without_state_is_unknown_on_stdout() -> None:
    """No verdict at all: an UNKNOWN line a Nagios server can show, exit 3."""
    ran = CliRunner().invoke(main, ["health", "--format", "nagios"])
    assert ran.exit_code == 3
    assert ran.stdout.startswith("UGRO UNKNOWN - no health data yet")


# --- the lazily imported commands ----------------------------------------------------------


def test_every_command_module_is_listed() -> None:
    """Each command the modules of ugro.cli define is in COMMAND_MODULES, under its module."""
    import importlib
    import pkgutil

    from ugro import cli
    from ugro.cli.app import COMMAND_MODULES

    for module in pkgutil.iter_modules(cli.__path__):
        importlib.import_module(f"ugro.cli.{module.name}")
    assert set(main.commands) == set(COMMAND_MODULES)
    for name, command in main.commands.items():
        assert command.callback is not None
        assert command.callback.__module__ == f"ugro.cli.{COMMAND_MODULES[name]}"


@pytest.mark.integration
def test_health_imports_neither_rich_nor_the_other_commands() -> None:
    """`ugro health` loads its own module: not rich, asyncssh, yaml or the daemon's."""
    import subprocess
    import sys

    save(verdict("gpu1"), configured=["gpu1"])
    probe = (
        "import sys\nfrom ugro.cli import main\n"
        "try:\n    main(['health'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'rich', 'asyncssh', 'yaml', 'pydantic', 'psutil'} or m.startswith('ugro.cli.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=os.environ
    )
    loaded = done.stdout.splitlines()[-1]
    assert eval(loaded) == [  # noqa: S307 - a list of module names this test printed
        "ugro.cli.app",
        "ugro.cli.fleetview",
        "ugro.cli.output",
        "ugro.cli.snapshot",
        "ugro.cli.verdicts",
        "ugro.cli.views",
        "ugro.cli.views.grouping",
        "ugro.cli.views.table",
        "ugro.cli.views.verdicts",
    ]


def test_table_goes_to_the_stream_it_is_given() -> None:
    """print_table writes to the stream passed, and a non-terminal stream gets no colour."""
    out = io.StringIO()
    view.print_table(mixed(), footer="5 nodes", stream=out)
    assert out.getvalue().splitlines()[-1] == "5 nodes"
    assert "\x1b[" not in out.getvalue()


@pytest.mark.integration
def test_check_prints_the_nagios_line_too() -> None:
    """`ugro check --format nagios` (this machine alone): one plugin line; the code is its state."""
    ran = run_ugro("check", "--format", "nagios")
    [line] = ran.out.splitlines()
    assert NAGIOS.match(line), line
    assert line.startswith(f"UGRO {('OK', 'WARNING', 'CRITICAL', 'UNKNOWN')[ran.code]} - ")
    assert "checked" not in ran.err


@pytest.mark.parametrize(
    "command", [["config", "validate"], ["hosts"], ["describe", "gpu1"]], ids=" ".join
)
def test_every_command_takes_config_after_its_name(command: list[str]) -> None:
    """`ugro X --config C` says what `ugro --config C X` says, subcommands of groups too."""
    before = ugro("--config", "/nope.yaml", *command)
    after = ugro(*command, "--config", "/nope.yaml")
    assert "/nope.yaml: no such file" in before.output
    assert (after.exit_code, after.output) == (before.exit_code, before.output)
