"""The root model: every section, and the sources it is filled from."""

from __future__ import annotations

from pathlib import Path

from pydantic import (
    Field,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from daemon.settings.base import (
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
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
from daemon.settings.trading import (
    ExecutionSettings,
    RiskSettings,
    StrategySettings,
    TradingSettings,
)


class Settings(BaseSettings):
    """All configuration of orderflowd.

    Constructing it directly (``Settings(ib={"port": 4002})``) reads no environment and no
    file; :func:`load_settings` is the one place that reads them.
    """

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
    )

    ib: IbSettings = Field(default_factory=IbSettings, description=IbSettings.__doc__)
    instrument: InstrumentSettings = Field(
        default_factory=InstrumentSettings, description=InstrumentSettings.__doc__
    )
    data: DataSettings = Field(default_factory=DataSettings, description=DataSettings.__doc__)
    flow: FlowSettings = Field(default_factory=FlowSettings, description=FlowSettings.__doc__)
    trading: TradingSettings = Field(
        default_factory=TradingSettings, description=TradingSettings.__doc__
    )
    strategy: StrategySettings = Field(
        default_factory=StrategySettings, description=StrategySettings.__doc__
    )
    risk: RiskSettings = Field(default_factory=RiskSettings, description=RiskSettings.__doc__)
    execution: ExecutionSettings = Field(
        default_factory=ExecutionSettings, description=ExecutionSettings.__doc__
    )
    logging: LoggingSettings = Field(
        default_factory=LoggingSettings, description=LoggingSettings.__doc__
    )
    paths: PathsSettings = Field(default_factory=PathsSettings, description=PathsSettings.__doc__)
    recording: RecordingSettings = Field(
        default_factory=RecordingSettings, description=RecordingSettings.__doc__
    )
    status: StatusSettings = Field(
        default_factory=StatusSettings, description=StatusSettings.__doc__
    )
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings, description=MetricsSettings.__doc__
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keep direct construction hermetic; load_settings passes its own sources.
        return (init_settings,)

    @property
    def log_file(self) -> Path | None:
        """``logging.file`` under ``paths.log_dir`` (an absolute ``logging.file`` stays as is)."""
        if self.logging.file is None:
            return None
        return self.paths.log_dir / self.logging.file
