"""`ugro completion bash|zsh|fish`: click's completion, with node names from the config."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ugro import cli

CLUSTER = "workers:\n  - {name: gpu1, ip: 10.0.0.1}\n  - {name: gpu2, ip: 10.0.0.2}\n"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A cluster.yaml of two workers, gpu1 and gpu2."""
    path = tmp_path / "cluster.yaml"
    path.write_text(CLUSTER, encoding="utf-8")
    return path


def complete(line: str, kind: str = "bash", env: dict[str, str] | None = None) -> Result:
    """Ask `ugro` what completes the last word of `line`, as the `kind` shell's script does."""
    words = line.split(" ")
    protocol = {
        "_UGRO_COMPLETE": f"{kind}_complete",
        "COMP_WORDS": line,
        "COMP_CWORD": str(len(words) - 1),
        **(env or {}),
    }
    return CliRunner().invoke(cli.main, [], env=protocol, prog_name="ugro")


def test_node_names_complete_from_the_config(config: Path) -> None:
    """`ugro --config X cordon g<TAB>` offers the configured nodes that start with g."""
    ran = complete(f"ugro --config {config} cordon g")
    assert ran.exit_code == 0, ran.output
    assert ran.stdout.splitlines() == ["plain,gpu1", "plain,gpu2"]
    assert complete(f"ugro --config {config} uncordon gpu2").stdout == "plain,gpu2\n"
    assert complete(f"ugro --config {config} history x").stdout.strip() == ""


def test_the_config_comes_from_the_environment_too(config: Path) -> None:
    """With $UGRO_CONFIG set, no --config is needed on the line; zsh speaks its own protocol."""
    ran = complete("ugro cordon ", kind="zsh", env={"UGRO_CONFIG": str(config)})
    assert ran.exit_code == 0, ran.output
    assert ran.stdout.splitlines() == ["plain", "gpu1", "_", "plain", "gpu2", "_"]


def test_a_broken_config_completes_nothing(tmp_path: Path) -> None:
    """A config that does not load offers no names and no error: a prompt is no place for it."""
    bad = tmp_path / "cluster.yaml"
    bad.write_text("workers: [{name: gpu1}]\n", encoding="utf-8")
    for config in (bad, tmp_path / "missing.yaml"):
        ran = complete(f"ugro --config {config} cordon g")
        assert (ran.exit_code, ran.output.strip()) == (0, "")


def test_commands_and_shells_complete_too() -> None:
    """Subcommands complete as click knows them, and so do the shells of `completion`."""
    assert "plain,completion" in complete("ugro comp").stdout
    assert complete("ugro completion f").stdout == "plain,fish\n"


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _ugro_completion ugro"),
        ("zsh", "compdef _ugro_completion ugro"),
        ("fish", "complete --no-files --command ugro"),
    ],
)
def test_completion_prints_the_shells_script(shell: str, marker: str) -> None:
    """Each script calls ugro back through `_UGRO_COMPLETE`, the variable click answers."""
    ran = CliRunner().invoke(cli.main, ["completion", shell])
    assert ran.exit_code == 0, ran.output
    assert marker in ran.stdout
    assert "_UGRO_COMPLETE" in ran.stdout


def test_an_unknown_shell_is_a_usage_error() -> None:
    """`ugro completion tcsh` names the shells there are, exit 2."""
    ran = CliRunner().invoke(cli.main, ["completion", "tcsh"])
    assert ran.exit_code == 2
    assert "'bash', 'zsh', 'fish'" in ran.stderr


@pytest.mark.integration
def test_bash_completes_node_names_with_the_script(config: Path) -> None:
    """In a real bash, the script from `ugro completion bash` completes node names."""
    bash = shutil.which("bash")
    assert bash is not None
    script = (
        'eval "$(ugro completion bash)"\n'
        "COMP_WORDS=(ugro cordon g); COMP_CWORD=2\n"
        "_ugro_completion ugro g ugro\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    # The `ugro` of this environment, first on PATH, as after `pip install`.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path, "UGRO_CONFIG": str(config)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["gpu1", "gpu2"]
