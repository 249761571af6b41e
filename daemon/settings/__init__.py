"""The one typed configuration of orderflowd, and the layered loader that fills it.

Priority, highest first: command line > environment (``ORDERFLOWD_SECTION__KEY``) > ``.env``
file > TOML file (``--config``, default ``config/orderflowd.toml``) > defaults. Unknown keys are
errors in every layer, and live trading needs ``trading.mode = "live"`` *and* ``--live``.

The package imports nothing from the rest of ``daemon`` but the pure family table
(`daemon.core.instrument`): `base` (constants, field types),
`market`, `trading`, `runtime` (the sections), `schema` (the root model), `loader`.
"""

from daemon.settings.base import (
    DEFAULT_CONFIG_FILE,
    DEFAULT_WINDOW_TZ,
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    EX_CONFIG,
    GATEWAY_LIVE_PORT,
    GATEWAY_PAPER_PORT,
    LIVE_PORTS,
    PAPER_ACCOUNT_PREFIX,
    PAPER_PORTS,
    PORT_NAMES,
    TWS_LIVE_PORT,
    TWS_PAPER_PORT,
    BarSeconds,
    Port,
    Seconds,
    UserPath,
    is_paper_account,
    mask_account,
    parse_duration,
    parse_window,
)
from daemon.settings.loader import (
    ConfigError,
    effective_config,
    env_name,
    load_settings,
)
from daemon.settings.market import (
    DataSettings,
    FlowSettings,
    IbSettings,
    InstrumentSettings,
)
from daemon.settings.runtime import (
    LoggingSettings,
    MetricsSettings,
    PathsSettings,
    RecordingSettings,
    StatusSettings,
)
from daemon.settings.schema import (
    Settings,
)
from daemon.settings.trading import (
    ExecutionSettings,
    RiskSettings,
    StrategySettings,
    TradingSettings,
)

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "DEFAULT_WINDOW_TZ",
    "ENV_NESTED_DELIMITER",
    "ENV_PREFIX",
    "EX_CONFIG",
    "GATEWAY_LIVE_PORT",
    "GATEWAY_PAPER_PORT",
    "LIVE_PORTS",
    "PAPER_ACCOUNT_PREFIX",
    "PAPER_PORTS",
    "PORT_NAMES",
    "TWS_LIVE_PORT",
    "TWS_PAPER_PORT",
    "BarSeconds",
    "ConfigError",
    "DataSettings",
    "ExecutionSettings",
    "FlowSettings",
    "IbSettings",
    "InstrumentSettings",
    "LoggingSettings",
    "MetricsSettings",
    "PathsSettings",
    "Port",
    "RecordingSettings",
    "RiskSettings",
    "Seconds",
    "Settings",
    "StatusSettings",
    "StrategySettings",
    "TradingSettings",
    "UserPath",
    "effective_config",
    "env_name",
    "is_paper_account",
    "load_settings",
    "mask_account",
    "parse_duration",
    "parse_window",
]
