"""`ugro config show` (effective settings, secrets masked) and `ugro config path`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import yaml
from click.testing import CliRunner, Result

from alerting import MARKER
from ugro import cli

if TYPE_CHECKING:
    from pathlib import Path

#: Planted in every secret of the config; it must never be shown.
SECRET = MARKER

SINKS = f"""
alerts:
  sinks:
    - {{name: chat, type: apprise, urls: ["slack://T{SECRET}/B/C", "json://u:{SECRET}@h/p"]}}
    - name: hook
      type: webhook
      url: "https://user:{SECRET}@hooks.example.com/T/{SECRET}?token={SECRET}"
      headers: {{Authorization: "Bearer {SECRET}"}}
    - {{name: am, type: alertmanager, url: "http://am.example.com:9093/{SECRET}"}}
    - {{name: run, type: command, command: [/usr/bin/notify, --token, {SECRET}]}}
gpus: 8
workers:
  - {{name: gpu1, ip: 10.0.0.1}}
  - {{name: gpu2, ip: 10.0.0.2, gpus: 4, timeouts: {{torch: 45}}}}
"""


def ugro(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run the command line in this process."""
    return CliRunner().invoke(cli.main, list(args), env=env)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A cluster.yaml with secrets in every kind of sink and a worker that overrides."""
    path = tmp_path / "cluster.yaml"
    path.write_text(SINKS, encoding="utf-8")
    return path


def test_show_fills_in_defaults_and_resolves_workers(config: Path) -> None:
    """Every default is there; a worker inherits top-level settings unless it overrides them."""
    ran = ugro("--config", str(config), "config", "show")
    assert ran.exit_code == 0, ran.output
    shown = yaml.safe_load(ran.stdout)
    assert shown["source"] == str(config)
    assert shown["monitor"]["interval_s"] == 30
    gpu1, gpu2 = shown["workers"]
    assert (gpu1["name"], gpu1["gpus"], gpu1["timeouts"]["torch"]) == ("gpu1", 8, 30)
    assert (gpu2["name"], gpu2["gpus"], gpu2["timeouts"]["torch"]) == ("gpu2", 4, 45)
    assert list(gpu1)[:2] == ["name", "ip"]


@pytest.mark.parametrize("as_json", [False, True])
def test_show_masks_every_secret(config: Path, as_json: bool) -> None:
    """Sink URLs keep scheme and host only; header values and command arguments are hidden."""
    ran = ugro("--config", str(config), "config", "show", *(["--json"] if as_json else []))
    assert ran.exit_code == 0, ran.output
    assert SECRET not in ran.output
    shown = json.loads(ran.stdout) if as_json else yaml.safe_load(ran.stdout)
    chat, hook, am, run = shown["alerts"]["sinks"]
    assert chat["urls"] == ["slack://…", "json://…"]
    assert (hook["url"], hook["headers"]) == (
        "https://hooks.example.com/…",
        {"Authorization": "<hidden>"},
    )
    assert am["url"] == "http://am.example.com:9093/…"
    assert run["command"] == ["/usr/bin/notify", "<hidden>", "<hidden>"]


def test_show_without_a_file_is_the_embedded_default(isolated_home: Path) -> None:
    """No cluster.yaml at the default place: the local default, said as such."""
    ran = ugro("config", "show")
    assert ran.exit_code == 0, ran.output
    assert ran.stdout.startswith("# no cluster.yaml: the embedded default")
    shown = yaml.safe_load(ran.stdout)
    assert shown["source"] is None
    assert [w["transport"] for w in shown["workers"]] == ["local"]
    assert not (isolated_home / "cluster.yaml").exists()


def test_show_renders_hostile_values_as_data(tmp_path: Path) -> None:
    """An escape sequence or a bidirectional override in a value is shown inert."""
    path = tmp_path / "cluster.yaml"
    path.write_text(
        'workers:\n  - {name: gpu1, ip: 10.0.0.1, python: "py\\x1b[31m\\u202e3"}\n',
        encoding="utf-8",
    )
    ran = ugro("--config", str(path), "config", "show")
    assert ran.exit_code == 0, ran.output
    assert "\x1b" not in ran.stdout
    assert "\u202e" not in ran.stdout
    assert 'python: "py\\e[31m' in ran.stdout


def test_show_of_a_bad_config_says_what_is_wrong(tmp_path: Path) -> None:
    """A config that does not validate: the validation message and exit 1, no traceback."""
    path = tmp_path / "cluster.yaml"
    path.write_text("workers:\n  - {name: gpu1, ip: 10.0.0.1, checks: [tourch]}\n", "utf-8")
    ran = ugro("--config", str(path), "config", "show")
    assert ran.exit_code == 1
    assert "did you mean 'torch'?" in ran.stderr


def test_path_names_the_file_and_where_the_choice_came_from(
    config: Path, isolated_home: Path
) -> None:
    """--config, then $UGRO_CONFIG, then the default location; a named file must exist."""
    flag = ugro("--config", str(config), "config", "path")
    assert (flag.exit_code, flag.stdout, flag.stderr) == (0, f"{config}\n", "ugro: from --config\n")
    env = ugro("config", "path", env={"UGRO_CONFIG": str(config)})
    assert (env.exit_code, env.stdout, env.stderr) == (
        0,
        f"{config}\n",
        "ugro: from $UGRO_CONFIG\n",
    )
    default = ugro("config", "path")
    assert default.exit_code == 0
    assert default.stdout == f"{isolated_home / 'cluster.yaml'}\n"
    assert "there is no file there, so ugro checks this machine alone" in default.stderr
    missing = ugro("config", "path", env={"UGRO_CONFIG": str(config.parent / "nope.yaml")})
    assert missing.exit_code == 1
    assert missing.stdout == f"{config.parent / 'nope.yaml'}\n"
    assert "from $UGRO_CONFIG, but there is no such file" in missing.stderr
