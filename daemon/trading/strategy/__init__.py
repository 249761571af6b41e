"""Strategies: the protocol, and the loader that builds the configured one.

``strategy.path`` names a class, ``"package.module:ClassName"``. The class satisfies
:class:`Strategy`, carries its parameters as ``Params`` (a pydantic model, every field with a
default and a description) and is constructed as ``cls(params, flow_settings)``. A constructor
may refuse a combination of parameters and flow settings by raising ``ValueError("name:
problem")``; the loader reports it as ``strategy.params.name: problem``.

Importing the module and constructing the class run strategy code: each runs in a daemon thread
within ``strategy.load_timeout_s``, so that a module that calls ``sys.exit()``, raises
``KeyboardInterrupt`` or loops at import is a configuration error naming the path, never a
silent exit or a hang. A real Ctrl-C still interrupts the wait.
"""

from __future__ import annotations

import difflib
import importlib
import math
import re
import threading
from collections.abc import Callable
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from daemon.settings import ConfigError, FlowSettings, StrategySettings
from daemon.trading.strategy.base import Strategy

__all__ = ["Strategy", "StrategyError", "load_strategy", "params_doc"]

_PATH: Final = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
_METHODS: Final = ("on_bar", "on_trade")

_T = TypeVar("_T")


class StrategyError(ConfigError):
    """The configured strategy was refused; ``str()`` is one line per problem, naming the key."""


def load_strategy(settings: StrategySettings, flow: FlowSettings) -> Strategy:
    """Import ``settings.path``, validate ``settings.params`` with its ``Params``, construct it.

    Raises :class:`StrategyError` naming every problem found.
    """
    path = settings.path
    limit = settings.load_timeout_s
    cls = _import_class(path, limit)
    params_model = _params_model(cls, path)
    params = _validate(params_model, settings.params)
    try:
        strategy = _guarded(lambda: cls(params, flow), f"constructing {path!r}", limit)
    except StrategyError:
        raise
    except ValueError as exc:
        raise StrategyError([_constructor_problem(str(exc), params_model)]) from None
    except Exception as exc:
        problem = f"strategy.path: constructing {path!r} failed: {type(exc).__name__}: {exc}"
        raise StrategyError([problem]) from None
    if not isinstance(strategy, Strategy):
        missing = "wants_trades" if not hasattr(strategy, "wants_trades") else "a protocol member"
        raise StrategyError([f"strategy.path: {path!r} is not a Strategy: no {missing}"])
    return strategy


def params_doc(cls: type[Any]) -> list[tuple[str, object, str]]:
    """(name, default, description) of each parameter of a strategy class, in order.

    A parameter without a default shows ``None``; one without a description shows ``""``.
    """
    model = _params_model(cls, cls.__qualname__)
    rows: list[tuple[str, object, str]] = []
    for name, info in model.model_fields.items():
        default = info.get_default(call_default_factory=True)
        rows.append(
            (name, None if default is PydanticUndefined else default, info.description or "")
        )
    return rows


# --- steps ---------------------------------------------------------------------------------------


def _guarded(call: Callable[[], _T], what: str, limit_s: float) -> _T:
    """``call()`` in a daemon thread, waited for at most *limit_s* seconds.

    An ``Exception`` it raises is re-raised here; any other ``BaseException`` (``SystemExit``,
    a ``KeyboardInterrupt`` raised by strategy code, ...) and overrunning the limit become a
    :class:`StrategyError`. A thread that overruns cannot be stopped: it is left behind, and
    the command exits on the error.
    """
    results: list[_T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(call())
        except BaseException as exc:  # strategy code must not end or stop the daemon
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"strategy: {what}", daemon=True)
    thread.start()
    thread.join(limit_s)  # a real Ctrl-C raises KeyboardInterrupt here, in the main thread
    if results:
        return results[0]
    if not errors:
        raise StrategyError(
            [
                f"strategy.path: {what} did not finish within strategy.load_timeout_s = "
                f"{limit_s:g} s (a loop or a blocking call?)"
            ]
        )
    error = errors[0]
    if isinstance(error, Exception):
        raise error
    detail = f": {error}" if str(error) else ""
    raise StrategyError([f"strategy.path: {what} raised {type(error).__name__}{detail}"])


def _import_class(path: str, limit_s: float) -> Any:
    if not _PATH.match(path):
        raise StrategyError([f'strategy.path: must be "package.module:ClassName", got {path!r}'])
    module_name, class_name = path.split(":")
    try:
        module = _guarded(
            lambda: importlib.import_module(module_name), f"importing {path!r}", limit_s
        )
    except StrategyError:
        raise
    except ImportError as exc:
        raise StrategyError([f"strategy.path: cannot import {module_name!r}: {exc}"]) from None
    except Exception as exc:  # a broken module: say what broke, not a traceback
        problem = f"strategy.path: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        raise StrategyError([problem]) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise StrategyError([f"strategy.path: {path!r} has no class {class_name}"])
    if not isinstance(cls, type):
        raise StrategyError([f"strategy.path: {path!r} is not a class"])
    missing = [m for m in _METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise StrategyError(
            [f"strategy.path: {path!r} is not a Strategy: no method {', '.join(missing)}"]
        )
    return cls


def _params_model(cls: type[Any], path: str) -> type[BaseModel]:
    model = getattr(cls, "Params", None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise StrategyError(
            [f"strategy.path: {path!r} has no Params model (a pydantic BaseModel subclass)"]
        )
    return model


def _validate(model: type[BaseModel], values: dict[str, Any]) -> BaseModel:
    # Unknown keys are checked here, not left to the model, so a Params that forgets
    # extra="forbid" still cannot swallow a misspelt parameter.
    names = list(model.model_fields)
    problems = [_unknown(key, names) for key in values if key not in model.model_fields]
    known = {k: v for k, v in values.items() if k in model.model_fields}
    try:
        params = model.model_validate(known)
    except ValidationError as exc:
        problems += [_describe(error) for error in exc.errors()]
    else:
        problems += _non_finite(params)
    if problems:
        raise StrategyError(problems)
    return params


def _non_finite(params: BaseModel) -> list[str]:
    """inf and nan, which a strategy's own model may let through, are never parameters."""
    return [
        f"strategy.params.{name}: must be a finite number, got {value!r}"
        for name, value in params.model_dump().items()
        if isinstance(value, float) and not math.isfinite(value)
    ]


def _unknown(key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"strategy.params.{key}: unknown parameter{hint}"


def _describe(error: Any) -> str:
    where = ".".join(str(part) for part in ("strategy", "params", *error["loc"]))
    if error["type"] == "missing":
        return f"{where}: required, not given"
    message = str(error["msg"]).removeprefix("Value error, ")
    message = message.replace("Input should be", "must be", 1)
    return f"{where}: {message}, got {error.get('input')!r}"


def _constructor_problem(message: str, model: type[BaseModel]) -> str:
    name, sep, rest = message.partition(":")
    if sep and name.strip() in model.model_fields:
        return f"strategy.params.{name.strip()}:{rest}"
    return f"strategy.params: {message}"
