"""The `ugro` click group, and what every command module shares.

Command modules (`ugro.cli.verdicts`, `ugro.cli.launch`, ...) add their commands to `main`
when they are imported; `ugro.cli` imports them all. Heavy modules (asyncssh, pydantic, YAML,
rich) are imported inside the commands that need them, so `ugro health` starts instantly.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from ugro.errors import UgroError
from ugro.text import LineFormatter, printable

if TYPE_CHECKING:
    from collections.abc import Callable

    from ugro.config import Config
    from ugro.store.cordons import CordonStore
    from ugro.store.state import StateStore

F = TypeVar("F", bound="Callable[..., Any]")

# The Nagios code of a command that could not reach a verdict (UNKNOWN).
NO_VERDICT = 3
# The exit status when the reader closed stdout (`ugro health --json | head -1`): what a shell
# reports for git or any program SIGPIPE ends (128 + 13), so `set -o pipefail` sees the same.
READER_GONE = 141
NO_DATA = "no health data yet: run `ugro check`, or start the monitor with `ugro daemon start`"


def fail(message: str, code: int) -> NoReturn:
    """Say what went wrong on stderr and exit `code`.

    The message may quote a node or a file: it is shown printable, and a line of its own
    after the first is indented, so that every line at the margin is one of ugro's.
    """
    shown = printable(message, multiline=True).replace("\n", "\n  ")
    click.echo(f"ugro: {shown}", err=True)
    sys.exit(code)


def reader_gone() -> NoReturn:
    """End quietly, as `git log | head` does, because whoever read stdout closed it."""
    # Python flushes stdout again at exit: pointed at /dev/null, that flush cannot fail.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    sys.exit(READER_GONE)


def errors_exit(code: int) -> Callable[[F], F]:
    """Turn ugro's errors into one line on stderr and exit `code`; never a traceback.

    A closed stdout ends the command quietly (`reader_gone`).
    """

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 - passes click's values through
            try:
                try:
                    return command(*args, **kwargs)
                finally:
                    # Output still buffered would otherwise meet the closed pipe at exit.
                    sys.stdout.flush()
            except BrokenPipeError:
                reader_gone()
            except click.ClickException:
                raise
            except UgroError as exc:
                fail(str(exc), code)
            except KeyboardInterrupt:
                fail("interrupted", 130)
            except Exception as exc:  # noqa: BLE001 - the promise is: never a traceback
                fail(f"internal error: {type(exc).__name__}: {exc} (please report this)", code)

        return wrapper  # type: ignore[return-value]

    return decorate


CONFIG_HELP = "cluster.yaml to use [default: $UGRO_CONFIG, then ~/.config/ugro/cluster.yaml]."


def _config_given(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    """`--config` given after a command: it overrides what the group was given, for that command."""
    if value is not None:
        ctx.obj = value


#: The module of `ugro.cli` that defines each command. A command's module is imported when
#: the command is looked up (run, or listed by --help), so `ugro health` loads its own
#: module and not the other eleven. A new command module is listed here.
COMMAND_MODULES: dict[str, str] = {
    "alerts": "alerts",
    "check": "verdicts",
    "completion": "completion",
    "config": "setup",
    "cordon": "cordons",
    "daemon": "daemon",
    "dashboard": "dashboard",
    "describe": "describe",
    "health": "verdicts",
    "history": "history",
    "hosts": "launch",
    "init": "setup",
    "metrics": "metrics",
    "preflight": "launch",
    "uncordon": "cordons",
}


class ConfigGroup(click.Group):
    """A group whose every command also takes `--config`, after the command's name.

    `ugro health --config X` means `ugro --config X health`, and so does `$UGRO_CONFIG`
    (the group's option reads it). The top group finds its commands in `COMMAND_MODULES`.
    """

    # Subgroups (`ugro daemon`, ...) are ConfigGroups too, so their commands take it as well.
    group_class = type

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, imported or not."""
        lazy = COMMAND_MODULES if self is main else {}
        return sorted({*super().list_commands(ctx), *lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command `cmd_name`, importing the module that defines it first."""
        module = COMMAND_MODULES.get(cmd_name)
        if self is main and cmd_name not in self.commands and module:
            import importlib

            importlib.import_module(f"ugro.cli.{module}")
        return super().get_command(ctx, cmd_name)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Register `cmd` with a `--config` of its own."""
        if not any(param.name == "config_path" for param in cmd.params):
            cmd.params.append(
                click.Option(
                    ["--config", "config_path"],
                    type=click.Path(path_type=Path),
                    expose_value=False,
                    callback=_config_given,
                    help=CONFIG_HELP,
                )
            )
        super().add_command(cmd, name)


@click.group(cls=ConfigGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    envvar="UGRO_CONFIG",
    help=CONFIG_HELP,
)
@click.version_option(package_name="ugro", prog_name="ugro")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """Tell which nodes of a GPU cluster can train, and why the others cannot."""
    # What the layers below log while a command runs may quote nodes: one line each, printable.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter("ugro: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    ctx.obj = config_path


def load_config(ctx: click.Context) -> Config:
    """The config named by `--config` (kept in the context), else the default one."""
    from ugro import config

    return config.load(ctx.obj)


def state_store() -> StateStore:
    """The state file's store."""
    from ugro import paths
    from ugro.store.state import StateStore

    return StateStore(paths.state_file())


def cordon_store() -> CordonStore:
    """The cordons' store."""
    from ugro.store.cordons import CordonStore

    return CordonStore()


class NoVerdictUsageError(click.UsageError):
    """A usage error of a command that reports health (`check`, `health`, `preflight`)."""

    exit_code = NO_VERDICT


class VerdictCommand(click.Command):
    """A command that reports health: its usage errors exit 3 (UNKNOWN), as a Nagios plugin's do.

    To a Nagios-style caller, click's usual 2 would read as "a node is down".
    """

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,  # noqa: ANN401 - click's own signature
    ) -> click.Context:
        """Parse arguments; a usage error means no verdict."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            # Chained: the original names click's own error class (NoSuchOption, ...), and
            # click shows only the message either way.
            raise NoVerdictUsageError(exc.message, exc.ctx) from exc
