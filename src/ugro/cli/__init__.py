"""The `ugro` command line: thin wrappers that load, call and show.

`main` (the console script `ugro = "ugro.cli:main"`) is the click group of `ugro.cli.app`;
each command group lives in its own module, imported when one of its commands is looked up
(`ugro.cli.app.COMMAND_MODULES`), so a command pays only for its own imports:

- `verdicts`: check, health
- `describe`: describe
- `setup`: init, config validate
- `configuration`: config show, config path
- `completion`: completion bash|zsh|fish
- `daemon`: daemon run|start|stop|status|install
- `metrics`: metrics
- `dashboard`: dashboard
- `history`: history
- `alerts`: alerts, alerts test
- `launch`: hosts, preflight
- `cordons`: cordon, uncordon

What they show is rendered by `ugro.cli.views`; what they decide is decided below the CLI.
Exit codes: `check` and `health` exit with the Nagios code of the worst node, `preflight` 0
when enough nodes are usable and 2 when not; all three exit 3 when no verdict is possible,
usage errors included (to a Nagios-style caller, 2 would read as "a node is down"). Other
commands exit 0 on success, 1 on failure, 2 on a usage error. No command prints a traceback.
"""

from ugro.cli.app import main

__all__ = ["main"]
