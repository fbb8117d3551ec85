"""`ugro completion bash|zsh|fish`: the shell's completion script, node names from the config.

Completion is click's own: the script calls `ugro` back with `_UGRO_COMPLETE` set, and click
answers from the command tree. `complete_nodes` adds the names of the configured nodes to
the arguments that take one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ugro.cli.app import main
from ugro.errors import UgroError

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

SHELLS = ("bash", "zsh", "fish")
# The variable click reads to answer a completion request instead of running a command.
COMPLETE_VAR = "_UGRO_COMPLETE"


def complete_nodes(
    ctx: click.Context,
    param: click.Parameter,  # noqa: ARG001 - click's signature for `shell_complete`
    incomplete: str,
) -> list[CompletionItem]:
    """The configured nodes whose name starts with `incomplete`; none when the config is bad.

    The config is the one the command line names (`ugro --config X cordon <TAB>`), else the
    usual one. A broken config completes nothing: a shell prompt is no place for its errors.
    """
    from click.shell_completion import CompletionItem

    from ugro import config

    try:
        names = [node.name for node in config.load(ctx.find_root().params.get("config_path")).nodes]
    except (UgroError, OSError):
        return []
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]


@main.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    r"""Print the completion script for SHELL; node names complete from the config.

    \b
    bash: eval "$(ugro completion bash)"   (in ~/.bashrc)
    zsh:  eval "$(ugro completion zsh)"    (in ~/.zshrc)
    fish: ugro completion fish > ~/.config/fish/completions/ugro.fish
    """
    from click.shell_completion import BashComplete, FishComplete, ZshComplete

    kinds = {"bash": BashComplete, "zsh": ZshComplete, "fish": FishComplete}
    click.echo(kinds[shell](main, {}, "ugro", COMPLETE_VAR).source())
