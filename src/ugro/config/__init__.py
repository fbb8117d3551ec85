"""cluster.yaml → validated, resolved node settings; every problem reported at once, by line.

Defaults are set once at top level and overridden per worker. Validation happens here and
only here: the rest of ugro trusts a `Worker`.

`settings` holds the pydantic models (what each key means); `loader` finds and reads the file
and reports what is wrong with it. The names other code uses are re-exported here.
"""

from ugro.config.loader import Config, load, local_default, parse_file, parse_text
from ugro.config.settings import (
    ALL_CHECKS,
    CORE_CHECKS,
    DEFAULT_CHECKS,
    EXPORTER_PORT,
    GPU_HEALTH_CHECKS,
    LOCAL_CHECKS,
    AlertSettings,
    CheckName,
    ClusterConfig,
    ExporterSettings,
    HistorySettings,
    Master,
    MonitorSettings,
    NodeSettings,
    PrometheusSettings,
    RecoveryAction,
    RecoverySettings,
    ShardSettings,
    SinkSettings,
    SinkType,
    SlurmSettings,
    Timeouts,
    Worker,
)

__all__ = [
    "ALL_CHECKS",
    "CORE_CHECKS",
    "DEFAULT_CHECKS",
    "EXPORTER_PORT",
    "GPU_HEALTH_CHECKS",
    "LOCAL_CHECKS",
    "AlertSettings",
    "CheckName",
    "ClusterConfig",
    "Config",
    "ExporterSettings",
    "HistorySettings",
    "Master",
    "MonitorSettings",
    "NodeSettings",
    "PrometheusSettings",
    "RecoveryAction",
    "RecoverySettings",
    "ShardSettings",
    "SinkSettings",
    "SinkType",
    "SlurmSettings",
    "Timeouts",
    "Worker",
    "load",
    "local_default",
    "parse_file",
    "parse_text",
]
