"""The layered loader: TOML, .env, environment and command line into `Settings`, with one
readable line per problem."""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, get_origin

from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    ValidationError,
)
from pydantic_settings import (
    InitSettingsSource,
)

from daemon.settings.base import (
    DEFAULT_CONFIG_FILE,
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    GATEWAY_PAPER_PORT,
    LIVE_PORTS,
    PAPER_ACCOUNT_PREFIX,
    PORT_NAMES,
    TWS_PAPER_PORT,
    is_paper_account,
    mask_account,
)
from daemon.settings.schema import (
    Settings,
)

# --- errors -------------------------------------------------------------------------------------


class ConfigError(Exception):
    """Configuration refused; ``str()`` is one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(" ".join(p.split()) for p in problems)
        super().__init__("\n".join(self.problems))


def _leaf_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and get_origin(ann) is None and issubclass(ann, BaseModel):
            yield from _leaf_paths(ann, (*prefix, name))
        else:
            yield (*prefix, name)


_LEAVES: Final = tuple(_leaf_paths(Settings))
_DOTTED: Final = tuple(".".join(p) for p in _LEAVES)


def env_name(path: tuple[str, ...]) -> str:
    """Environment variable for a setting path: ``("ib", "port")`` -> ``ORDERFLOWD_IB__PORT``."""
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(p.upper() for p in path)


_ENV_PATHS: Final = {env_name(p): p for p in _LEAVES}


def _suggest(dotted: str) -> str | None:
    leaf = dotted.rsplit(".", 1)[-1]
    same_leaf = [d for d in _DOTTED if d.rsplit(".", 1)[-1] == leaf]
    if len(same_leaf) == 1:
        return same_leaf[0]
    close = difflib.get_close_matches(dotted, _DOTTED, n=1, cutoff=0.6)
    return close[0] if close else None


def _show(path: tuple[str | int, ...], value: Any) -> str:
    if path[:2] == ("ib", "account") and isinstance(value, str):
        value = mask_account(value)
    return repr(value)


@dataclass
class _Layer:
    """One configuration layer: its values, and where each came from."""

    kind: Literal["cli", "env", "dotenv", "toml"]
    label: str
    data: dict[str, Any] = field(default_factory=dict)
    env_names: dict[tuple[str, ...], str] = field(default_factory=dict)

    def provides(self, loc: tuple[str | int, ...]) -> bool:
        node: Any = self.data
        for depth, key in enumerate(loc):
            if not isinstance(node, dict):
                return depth > 0
            if key not in node:
                return False
            node = node[key]
        return True

    def origin(self, loc: tuple[str | int, ...]) -> str:
        if self.kind == "cli":
            return "from the command line"
        if self.kind == "toml":
            return f"from {self.label}"
        name = next((n for p, n in self.env_names.items() if tuple(loc[: len(p)]) == p), self.label)
        return f"from {name}" if self.kind == "env" else f"from {name} in {self.label}"


def _origin(layers: list[_Layer], loc: tuple[str | int, ...]) -> str:
    for layer in layers:
        if layer.provides(loc):
            return layer.origin(loc)
    return "default"


def _env_layer(
    kind: Literal["env", "dotenv"], label: str, variables: Mapping[str, str | None]
) -> tuple[_Layer, list[str]]:
    """Turn ``ORDERFLOWD_*`` variables into nested values; unknown names are problems."""
    layer = _Layer(kind, label)
    problems: list[str] = []
    where = "" if kind == "env" else f" in {label}"
    for name, value in variables.items():
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX):
            if kind == "dotenv":
                problems.append(
                    f"{name}: not an orderflowd setting (names start with {ENV_PREFIX}), "
                    f"got {value!r} (from {label})"
                )
            continue
        path = _ENV_PATHS.get(upper)
        if path is None:
            rest = upper[len(ENV_PREFIX) :]
            dotted = ".".join(rest.lower().split(ENV_NESTED_DELIMITER))
            guess = _suggest(dotted)
            hint = f" (did you mean {env_name(tuple(guess.split('.')))}?)" if guess else ""
            if dotted in Settings.model_fields:
                hint = f" (set one key at a time: {env_name((dotted,))}{ENV_NESTED_DELIMITER}KEY)"
            problems.append(f"{dotted}: unknown setting{hint}, got {value!r} (from {name}{where})")
            continue
        section: Any = layer.data
        for key in path[:-1]:
            section = section.setdefault(key, {})
        section[path[-1]] = "" if value is None else value
        layer.env_names[path] = name
    return layer, problems


def _expand_dotted(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``{"ib.port": 1}`` -> ``{"ib": {"port": 1}}``; nested dicts pass through."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = out
        for parent in parents:
            node = node.setdefault(parent, {})
        if isinstance(value, Mapping) and isinstance(node.get(leaf), dict):
            node[leaf].update(_expand_dotted(value))
        else:
            node[leaf] = _expand_dotted(value) if isinstance(value, Mapping) else value
    return out


def _describe(error: Any, layers: list[_Layer]) -> str:
    loc = tuple(error["loc"])
    dotted = ".".join(str(p) for p in loc)
    origin = _origin(layers, loc)
    got = _show(loc, error.get("input"))
    kind = error["type"]
    if kind == "extra_forbidden":
        guess = _suggest(dotted)
        hint = f" (did you mean {guess}?)" if guess else ""
        return f"{dotted}: unknown key{hint}, got {got} ({origin})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{dotted}: must be a table of settings, got {got} ({origin})"
    msg = str(error["msg"]).removeprefix("Value error, ")
    msg = msg.replace("Input should be", "must be", 1)
    return f"{dotted}: {msg}, got {got} ({origin})"


def _live_problems(settings: Settings, live_flag: bool, layers: list[_Layer]) -> list[str]:
    """Non-negotiable 5: live ports and non-paper accounts only on purpose, twice."""
    problems: list[str] = []
    how = 'set trading.mode = "live" in the config and pass --live'
    live_mode = settings.trading.mode == "live"
    mode_origin = _origin(layers, ("trading", "mode"))
    if live_mode and not live_flag:
        problems.append(
            'trading.mode: "live" also needs --live on the command line; pass --live, '
            f"or set trading.mode = \"paper\", got 'live' ({mode_origin})"
        )
    if live_flag and not live_mode:
        problems.append(
            f'trading.mode: --live was given but trading.mode is "paper"; set trading.mode = '
            f"\"live\" to trade live, or drop --live, got 'paper' ({mode_origin})"
        )
    if live_mode:
        return problems
    port = settings.ib.port
    if isinstance(port, int) and port in LIVE_PORTS:
        problems.append(
            f"ib.port: {port} is the {PORT_NAMES[port]} port; to trade live {how}, otherwise "
            f"use a paper port ({TWS_PAPER_PORT} TWS, {GATEWAY_PAPER_PORT} IB Gateway), "
            f"got {port} ({_origin(layers, ('ib', 'port'))})"
        )
    account = settings.ib.account
    if account and not is_paper_account(account):
        problems.append(
            f"ib.account: not a paper account (paper accounts start with "
            f'"{PAPER_ACCOUNT_PREFIX}"); to trade it live {how}, '
            f"got {mask_account(account)!r} ({_origin(layers, ('ib', 'account'))})"
        )
    return problems


# --- loading ------------------------------------------------------------------------------------


def _toml_layer(config_file: Path | None) -> tuple[_Layer | None, list[str]]:
    explicit = config_file is not None
    path = config_file if config_file is not None else DEFAULT_CONFIG_FILE
    if not explicit and not path.exists():
        return None, []
    if not path.is_file():
        return None, [f"--config: not a file: {path}"]
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        return None, [f"{path}: invalid TOML: {exc}"]
    except OSError as exc:
        return None, [f"{path}: cannot read: {exc.strerror}"]
    return _Layer("toml", str(path), data), []


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    live_flag: bool = False,
    env: Mapping[str, str] | None = None,
    dotenv: Path | None = Path(".env"),
) -> Settings:
    """Load settings from all layers; raise :class:`ConfigError` listing every problem.

    ``config_file`` None means ``config/orderflowd.toml`` if it exists. ``overrides`` are the
    command line's values as a nested dict (dotted keys are accepted too). ``live_flag`` is
    ``--live``. ``env`` defaults to ``os.environ``; ``dotenv`` None skips the ``.env`` file.
    """
    if env is None:
        env = os.environ
    problems: list[str] = []

    toml, toml_problems = _toml_layer(config_file)
    problems += toml_problems
    dotenv_vars: Mapping[str, str | None] = {}
    if dotenv is not None and dotenv.is_file():
        dotenv_vars = dotenv_values(dotenv, interpolate=False)
    dotenv_layer, dotenv_problems = _env_layer("dotenv", str(dotenv or ".env"), dotenv_vars)
    env_layer, env_problems = _env_layer("env", "environment", env)
    problems += dotenv_problems + env_problems
    cli = _Layer("cli", "command line", _expand_dotted(overrides or {}))

    layers = [cli, env_layer, dotenv_layer, *([toml] if toml else [])]
    # Highest priority first; pydantic-settings deep-merges them. Every layer was read once
    # above, so the values validated are exactly the ones errors are attributed to.
    sources = tuple(InitSettingsSource(Settings, layer.data) for layer in layers)
    try:
        # _build_sources is BaseSettings' documented hook for pre-built sources; without the
        # pydantic mypy plugin the synthesized __init__ does not show it.
        settings = Settings(_build_sources=(sources, {}))  # type: ignore[call-arg]
    except ValidationError as exc:
        problems += [_describe(error, layers) for error in exc.errors()]
        raise ConfigError(problems) from None
    problems += _live_problems(settings, live_flag, layers)
    if problems:
        raise ConfigError(problems)
    return settings


def effective_config(settings: Settings) -> dict[str, Any]:
    """Settings as plain JSON-able data, with the account id masked."""
    data = settings.model_dump(mode="json")
    data["ib"]["account"] = mask_account(settings.ib.account)
    return data
