"""What `ugro config show` shows: the effective settings, defaults filled in, secrets masked.

The config holds credentials (DESIGN §10): an Apprise URL's tokens, a webhook's path and
query, an Authorization header, a sink command's arguments. They are shown as the rest of
ugro shows them in messages (`ugro.alerts.posting.redact`), never in full.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ugro.text import printable

if TYPE_CHECKING:
    from ugro.config import Config, SinkSettings, Worker

JSON_SCHEMA_VERSION = 1
# What stands for a secret value; its key stays, so the reader sees that it is set.
HIDDEN = "<hidden>"


def document(cfg: Config) -> dict[str, Any]:
    """The effective config as data: each section with its defaults, each worker resolved."""
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "source": str(cfg.source) if cfg.source else None,
        "monitor": cfg.monitor.model_dump(mode="json"),
        "exporter": cfg.exporter.model_dump(mode="json"),
        "history": cfg.history.model_dump(mode="json"),
        "alerts": {
            **cfg.alerts.model_dump(mode="json", exclude={"sinks"}),
            "sinks": [masked(sink) for sink in cfg.alerts.sinks],
        },
        "scheduler": cfg.scheduler,
        "slurm": cfg.slurm.model_dump(mode="json"),
        "recovery": cfg.recovery.model_dump(mode="json"),
        "workers": [_worker(worker) for worker in cfg.nodes],
    }


def _worker(worker: Worker) -> dict[str, Any]:
    """A worker's resolved settings, its name and address first."""
    settings = worker.model_dump(mode="json")
    return {"name": settings.pop("name"), "ip": settings.pop("ip"), **settings}


def masked(sink: SinkSettings) -> dict[str, Any]:
    """A sink's settings with its URLs redacted, its header values and command arguments hidden."""
    from ugro.alerts.posting import redact

    shown = sink.model_dump(mode="json")
    shown["urls"] = [redact(url) for url in sink.urls]
    shown["url"] = redact(sink.url) if sink.url else None
    shown["headers"] = dict.fromkeys(sink.headers, HIDDEN)
    if sink.command:
        shown["command"] = [sink.command[0], *[HIDDEN] * (len(sink.command) - 1)]
    return shown


def as_yaml(data: dict[str, Any]) -> str:
    """The document as YAML, the way cluster.yaml is written; safe on a terminal.

    PyYAML writes a string with a control character (an escape sequence, a line break) as a
    quoted string with escapes; `printable` then takes out what YAML counts as printable but
    a terminal acts on (bidirectional overrides).
    """
    import yaml

    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return printable(text, multiline=True)
