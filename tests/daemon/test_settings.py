"""Settings: defaults, the shipped files, layer priority, refusals with readable messages."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values
from pydantic import BaseModel, ValidationError

from daemon.settings import (
    EX_CONFIG,
    LIVE_PORTS,
    PAPER_PORTS,
    ConfigError,
    Settings,
    effective_config,
    load_settings,
    mask_account,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
SHIPPED = CONFIG_DIR / "orderflowd.toml"
LIVE_EXAMPLE = CONFIG_DIR / "live.example.toml"
ENV_EXAMPLE = CONFIG_DIR / "orderflowd.env.example"


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The default config file and .env are looked up in the working directory.
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def load(**kwargs: Any) -> Settings:
    """load_settings with an empty environment and no .env unless a test gives them."""
    kwargs.setdefault("env", {})
    kwargs.setdefault("dotenv", None)
    return load_settings(**kwargs)


def refused(**kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load(**kwargs)
    return str(info.value)


# --- defaults and shipped files -----------------------------------------------------------------


def test_defaults() -> None:
    s = load()
    assert s == Settings()
    assert s.ib.host == "127.0.0.1"
    assert s.ib.port == "auto"
    assert s.ib.candidate_ports == PAPER_PORTS == (7497, 4002)
    assert LIVE_PORTS == (7496, 4001)
    assert s.ib.client_id == 1
    assert s.ib.fallback_client_ids == []
    assert s.ib.connect_timeout == 10
    assert s.ib.account == ""
    assert (s.instrument.symbol, s.instrument.exchange, s.instrument.currency) == (
        "ES",
        "CME",
        "USD",
    )
    assert s.instrument.roll_days_before_expiry == 8
    assert s.data.mode == "auto"
    assert (s.data.stale_after_s, s.data.reconnect_after_stale_s, s.data.quote_stale_s) == (
        30,
        90,
        5,
    )
    assert s.trading.mode == "paper"
    assert s.trading.enabled is False
    assert (s.logging.format, s.logging.level, s.logging.file) == ("auto", "INFO", None)
    assert (s.paths.state_dir, s.paths.log_dir) == (Path("state"), Path("logs"))
    assert s.status.interval_s == 1.0
    assert (s.metrics.enabled, s.metrics.host, s.metrics.port) == (True, "127.0.0.1", 9464)
    assert EX_CONFIG == 78


def test_shipped_toml_equals_defaults() -> None:
    assert load(config_file=SHIPPED) == load() == Settings()


def test_shipped_toml_lists_every_key() -> None:
    shipped = tomllib.loads(SHIPPED.read_text())
    assert shipped.keys() == Settings.model_fields.keys()
    for section, info in Settings.model_fields.items():
        assert info.annotation is not None
        assert shipped[section].keys() == info.annotation.model_fields.keys(), section


def test_every_field_is_described() -> None:
    models: list[type[BaseModel]] = [Settings]
    for info in Settings.model_fields.values():
        assert isinstance(info.annotation, type)
        models.append(info.annotation)
    for model in models:
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name}"


def test_default_config_file_is_read_from_working_directory(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    write(tmp_path / "config" / "orderflowd.toml", "[ib]\nclient_id = 5\n")
    assert load().ib.client_id == 5


def test_live_example_needs_the_flag() -> None:
    s = load(config_file=LIVE_EXAMPLE, live_flag=True)
    assert s.trading.mode == "live"
    assert s.ib.port in LIVE_PORTS
    assert not s.ib.account.startswith("DU")
    assert "--live" in refused(config_file=LIVE_EXAMPLE)


def test_env_example_is_valid_as_dotenv_and_as_environment() -> None:
    via_dotenv = load(dotenv=ENV_EXAMPLE)
    assert via_dotenv.ib.port == 4002
    assert via_dotenv.ib.fallback_client_ids == [2, 3]
    assert via_dotenv.logging.level == "DEBUG"
    values = {k: v for k, v in dotenv_values(ENV_EXAMPLE).items() if v is not None}
    assert load(env=values) == via_dotenv


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.ib = s.ib
    with pytest.raises(ValidationError):
        s.ib.port = 4002


def test_direct_construction_reads_no_file(tmp_path: Path) -> None:
    write(tmp_path / ".env", "ORDERFLOWD_IB__PORT=4002\n")
    (tmp_path / "config").mkdir()
    write(tmp_path / "config" / "orderflowd.toml", "[ib]\nclient_id = 5\n")
    assert Settings() == Settings(ib={"port": "auto", "client_id": 1})
    assert load_settings(env={}).ib.port == 4002


# --- priority -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        ({"toml", "dotenv", "env", "cli"}, 14),
        ({"toml", "dotenv", "env"}, 13),
        ({"toml", "dotenv"}, 12),
        ({"toml"}, 11),
        (set(), 1),
        ({"toml", "cli"}, 14),
        ({"dotenv", "cli"}, 14),
        ({"toml", "env"}, 13),
    ],
)
def test_priority_cli_env_dotenv_toml(tmp_path: Path, layers: set[str], expected: int) -> None:
    toml = write(tmp_path / "c.toml", "[ib]\nclient_id = 11\n")
    dotenv = write(tmp_path / "x.env", "ORDERFLOWD_IB__CLIENT_ID=12\n")
    s = load(
        config_file=toml if "toml" in layers else None,
        dotenv=dotenv if "dotenv" in layers else None,
        env={"ORDERFLOWD_IB__CLIENT_ID": "13"} if "env" in layers else {},
        overrides={"ib": {"client_id": 14}} if "cli" in layers else None,
    )
    assert s.ib.client_id == expected


def test_layers_merge_key_by_key(tmp_path: Path) -> None:
    toml = write(tmp_path / "c.toml", '[ib]\nhost = "10.0.0.2"\nclient_id = 11\n')
    dotenv = write(tmp_path / "x.env", "ORDERFLOWD_IB__CONNECT_TIMEOUT=3\n")
    s = load(
        config_file=toml,
        dotenv=dotenv,
        env={"ORDERFLOWD_IB__PORT": "4002", "PATH": "/bin", "HOME": "/root"},
        overrides={"ib": {"client_id": 14}},
    )
    assert (s.ib.host, s.ib.port, s.ib.client_id, s.ib.connect_timeout) == (
        "10.0.0.2",
        4002,
        14,
        3.0,
    )


def test_dotenv_in_working_directory_is_read_by_default(tmp_path: Path) -> None:
    write(tmp_path / ".env", "ORDERFLOWD_DATA__MODE=snapshot\n")
    assert load_settings(env={}).data.mode == "snapshot"


def test_nested_environment_names() -> None:
    s = load(
        env={
            "ORDERFLOWD_IB__PORT": "4002",
            "ORDERFLOWD_DATA__MODE": "tick_by_tick",
            "ORDERFLOWD_TRADING__ENABLED": "true",
            "ORDERFLOWD_IB__FALLBACK_CLIENT_IDS": "[2, 3]",
            "orderflowd_logging__level": "warning",
            "ORDERFLOWD_LOGGING__FILE": "day.log",
            "ORDERFLOWD_PATHS__LOG_DIR": "/var/log/orderflowd",
        }
    )
    assert s.ib.port == 4002
    assert s.ib.candidate_ports == (4002,)
    assert s.data.mode == "tick_by_tick"
    assert s.trading.enabled is True
    assert s.ib.fallback_client_ids == [2, 3]
    assert s.logging.level == "WARNING"
    assert s.log_file == Path("/var/log/orderflowd/day.log")


def test_cli_overrides_accept_dotted_keys() -> None:
    assert load(overrides={"ib.port": 4002, "data": {"mode": "snapshot"}}).ib.port == 4002


# --- refusals -----------------------------------------------------------------------------------


def test_unknown_key_in_toml(tmp_path: Path) -> None:
    toml = write(tmp_path / "c.toml", "[ib]\nprot = 4002\n")
    message = refused(config_file=toml)
    assert message == f"ib.prot: unknown key (did you mean ib.port?), got 4002 (from {toml})"


def test_unknown_section_in_toml(tmp_path: Path) -> None:
    toml = write(tmp_path / "c.toml", "[risks]\nmax_position = 2\n")
    assert refused(config_file=toml).startswith("risks: unknown key")


def test_unknown_orderflowd_environment_variable() -> None:
    message = refused(env={"ORDERFLOWD_IB__PROT": "4002", "UNRELATED": "x"})
    assert message == (
        "ib.prot: unknown setting (did you mean ORDERFLOWD_IB__PORT?), got '4002' "
        "(from ORDERFLOWD_IB__PROT)"
    )


def test_single_underscore_environment_variable_is_unknown() -> None:
    message = refused(env={"ORDERFLOWD_IB_PORT": "4002"})
    assert "ORDERFLOWD_IB_PORT" in message
    assert "ORDERFLOWD_IB__PORT" in message


def test_unknown_key_in_dotenv(tmp_path: Path) -> None:
    dotenv = write(tmp_path / "x.env", "ORDERFLOWD_DATA__MOOD=snapshot\n")
    message = refused(dotenv=dotenv)
    assert message.startswith("data.mood: unknown setting")
    assert f"(from ORDERFLOWD_DATA__MOOD in {dotenv})" in message


def test_unprefixed_key_in_dotenv(tmp_path: Path) -> None:
    dotenv = write(tmp_path / "x.env", "IB__PORT=4002\n")
    assert refused(dotenv=dotenv).startswith("IB__PORT: not an orderflowd setting")


def test_unknown_key_on_command_line() -> None:
    assert refused(overrides={"ib": {"clientid": 3}}) == (
        "ib.clientid: unknown key (did you mean ib.client_id?), got 3 (from the command line)"
    )


def test_port_not_a_number() -> None:
    assert refused(env={"ORDERFLOWD_IB__PORT": "abc"}) == (
        "ib.port: must be an integer 1..65535 or \"auto\", got 'abc' (from ORDERFLOWD_IB__PORT)"
    )


def test_port_out_of_range(tmp_path: Path) -> None:
    toml = write(tmp_path / "c.toml", "[ib]\nport = 70000\n")
    assert refused(config_file=toml) == (
        f'ib.port: must be an integer 1..65535 or "auto", got 70000 (from {toml})'
    )


def test_negative_client_id(tmp_path: Path) -> None:
    dotenv = write(tmp_path / "x.env", "ORDERFLOWD_IB__CLIENT_ID=-1\n")
    assert refused(dotenv=dotenv) == (
        "ib.client_id: must be greater than or equal to 0, got '-1' "
        f"(from ORDERFLOWD_IB__CLIENT_ID in {dotenv})"
    )


def test_bad_enum(tmp_path: Path) -> None:
    toml = write(tmp_path / "c.toml", '[data]\nmode = "fast"\n')
    assert refused(config_file=toml) == (
        f"data.mode: must be 'auto', 'tick_by_tick' or 'snapshot', got 'fast' (from {toml})"
    )


def test_reconnect_must_come_after_stale() -> None:
    message = refused(env={"ORDERFLOWD_DATA__STALE_AFTER_S": "120"})
    assert message.startswith("data.reconnect_after_stale_s: must be greater than")


def test_fallback_ids_must_not_repeat_client_id() -> None:
    message = refused(overrides={"ib": {"client_id": 2, "fallback_client_ids": [2]}})
    assert message.startswith("ib.fallback_client_ids: must not contain ib.client_id")


def test_every_problem_on_its_own_line(tmp_path: Path) -> None:
    toml = write(tmp_path / "c.toml", '[ib]\nport = 0\n[data]\nmode = "fast"\n')
    with pytest.raises(ConfigError) as info:
        load(config_file=toml, env={"ORDERFLOWD_NOPE": "1"})
    lines = str(info.value).splitlines()
    assert len(lines) == len(info.value.problems) == 3
    assert [line.split(":")[0] for line in lines] == ["nope", "ib.port", "data.mode"]


NON_FINITE_KEYS = [
    "risk.daily_loss_limit",  # inf turned the loss limit off
    "risk.max_messages_per_fill",
    "data.stale_after_s",
    "data.backfill_max_wait_s",
    "flow.imbalance_ratio",
    "flow.value_area",
    "flow.bar",  # a duration, parsed by our own validator
    "status.interval_s",
    "strategy.load_timeout_s",
    "ib.client_id",  # an integer
]


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
@pytest.mark.parametrize("key", NON_FINITE_KEYS)
def test_non_finite_numbers_are_refused_in_toml(tmp_path: Path, key: str, value: str) -> None:
    section, name = key.split(".")
    toml = write(tmp_path / "c.toml", f"[{section}]\n{name} = {value}\n")  # TOML floats
    assert refused(config_file=toml) == (
        f"{key}: must be a finite number, got {float(value)!r} (from {toml})"
    )


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity", "-NaN"])
@pytest.mark.parametrize(
    "key", ["risk.daily_loss_limit", "data.quote_stale_s", "flow.volume_gap_contracts"]
)
def test_non_finite_numbers_are_refused_from_environment_and_command_line(
    key: str, value: str
) -> None:
    name = "ORDERFLOWD_" + key.upper().replace(".", "__")
    assert refused(env={name: value}) == (
        f"{key}: must be a finite number, got {value!r} (from {name})"
    )
    assert refused(overrides={key: value}) == (
        f"{key}: must be a finite number, got {value!r} (from the command line)"
    )


def test_missing_config_file(tmp_path: Path) -> None:
    assert "not a file" in refused(config_file=tmp_path / "absent.toml")


def test_invalid_toml(tmp_path: Path) -> None:
    toml = write(tmp_path / "c.toml", "[ib\nport = 1\n")
    assert refused(config_file=toml).startswith(f"{toml}: invalid TOML")


# --- live guard ---------------------------------------------------------------------------------


@pytest.mark.parametrize("port", LIVE_PORTS)
def test_live_port_without_live_mode(port: int) -> None:
    message = refused(env={"ORDERFLOWD_IB__PORT": str(port)})
    assert message.startswith(f"ib.port: {port} is the ")
    assert 'set trading.mode = "live" in the config and pass --live' in message
    assert "(from ORDERFLOWD_IB__PORT)" in message


def test_live_port_with_flag_but_paper_mode() -> None:
    message = refused(overrides={"ib": {"port": 4001}}, live_flag=True)
    assert "--live was given but trading.mode is" in message
    assert "ib.port: 4001" in message


def test_live_mode_without_flag(tmp_path: Path) -> None:
    toml = write(tmp_path / "c.toml", '[trading]\nmode = "live"\n[ib]\nport = 4001\n')
    message = refused(config_file=toml)
    assert message.startswith('trading.mode: "live" also needs --live')
    assert f"(from {toml})" in message


def test_non_paper_account_without_live() -> None:
    message = refused(env={"ORDERFLOWD_IB__ACCOUNT": "U7654321"})
    assert message.startswith("ib.account: not a paper account")
    assert "'****4321'" in message
    assert "U7654321" not in message


def test_paper_account_is_accepted() -> None:
    assert load(env={"ORDERFLOWD_IB__ACCOUNT": "DU1234567"}).ib.account == "DU1234567"


def test_live_accepted_with_mode_flag_port_and_account(tmp_path: Path) -> None:
    toml = write(tmp_path / "c.toml", '[trading]\nmode = "live"\n[ib]\naccount = "U1234567"\n')
    s = load(config_file=toml, overrides={"ib": {"port": 4001}}, live_flag=True)
    assert (s.trading.mode, s.ib.port, s.ib.account) == ("live", 4001, "U1234567")


# --- effective config ---------------------------------------------------------------------------


def test_effective_config_masks_the_account() -> None:
    s = load(env={"ORDERFLOWD_IB__ACCOUNT": "DU1234567"})
    shown = effective_config(s)
    assert shown["ib"]["account"] == "*****4567"
    assert "DU1234567" not in repr(shown)
    assert shown["ib"]["port"] == "auto"
    assert shown["paths"]["state_dir"] == "state"
    assert effective_config(Settings())["ib"]["account"] == ""


@pytest.mark.parametrize(
    ("account", "masked"), [("DU1234567", "*****4567"), ("U123", "****"), ("", "")]
)
def test_mask_account(account: str, masked: str) -> None:
    assert mask_account(account) == masked


def test_the_instrument_is_one_of_the_family_and_its_exchange_follows_it() -> None:
    assert load().instrument.exchange == "CME"
    assert load(overrides={"instrument.symbol": "mym"}).instrument.exchange == "CBOT"
    assert load(overrides={"instrument.symbol": "M2K"}).instrument.exchange == "CME"
    chosen = load(overrides={"instrument.symbol": "ES", "instrument.exchange": "globex"})
    assert chosen.instrument.exchange == "GLOBEX"
    assert "instrument.symbol: 'CL' is not a supported future (supported: ES, MES, NQ, MNQ, " in (
        refused(overrides={"instrument.symbol": "CL"})
    )
