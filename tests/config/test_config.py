"""cluster.yaml: what loads, where it is found, and how every kind of mistake is reported."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Literal, get_args

import pytest
from click.testing import CliRunner

from conftest import run_ugro
from ugro import config, paths, sweep
from ugro.alerts import sinks
from ugro.cli import main
from ugro.config import settings
from ugro.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from _pytest.mark.structures import ParameterSet

MINIMAL = "workers: [{name: gpu1, ip: 192.168.1.10, gpu: RTX 4090, vram_gb: 24}]\n"

# One valid worker; cases append keys to it (line 4 onwards) or a second worker.
ONE = "workers:\n  - name: gpu1\n    ip: 192.168.1.10\n"


def write(path: Path, text: str) -> Path:
    """Write `text` to `path`, creating its directory; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def one_worker(name: str) -> str:
    """A valid config whose single worker is called `name`."""
    return f"workers:\n  - name: {name}\n    ip: 10.0.0.1\n"


# --- what loads ---------------------------------------------------------------------------


def test_minimal_file_loads_with_defaults(tmp_path: Path) -> None:
    """The one-line file operators already have loads unchanged, every setting defaulted."""
    cfg = config.load(write(tmp_path / "cluster.yaml", MINIMAL))
    assert cfg.source == tmp_path / "cluster.yaml"
    [node] = cfg.nodes
    assert (node.name, node.ip, node.gpu, node.vram_gb) == ("gpu1", "192.168.1.10", "RTX 4090", 24)
    assert node.transport == "ssh"
    assert node.user is None
    assert node.ssh_port is None  # unset: the SSH default, port 22
    assert node.gpus == 1
    assert node.python == "python3"
    assert node.disk_paths == ["/"]
    assert node.min_disk_gb == 10
    assert node.max_latency_ms == 100
    assert node.pass_rate == 0.9
    assert node.host_key_policy == "strict"
    assert node.checks == [
        "ssh",
        "gpu",
        "torch",
        "disk",
        "latency",
        "ecc",
        "remap",
        "xid",
        "throttle",
        "pcie",
        "processes",
        "temperature",
        "rendezvous",
        "deep",
    ]
    assert node.timeouts == config.Timeouts()


def test_worker_overrides_top_level_defaults(tmp_path: Path) -> None:
    """Top-level defaults reach every worker; a worker's own keys, timeouts too, win key by key."""
    text = """\
user: ubuntu
ssh_port: 2222
gpus: 8
disk_paths: [/, /scratch]
timeouts: {connect: 3, torch: 45}
workers:
  - name: plain
    ip: 10.0.0.1
  - name: special
    ip: node-2.example.org
    user: root
    ssh_port: 22022
    gpus: 2
    python: "conda run -n train python"
    disk_paths: [/data]
    host_key_policy: accept-new
    timeouts: {torch: 60}
"""
    plain, special = config.load(write(tmp_path / "cluster.yaml", text)).nodes
    assert (plain.user, plain.ssh_port, plain.gpus) == ("ubuntu", 2222, 8)
    assert plain.disk_paths == ["/", "/scratch"]
    assert plain.python == "python3"
    assert plain.host_key_policy == "strict"
    assert (plain.timeouts.connect, plain.timeouts.torch, plain.timeouts.gpu) == (3, 45, 10)
    assert (special.user, special.ssh_port, special.gpus) == ("root", 22022, 2)
    assert special.python == "conda run -n train python"
    assert shlex.split(special.python) == ["conda", "run", "-n", "train", "python"]
    assert special.disk_paths == ["/data"]
    assert special.host_key_policy == "accept-new"
    assert special.timeouts.torch == 60
    assert special.timeouts.connect == 3  # kept from the top level
    assert special.timeouts.gpu == 10  # the built-in default


@pytest.mark.integration
def test_shell_metacharacters_are_plain_data(tmp_path: Path) -> None:
    """Quotes, `;` and `$(...)` in values validate as data; the path is absolute, so it is fine."""
    hostile = "/tmp/a b;$(touch x)"
    text = ONE + f'    disk_paths: [{hostile!r}, "/srv/it\'s here"]\n    user: "a;b"\n'
    path = write(tmp_path / "cluster.yaml", text)
    ran = run_ugro("config", "validate", path)
    assert ran.code == 0, ran.err
    assert "OK, 1 worker: gpu1" in ran.out
    [node] = config.load(path).nodes
    assert node.disk_paths == [hostile, "/srv/it's here"]
    assert node.user == "a;b"
    assert not (tmp_path / "x").exists()


def test_every_sink_type_has_its_setting_and_its_sink() -> None:
    """Each sink `type:` config accepts names the setting it needs and has an implementation."""
    types = set(get_args(config.SinkType))
    assert set(settings.SINK_FIELDS) == types
    assert set(sinks.KINDS) == types


# --- where it is found --------------------------------------------------------------------


def test_explicit_path_beats_env_beats_home(
    tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--config wins over $UGRO_CONFIG, which wins over $UGRO_HOME/cluster.yaml."""
    write(isolated_home / "cluster.yaml", one_worker("from-home"))
    assert [n.name for n in config.load().nodes] == ["from-home"]
    monkeypatch.setenv("UGRO_CONFIG", str(write(tmp_path / "env.yaml", one_worker("from-env"))))
    assert [n.name for n in config.load().nodes] == ["from-env"]
    explicit = write(tmp_path / "flag.yaml", one_worker("from-flag"))
    cfg = config.load(explicit)
    assert [n.name for n in cfg.nodes] == ["from-flag"]
    assert cfg.source == explicit


def test_no_default_file_means_embedded_local_default(isolated_home: Path) -> None:
    """Without any config file ugro checks this machine alone, locally, without latency."""
    assert not paths.config_file().exists()
    assert paths.config_file() == isolated_home / "cluster.yaml"
    cfg = config.load()
    assert cfg.source is None
    [node] = cfg.nodes
    assert node.transport == "local"
    assert node.checks == [
        "ssh",
        "gpu",
        "torch",
        "disk",
        "ecc",
        "remap",
        "xid",
        "throttle",
        "pcie",
        "processes",
        "temperature",
        "rendezvous",
        "deep",
    ]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_named_missing_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A file the operator named, by flag or by $UGRO_CONFIG, must exist."""
    missing = tmp_path / "nope.yaml"
    if how == "env":
        monkeypatch.setenv("UGRO_CONFIG", str(missing))
    with pytest.raises(ConfigError, match="no such file"):
        config.load(missing if how == "flag" else None)


# --- ugro init ----------------------------------------------------------------------------


@pytest.mark.integration
def test_init_template_validates(isolated_home: Path) -> None:
    """The template `ugro init` writes passes `ugro config validate` untouched."""
    ran = run_ugro("init")
    assert ran.code == 0, ran.err
    assert (isolated_home / "cluster.yaml").is_file()
    ran = run_ugro("config", "validate")
    assert ran.code == 0, ran.err
    assert "OK, 2 workers: gpu1, gpu2" in ran.out


def test_template_master_and_deep_validate_when_uncommented() -> None:
    """The template's commented `master:` and `deep:` lines are valid settings as written."""
    template = files("ugro").joinpath("data/cluster.yaml").read_text(encoding="utf-8")
    text = template.replace("# master: {", "master: {").replace("# deep: false", "deep: true")
    assert text != template
    [gpu1, _] = config.parse_text(text, "cluster.yaml").nodes()
    assert gpu1.master == config.Master(addr="192.168.1.10", port=29500)
    assert gpu1.deep


@pytest.mark.integration
def test_init_refuses_to_overwrite_unless_forced(isolated_home: Path) -> None:
    """`ugro init` keeps an existing file (exit 1, pointing at --force); --force replaces it."""
    target = write(isolated_home / "cluster.yaml", one_worker("mine"))
    ran = run_ugro("init")
    assert ran.code == 1
    assert "--force" in ran.err
    assert target.read_text(encoding="utf-8") == one_worker("mine")
    ran = run_ugro("init", "--force")
    assert ran.code == 0, ran.err
    template = files("ugro").joinpath("data/cluster.yaml").read_text(encoding="utf-8")
    assert target.read_text(encoding="utf-8") == template


# --- the bad-config matrix ----------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """A broken config and what its report must say."""

    content: str | bytes
    line: int | None  # the reported line, None where no line applies
    field: str | None  # the field path named, None where no field applies
    phrase: str  # what was expected, in the message's words
    lines: int = 1  # how many problems are reported
    kind: Literal["file", "dir", "missing"] = "file"


def bad(
    case_id: str,
    content: str | bytes,
    *,
    line: int | None,
    field: str | None,
    phrase: str,
    lines: int = 1,
    kind: Literal["file", "dir", "missing"] = "file",
) -> ParameterSet:
    """One row of the matrix."""
    return pytest.param(Bad(content, line, field, phrase, lines, kind), id=case_id)


BAD_CONFIGS = [
    bad(
        "yaml-unclosed-bracket",
        "workers: [\n  {name: gpu1, ip: 10.0.0.1}\n",
        line=3,
        field=None,
        phrase="YAML syntax error: expected ',' or ']'",
    ),
    bad(
        "yaml-bad-indentation",
        "workers:\n  - name: gpu1\n   ip: 10.0.0.1\n",
        line=3,
        field=None,
        phrase="YAML syntax error",
    ),
    bad(
        "yaml-tab",
        "workers:\n\t- name: gpu1\n",
        line=2,
        field=None,
        phrase="cannot start any token",
    ),
    bad("empty-file", "", line=None, field=None, phrase="the file is empty"),
    bad("only-a-comment", "# workers: []\n", line=None, field=None, phrase="the file is empty"),
    bad(
        "top-level-list",
        "- name: gpu1\n  ip: 10.0.0.1\n",
        line=1,
        field=None,
        phrase="expected a mapping with a 'workers' list at the top level",
    ),
    bad(
        "top-level-scalar",
        "gpu1\n",
        line=1,
        field=None,
        phrase="expected a mapping with a 'workers' list at the top level",
    ),
    bad("workers-missing", "gpus: 1\n", line=1, field="workers", phrase="required, but missing"),
    bad(
        "workers-empty", "gpus: 1\nworkers: []\n", line=2, field="workers", phrase="at least 1 item"
    ),
    bad(
        "workers-not-a-list",
        "gpus: 1\nworkers: gpu1\n",
        line=2,
        field="workers",
        phrase="valid list",
    ),
    bad(
        "worker-not-a-mapping",
        "workers:\n  - gpu1\n",
        line=2,
        field="workers[0]",
        phrase="valid dictionary",
    ),
    bad(
        "missing-name",
        "workers:\n  - ip: 10.0.0.1\n",
        line=2,
        field="workers[0].name",
        phrase="required, but missing",
    ),
    bad(
        "missing-ip",
        "workers:\n  - name: gpu1\n",
        line=2,
        field="workers[0].ip",
        phrase="required, but missing",
    ),
    bad(
        "duplicate-worker-names",
        ONE + "  - name: gpu1\n    ip: 10.0.0.2\n",
        line=4,
        field="workers[1].name",
        phrase="'gpu1' is used twice",
    ),
    bad(
        "duplicate-yaml-key",
        ONE + "    ip: 10.0.0.2\n",
        line=4,
        field="workers[0].ip",
        phrase="key given twice",
    ),
    bad(
        "ip-octet-out-of-range",
        ONE + "  - name: gpu2\n    ip: 192.168.1.300\n",
        line=5,
        field="workers[1].ip",
        phrase="expected an IPv4/IPv6 address or a hostname",
    ),
    bad(
        "ip-not-an-address",
        ONE.replace("192.168.1.10", '"not an ip!"'),
        line=3,
        field="workers[0].ip",
        phrase="expected an IPv4/IPv6 address or a hostname",
    ),
    bad(
        "ssh-port-too-big",
        ONE + "    ssh_port: 70000\n",
        line=4,
        field="workers[0].ssh_port",
        phrase="less than or equal to 65535",
    ),
    bad(
        "ssh-port-zero",
        ONE + "    ssh_port: 0\n",
        line=4,
        field="workers[0].ssh_port",
        phrase="greater than or equal to 1",
    ),
    bad(
        "ssh-port-not-a-number",
        ONE + "    ssh_port: abc\n",
        line=4,
        field="workers[0].ssh_port",
        phrase="valid integer",
    ),
    bad(
        "gpus-negative",
        ONE + "    gpus: -1\n",
        line=4,
        field="workers[0].gpus",
        phrase="greater than or equal to 0",
    ),
    bad(
        "gpus-a-word",
        ONE + "    gpus: two\n",
        line=4,
        field="workers[0].gpus",
        phrase="valid integer",
    ),
    bad(
        "gpus-a-boolean", ONE + "    gpus: yes\n", line=4, field="workers[0].gpus", phrase="integer"
    ),
    bad(
        "pass-rate-above-one",
        "gpus: 1\npass_rate: 1.5\n" + ONE,
        line=2,
        field="pass_rate",
        phrase="less than or equal to 1",
    ),
    bad(
        "min-disk-negative",
        "min_disk_gb: -3\n" + ONE,
        line=1,
        field="min_disk_gb",
        phrase="greater than or equal to 0",
    ),
    bad(
        "disk-paths-empty",
        ONE + "    disk_paths: []\n",
        line=4,
        field="workers[0].disk_paths",
        phrase="at least 1 item",
    ),
    bad(
        "disk-paths-relative",
        ONE + "    disk_paths: [relative/path]\n",
        line=4,
        field="workers[0].disk_paths",
        phrase="expected absolute paths",
    ),
    bad(
        "host-key-policy-unknown",
        ONE + "    host_key_policy: maybe\n",
        line=4,
        field="workers[0].host_key_policy",
        phrase="'strict', 'accept-new' or 'off'",
    ),
    bad(
        "check-name-misspelt",
        "checks: [ssh, gpuu]\n" + ONE,
        line=1,
        field="checks[1]",
        phrase="no check is named 'gpuu'; did you mean 'gpu'?",
    ),
    bad(
        "worker-check-name-misspelt",
        ONE + "    checks: [ssh, tourch]\n",
        line=4,
        field="workers[0].checks[1]",
        phrase="no check is named 'tourch'; did you mean 'torch'?",
    ),
    bad(
        "check-name-like-none",
        "checks: [ssh, 7]\n" + ONE,
        line=1,
        field="checks[1]",
        phrase="no check is named 7; checks are: ssh, gpu, torch, disk, latency, ecc,",
    ),
    bad(
        "top-level-key-misspelt",
        "workerz:\n  - name: gpu1\n    ip: 10.0.0.1\n",
        line=1,
        field="workerz",
        phrase="did you mean 'workers'?",
        lines=2,
    ),
    bad(
        "worker-key-misspelt",
        ONE + "    ssh_prot: 22\n",
        line=4,
        field="workers[0].ssh_prot",
        phrase="did you mean 'ssh_port'?",
    ),
    bad(
        "timeouts-key-misspelt",
        "gpus: 1\ntimeouts: {conect: 3}\n" + ONE,
        line=2,
        field="timeouts.conect",
        phrase="did you mean 'connect'?",
    ),
    bad(
        "timeouts-check-misspelt",
        "timeouts: {torhc: 45}\n" + ONE,
        line=1,
        field="timeouts.torhc",
        phrase="did you mean 'torch'?",
    ),
    bad(
        "recovery-action-for-ssh-on-the-node",
        "recovery:\n  actions:\n    - {name: reboot, check: ssh, run: reboot}\n" + ONE,
        line=3,
        field="recovery.actions[0]",
        phrase="an action for the ssh check cannot run on the node (it has no session)",
    ),
    bad(
        "webhook-sink-without-url",
        "alerts:\n  sinks:\n    - {name: hook, type: webhook}\n" + ONE,
        line=3,
        field="alerts.sinks[0]",
        phrase="a webhook sink needs `url`",
    ),
    bad(
        "alertmanager-url-not-http",
        "alerts:\n  sinks:\n    - {name: am, type: alertmanager, url: ftp://am}\n" + ONE,
        line=3,
        field="alerts.sinks[0]",
        phrase="`url` must start with http:// or https://",
    ),
    bad(
        "python-empty",
        ONE + '    python: ""\n',
        line=4,
        field="workers[0].python",
        phrase="must name an interpreter",
    ),
    bad(
        "python-unclosed-quote",
        ONE + '    python: "python3 \'unclosed"\n',
        line=4,
        field="workers[0].python",
        phrase="No closing quotation",
    ),
    bad(
        "not-utf8",
        b"workers:\n  - name: gpu\xff\n    ip: 10.0.0.1\n",
        line=None,
        field=None,
        phrase="not UTF-8 text",
    ),
    bad("a-directory", "", line=None, field=None, phrase="is a directory", kind="dir"),
    bad("no-such-file", "", line=None, field=None, phrase="no such file", kind="missing"),
]


def materialise(case: Bad, tmp_path: Path) -> Path:
    """Put the case on disk as `cluster.yaml` (a directory, or nothing, where it says so)."""
    if case.kind == "missing":
        return tmp_path / "absent" / "cluster.yaml"
    path = tmp_path / "cluster.yaml"
    if case.kind == "dir":
        path.mkdir()
    elif isinstance(case.content, bytes):
        path.write_bytes(case.content)
    else:
        path.write_text(case.content, encoding="utf-8")
    return path


def assert_reported(stderr: str, path: Path, case: Bad) -> None:
    """Stderr holds the case's problems, one a line, naming file, line, field and expectation."""
    lines = stderr.strip().splitlines()
    assert len(lines) == case.lines, stderr
    assert lines[0].startswith(f"ugro: {path}:"), stderr
    # Each problem stands on its own line: the first after "ugro: ", the rest indented.
    problems = [line.strip().removeprefix("ugro: ") for line in lines]
    target = next((p for p in problems if case.field and f" {case.field}: " in p), problems[0])
    if case.field:
        assert f" {case.field}: " in target, stderr
    where = f"{path}:{case.line}:" if case.line else f"{path}:"
    assert target.startswith(where), stderr
    assert case.phrase in target, stderr


@pytest.mark.integration
@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_config_validate_reports_bad_config(case: Bad, tmp_path: Path) -> None:
    """`ugro config validate` exits 1 and says where, what field, and what was expected."""
    path = materialise(case, tmp_path)
    ran = run_ugro("config", "validate", path)
    assert ran.code == 1, ran.err
    assert ran.out == ""
    assert_reported(ran.err, path, case)


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_check_refuses_bad_config(
    case: Bad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ugro --config BAD check` exits 3 with the same report, before any node is contacted."""
    checked: list[object] = []

    def run_checks(nodes: object) -> list[object]:
        checked.append(nodes)
        return []

    monkeypatch.setattr(sweep, "run_checks", run_checks)
    path = materialise(case, tmp_path)
    result = CliRunner().invoke(main, ["--config", str(path), "check"])
    assert result.exit_code == 3, result.output
    assert result.stdout == ""
    assert_reported(result.stderr, path, case)
    assert checked == []
    assert not paths.state_file().exists()


@pytest.mark.integration
def test_every_problem_is_reported_on_its_line(tmp_path: Path) -> None:
    """Two bad workers give two lines, each with its own line number and field."""
    text = """\
workers:
  - name: gpu1
    ip: 10.0.0.999
  - name: gpu2
    ip: 10.0.0.2
    ssh_port: 0
"""
    path = write(tmp_path / "cluster.yaml", text)
    ran = run_ugro("config", "validate", path)
    assert ran.code == 1
    first, second = ran.err.strip().splitlines()
    assert first.startswith(f"ugro: {path}:3: workers[0].ip: expected an IPv4/IPv6 address")
    assert second.strip().startswith(f"{path}:6: workers[1].ssh_port: ")
    assert "greater than or equal to 1" in second


@pytest.mark.integration
def test_valid_config_passes_validate(tmp_path: Path) -> None:
    """A correct file validates with exit 0 and a one-line summary naming the workers."""
    path = write(tmp_path / "cluster.yaml", ONE + '  - name: gpu2\n    ip: "fe80::1"\n')
    ran = run_ugro("config", "validate", path)
    assert ran.code == 0, ran.err
    assert ran.out.strip() == f"{path}: OK, 2 workers: gpu1, gpu2"


# --- GPU health thresholds -----------------------------------------------------------------


def test_alert_temperatures_of_an_earlier_release_are_read_as_node_settings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`alerts.gpu_temp_*` from an earlier cluster.yaml still loads, as the node setting."""
    text = "alerts:\n  gpu_temp_warning_c: 78\nworkers:\n  - name: gpu1\n    ip: 192.168.1.10\n"
    path = write(tmp_path / "cluster.yaml", text)
    (node,) = config.load(path).nodes
    assert (node.gpu_temp_warning_c, node.gpu_temp_critical_c) == (78, 92)
    assert f"{path}:2: alerts.gpu_temp_warning_c is now the node setting" in caplog.text


def test_temperature_warning_must_be_below_critical(tmp_path: Path) -> None:
    """A worker whose resolved warning is not below its critical fails, naming its line."""
    text = (
        "gpu_temp_critical_c: 90\n"
        "workers:\n"
        "  - name: gpu1\n"
        "    ip: 192.168.1.10\n"
        "  - name: gpu2\n"
        "    ip: 192.168.1.11\n"
        "    gpu_temp_warning_c: 95\n"
    )
    path = write(tmp_path / "cluster.yaml", text)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert str(caught.value) == (
        f"{path}:7: workers[1].gpu_temp_warning_c: gpu_temp_warning_c (95) must be below "
        "gpu_temp_critical_c (90) for worker 'gpu2'"
    )


def test_top_level_temperatures_inverted_name_the_top_level(tmp_path: Path) -> None:
    """Inverted thresholds set at the top level point at the top-level key."""
    text = "gpu_temp_warning_c: 95\ngpu_temp_critical_c: 90\n" + ONE
    path = write(tmp_path / "cluster.yaml", text)
    with pytest.raises(ConfigError, match=r":1: gpu_temp_warning_c: gpu_temp_warning_c \(95\)"):
        config.load(path)


def test_gpu_health_settings_default_and_override(tmp_path: Path) -> None:
    """Temperatures and the Xid windows have defaults and per-worker overrides."""
    text = ONE + "    gpu_temp_warning_c: 80\n    xid_hold_s: 0\n"
    [node] = config.load(write(tmp_path / "cluster.yaml", text)).nodes
    assert (node.gpu_temp_warning_c, node.gpu_temp_critical_c) == (80, 92)
    assert (node.xid_lookback_s, node.xid_hold_s) == (3600, 0)


@pytest.mark.parametrize("checks", ["[ssh, gpu]", "[ssh, deep]"])
def test_with_deep_turns_the_deep_probe_on_once(checks: str) -> None:
    """`ugro check --deep` is `deep: true` plus `deep` in the checks, never listed twice."""
    text = f"workers:\n  - name: gpu1\n    ip: 10.0.0.1\n    checks: {checks}\n"
    [node] = config.parse_text(text, "cluster.yaml").nodes()
    deep = node.with_deep()
    assert deep.deep
    assert deep.checks.count("deep") == 1
    assert set(deep.checks) == {*node.checks, "deep"}
    assert not node.deep
