"""`ugro daemon install`, the unit it writes, and the template kept in the repository."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from conftest import REPO, run_ugro
from ugro.daemon import service
from ugro.errors import UgroError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

REPO_UNIT = REPO / "systemd" / "ugro-monitor.service"


def without_exec_start(text: str) -> list[str]:
    """The unit's lines other than ExecStart."""
    return [line for line in text.splitlines() if not line.startswith("ExecStart=")]


def test_repo_template_is_the_installed_unit() -> None:
    """systemd/ugro-monitor.service differs from what install writes only in ExecStart."""
    rendered = service.render_unit([sys.executable, "-m", "ugro", "daemon", "run"])
    assert without_exec_start(REPO_UNIT.read_text()) == without_exec_start(rendered)
    assert "ExecStart=%h/.local/bin/ugro daemon run" in REPO_UNIT.read_text()


@pytest.fixture
def config_home(tmp_path: Path) -> Path:
    """An empty XDG_CONFIG_HOME."""
    home = tmp_path / "xdg-config"
    home.mkdir()
    return home


@pytest.mark.integration
def test_install_writes_a_notify_unit_for_this_installation(
    config_home: Path, tmp_path: Path
) -> None:
    """The user unit runs this Python's ugro with the chosen config."""
    config = tmp_path / "cluster.yaml"
    config.write_text("workers: [{name: a, ip: 10.0.0.1}]\n")
    ran = run_ugro(
        "--config", config, "daemon", "install", env={"XDG_CONFIG_HOME": str(config_home)}
    )
    assert ran.code == 0, ran.err
    unit = config_home / "systemd" / "user" / "ugro-monitor.service"
    text = unit.read_text()
    assert f"ExecStart={sys.executable} -m ugro --config {config} daemon run" in text
    for line in ("Type=notify", "Restart=on-failure", "RestartSec=5", "WatchdogSec=60"):
        assert line in text.splitlines()
    assert f"wrote {unit}" in ran.out
    assert "enable-linger" in ran.out


@pytest.mark.integration
def test_without_a_user_manager_install_says_what_to_run(config_home: Path) -> None:
    """With no reachable user manager, install explains the systemctl commands to run."""
    ran = run_ugro(
        "daemon",
        "install",
        env={
            "XDG_CONFIG_HOME": str(config_home),
            "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent",
        },
    )
    assert ran.code == 0
    assert (
        "systemctl --user daemon-reload && systemctl --user enable --now ugro-monitor.service"
        in ran.out
    )


def answer(lingering: bool | None) -> Callable[[], bool | None]:
    """A stand-in for asking loginctl, which has no user session to ask here."""
    return lambda: lingering


def test_linger_advice_only_when_lingering_is_not_on(
    config_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The enable-linger advice is given when lingering is off or unknown, not when it is on."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    for lingering, advised in ((True, False), (False, True), (None, True)):
        assert service.install(None, linger=answer(lingering)) == 0
        assert ("enable-linger" in capsys.readouterr().out) is advised


@pytest.mark.integration
def test_installed_unit_passes_systemd_analyze_verify(config_home: Path) -> None:
    """The installed unit passes `systemd-analyze verify` without a warning."""
    run_ugro("daemon", "install", env={"XDG_CONFIG_HOME": str(config_home)})
    unit = config_home / "systemd" / "user" / "ugro-monitor.service"
    done = subprocess.run(
        ["/usr/bin/systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("word", "quoted"),
    [
        ("/usr/bin/python3", "/usr/bin/python3"),
        ("/opt/my env/python", '"/opt/my env/python"'),
        ("/home/u/100%/c.yaml", '"/home/u/100%%/c.yaml"'),
        ("/home/$USER/c.yaml", '"/home/$$USER/c.yaml"'),
        ('/a"b\\c', '"/a\\"b\\\\c"'),
        ("it's", '"it\'s"'),
    ],
)
def test_unit_words_follow_systemds_quoting(word: str, quoted: str) -> None:
    """Arguments are quoted by systemd.service(5)'s rules: specifiers and variables doubled."""
    assert service.systemd_word(word) == quoted


@pytest.mark.parametrize("word", ["/a\nExecStartPre=/bin/evil", "/a\tb", "/a\x7fb", ";"])
def test_unit_words_systemd_cannot_carry_are_refused(word: str) -> None:
    """A newline (a new directive), another control character or a lone ';' is refused."""
    with pytest.raises(UgroError, match="cannot write"):
        service.render_unit([sys.executable, "--config", word])
