"""The strategy loader, the default `StackedImbalance` strategy, and its documented config."""

from __future__ import annotations

import dataclasses
import gzip
import sys
import tomllib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.core.instrument import Instrument
from daemon.flow.extractor import FlowState, OrderFlow
from daemon.flow.features import Bar, FlowSnapshot
from daemon.flow.prints import Health
from daemon.flow.replay import parse_trades
from daemon.settings import (
    DataSettings,
    FlowSettings,
    Settings,
    StrategySettings,
    load_settings,
)
from daemon.trading.model import EntryType, Intent, StrategyView, TradeUpdate, TradingState
from daemon.trading.strategy import Strategy, StrategyError, load_strategy, params_doc
from daemon.trading.strategy.stacked import StackedImbalance

ROOT = Path(__file__).resolve().parents[3]
SLICE = ROOT / "tests" / "data" / "es_trades_2013-09-01_slice.csv"
SHARED = ROOT.parent / "shared" / "data" / "es_trades_2013-09-01_02.csv.gz"
CONFIG = ROOT / "config" / "orderflowd.toml"
DEMO = ROOT / "config" / "demo.toml"
SESSION = 1_000_000.0  # a Globex session start (any number: bars and snapshots just agree)
Params = StackedImbalance.Params


# --- helpers ------------------------------------------------------------------------------------


def snapshot(cvd: float, session: float | None = SESSION) -> FlowState:
    features = FlowSnapshot(
        time=None,
        last=None,
        bid=None,
        ask=None,
        session_start=session,
        in_session=session is not None,
        session_volume=0.0,
        session_buy_volume=0.0,
        session_sell_volume=0.0,
        session_unclassified=0.0,
        cvd_session=cvd,
        rth=False,
        rth_start=None,
        cvd_rth=None,
        rth_volume=None,
        delta_windows={},
        vwap=None,
        vwap_sd=None,
        vwap_upper1=None,
        vwap_lower1=None,
        vwap_upper2=None,
        vwap_lower2=None,
        rth_vwap=None,
        rth_vwap_sd=None,
        poc=None,
        vah=None,
        val=None,
        rth_poc=None,
        rth_vah=None,
        rth_val=None,
        book_imbalance=None,
        microprice=None,
        trades_per_s=None,
        contracts_per_s=None,
        session_partial=False,
    )
    return FlowState(Health.OK, features, {}, {}, False, 0, 0.0, False, False, 0)


def bar(
    delta: float = 0.0,
    volume: float = 100.0,
    *,
    buys: int = 0,
    sells: int = 0,
    kind: str = "time",
    session: float | None = SESSION,
) -> Bar:
    """A closed bar with `buys` stacked buy and `sells` stacked sell imbalances."""
    return Bar(
        kind,
        0.0,
        60.0,
        5000.0,
        5001.0,
        4999.0,
        5000.5,
        volume=volume,
        delta=delta,
        stacked_buy=[(4 * i, 4 * i + 2) for i in range(buys)],
        stacked_sell=[(4 * i, 4 * i + 2) for i in range(sells)],
        session=session,
    )


def view(
    cvd: float,
    position: int | None = 0,
    working: int = 0,
    *,
    health: Health = Health.OK,
    connected: bool = True,
    state: TradingState = TradingState.ACTIVE,
    session: float | None = SESSION,
) -> StrategyView:
    return StrategyView(0.0, health, connected, state, position, working, snapshot(cvd, session))


LONG = bar(+30, buys=2)  # 30 of 100 contracts: delta ratio 0.3
SHORT = bar(-30, sells=1)
QUIET = bar(+5)  # no stacked imbalance


def strategy(flow: FlowSettings | None = None, **params: Any) -> StackedImbalance:
    base: dict[str, Any] = {"trend_bars": 2, "min_bar_volume": 50, "min_delta_ratio": 0.2}
    base.update(params)
    return StackedImbalance(Params(**base), flow or FlowSettings())


def warm(s: StackedImbalance, cvds: Iterable[float], position: int = 0) -> None:
    """Quiet bars that only sample the CVD; none of them may signal."""
    for cvd in cvds:
        assert s.on_bar(QUIET, view(cvd, position)) is None


def intent(target: int, reason: str, **kw: Any) -> Intent:
    return Intent(target, 8, 12, EntryType.LMT, 0, reason, **kw)


# --- loader -------------------------------------------------------------------------------------


def refused(
    path: str = StrategySettings().path, flow: FlowSettings | None = None, **params: Any
) -> str:
    with pytest.raises(StrategyError) as info:
        load_strategy(StrategySettings(path=path, params=params), flow or FlowSettings())
    return str(info.value)


def test_default_settings_load_the_default_strategy() -> None:
    s = load_strategy(StrategySettings(), FlowSettings())
    assert isinstance(s, StackedImbalance)
    assert isinstance(s, Strategy)
    assert s.params == Params()
    assert s.wants_trades is False


def test_params_are_validated_and_converted() -> None:
    settings = StrategySettings(params={"stop_ticks": 5, "entry": "MKT", "min_delta_ratio": 0.25})
    s = load_strategy(settings, FlowSettings())
    assert isinstance(s, StackedImbalance)
    assert (s.params.stop_ticks, s.params.entry, s.params.min_delta_ratio) == (
        5,
        EntryType.MKT,
        0.25,
    )


def test_path_must_name_module_and_class() -> None:
    assert refused("foo") == "strategy.path: must be \"package.module:ClassName\", got 'foo'"
    assert refused("a.b:C:D").startswith('strategy.path: must be "package.module:ClassName"')


def test_path_module_cannot_be_imported() -> None:
    assert (
        refused("foo.bar:Thing") == "strategy.path: cannot import 'foo.bar': No module named 'foo'"
    )


def test_path_class_missing() -> None:
    assert refused("daemon.trading.strategy.stacked:Nope") == (
        "strategy.path: 'daemon.trading.strategy.stacked:Nope' has no class Nope"
    )


def test_path_not_a_class() -> None:
    assert refused("daemon.trading.strategy.stacked:_sign") == (
        "strategy.path: 'daemon.trading.strategy.stacked:_sign' is not a class"
    )


def test_class_without_the_strategy_methods() -> None:
    assert refused("daemon.settings:FlowSettings") == (
        "strategy.path: 'daemon.settings:FlowSettings' is not a Strategy: no method on_bar, "
        "on_trade"
    )


class NoParams:
    wants_trades = False

    def on_bar(self, bar: Bar, view: StrategyView) -> Intent | None:
        return None

    def on_trade(self, trade: TradeUpdate, view: StrategyView) -> Intent | None:
        return None


def test_class_without_params_model() -> None:
    path = f"{__name__}:NoParams"
    assert refused(path) == (
        f"strategy.path: {path!r} has no Params model (a pydantic BaseModel subclass)"
    )


def test_unknown_parameter_suggests_the_close_one() -> None:
    assert refused(stop_tickz=4) == (
        "strategy.params.stop_tickz: unknown parameter (did you mean stop_ticks?)"
    )
    assert refused(colour="red") == "strategy.params.colour: unknown parameter"


def test_invalid_parameter_value() -> None:
    assert refused(stop_ticks=-1) == "strategy.params.stop_ticks: must be greater than 0, got -1"
    assert refused(entry="STP") == "strategy.params.entry: must be 'LMT' or 'MKT', got 'STP'"
    assert refused(min_delta_ratio=1.5) == (
        "strategy.params.min_delta_ratio: must be less than or equal to 1, got 1.5"
    )


def test_every_problem_on_its_own_line() -> None:
    assert refused(stop_tickz=4, quantity=0).splitlines() == [
        "strategy.params.stop_tickz: unknown parameter (did you mean stop_ticks?)",
        "strategy.params.quantity: must be greater than 0, got 0",
    ]


def test_volume_bars_need_volume_bars_in_the_flow() -> None:
    assert refused(use_volume_bars=True) == (
        "strategy.params.use_volume_bars: needs flow.volume_bar > 0 (volume bars are off)"
    )
    settings = StrategySettings(params={"use_volume_bars": True})
    assert isinstance(load_strategy(settings, FlowSettings(volume_bar=500)), StackedImbalance)


def test_non_finite_parameters_are_refused() -> None:
    # StackedImbalance.Params bounds min_bar_volume only from below: inf would pass its model.
    assert refused(min_bar_volume=float("inf")) == (
        "strategy.params.min_bar_volume: must be a finite number, got inf"
    )
    assert refused(min_bar_volume="-inf").startswith("strategy.params.min_bar_volume: must be")


# --- strategy code that misbehaves at import or construction --------------------------------------

HEADER = "from daemon.trading.strategy.stacked import StackedImbalance as Strategy\n"


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], str]]:
    """Write a module into a directory on sys.path; returns the strategy path to its class."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def write(name: str, body: str) -> str:
        (tmp_path / f"{name}.py").write_text(body)
        names.append(name)
        return f"{name}:Strategy"

    yield write
    for name in names:
        sys.modules.pop(name, None)


def load(path: str, limit_s: float = 5.0) -> Strategy:
    return load_strategy(StrategySettings(path=path, load_timeout_s=limit_s), FlowSettings())


@pytest.mark.parametrize(
    ("body", "raised"),
    [
        ("import sys\nsys.exit(0)\n", "SystemExit: 0"),
        ("import sys\nsys.exit()\n", "SystemExit"),
        ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
        ("class Boom(BaseException):\n    pass\nraise Boom('at import')\n", "Boom: at import"),
    ],
    ids=["sys-exit-0", "sys-exit", "keyboard-interrupt", "base-exception"],
)
def test_a_module_that_exits_at_import_is_a_config_error(
    module: Callable[[str, str], str], body: str, raised: str
) -> None:
    path = module("exits_at_import", HEADER + body)
    with pytest.raises(StrategyError) as info:
        load(path)
    assert str(info.value) == f"strategy.path: importing {path!r} raised {raised}"


def test_a_module_that_blocks_at_import_is_refused_after_the_limit(
    module: Callable[[str, str], str], tmp_path: Path
) -> None:
    release = tmp_path / "release"
    body = f"import pathlib, time\nwhile not pathlib.Path({str(release)!r}).exists():\n"
    path = module("blocks_at_import", HEADER + body + "    time.sleep(0.01)\n")
    try:
        with pytest.raises(StrategyError) as info:
            load(path, limit_s=0.2)
    finally:
        release.touch()  # let the import thread finish
    assert str(info.value) == (
        f"strategy.path: importing {path!r} did not finish within strategy.load_timeout_s = "
        "0.2 s (a loop or a blocking call?)"
    )


def test_a_constructor_that_exits_is_a_config_error(module: Callable[[str, str], str]) -> None:
    body = (
        "import sys\n"
        "from daemon.trading.strategy.stacked import StackedImbalance\n"
        "class Strategy(StackedImbalance):\n"
        "    def __init__(self, params, flow):\n"
        "        sys.exit(3)\n"
    )
    path = module("exits_in_constructor", body)
    with pytest.raises(StrategyError) as info:
        load(path)
    assert str(info.value) == f"strategy.path: constructing {path!r} raised SystemExit: 3"


def test_params_doc_lists_every_parameter_with_default_and_description() -> None:
    doc = params_doc(StackedImbalance)
    assert [name for name, _, _ in doc] == list(Params.model_fields)
    assert ("quantity", 1, doc[0][2]) == doc[0]
    assert {n: d for n, d, _ in doc}["entry"] == EntryType.LMT
    assert all(description for _, _, description in doc)


# --- the default strategy -----------------------------------------------------------------------


def test_long_on_stacked_buys_with_rising_cvd() -> None:
    s = strategy()
    warm(s, [0, 10])
    assert s.on_bar(LONG, view(40)) == intent(1, "stacked_buy=2 delta=+30 cvd_up")


def test_short_on_stacked_sells_with_falling_cvd() -> None:
    s = strategy(quantity=2, entry=EntryType.MKT, offset_ticks=1)
    warm(s, [0, -10])
    assert s.on_bar(SHORT, view(-40)) == Intent(
        -2, 8, 12, EntryType.MKT, 1, "stacked_sell=1 delta=-30 cvd_down"
    )


@pytest.mark.parametrize("cvds", [[50, 10, 40], [40, 10, 40]], ids=["falling", "flat"])
def test_no_long_when_cvd_trend_disagrees(cvds: list[float]) -> None:
    s = strategy()
    warm(s, cvds[:2])
    assert s.on_bar(LONG, view(cvds[2])) is None


def test_no_signal_before_trend_bars_of_history() -> None:
    s = strategy()
    warm(s, [0])  # two samples with the signal bar's; trend_bars=2 needs three
    assert s.on_bar(LONG, view(40)) is None


@pytest.mark.parametrize(
    ("signal", "why"),
    [
        (bar(+15, buys=2), "delta ratio 0.15 < 0.2"),
        (bar(+30, 40, buys=2), "volume 40 < 50"),
        (bar(-30, buys=2), "delta against the stack"),
        (bar(+30), "no stacked imbalance"),
    ],
)
def test_bar_filters(signal: Bar, why: str) -> None:
    s = strategy()
    warm(s, [0, 10])
    assert s.on_bar(signal, view(40)) is None, why


def test_min_stacked_counts_runs() -> None:
    s = strategy(min_stacked=2)
    warm(s, [0, 10])
    assert s.on_bar(bar(+30, buys=1), view(20)) is None
    assert s.on_bar(bar(+30, buys=2), view(30)) is not None


def test_untrusted_returns_none_and_forgets_the_trend() -> None:
    s = strategy()
    warm(s, [0, 10])
    assert s.on_bar(LONG, view(20, health=Health.DEGRADED)) is None
    # The trend restarts from trusted bars: 30 is the first sample, so no signal yet ...
    assert s.on_bar(LONG, view(30)) is None
    assert s.on_bar(QUIET, view(40)) is None
    # ... and the third trusted sample completes it.
    assert s.on_bar(LONG, view(50)) == intent(1, "stacked_buy=2 delta=+30 cvd_up")


@pytest.mark.parametrize(
    "untrusted",
    [
        {"health": Health.INVALID},
        {"connected": False},
        {"position": None},
    ],
    ids=["data", "connection", "position"],
)
def test_no_intent_when_untrusted(untrusted: dict[str, Any]) -> None:
    s = strategy()
    warm(s, [0, 10])
    assert s.on_bar(LONG, view(40, **untrusted)) is None


def test_no_repeat_while_the_target_is_working_or_held() -> None:
    s = strategy(cooldown_bars=0)
    warm(s, [0, 10])
    assert s.on_bar(LONG, view(20)) == intent(1, "stacked_buy=2 delta=+30 cvd_up")
    assert s.on_bar(LONG, view(30, position=0, working=1)) is None
    assert s.on_bar(LONG, view(40, position=1)) is None


def test_opposite_signal_exits_or_cancels_the_working_entry() -> None:
    s = strategy(cooldown_bars=0, trend_bars=1)
    warm(s, [100])
    assert s.on_bar(SHORT, view(50, position=1)) == intent(
        0, "exit: stacked_sell=1 delta=-30 cvd_down"
    )
    assert s.on_bar(SHORT, view(40, position=0, working=1)) == intent(
        0, "exit: stacked_sell=1 delta=-30 cvd_down"
    )


def test_opposite_signal_reverses_when_asked() -> None:
    s = strategy(cooldown_bars=0, trend_bars=1, reverse_on_opposite=True)
    warm(s, [100])
    assert s.on_bar(SHORT, view(50, position=1)) == intent(
        -1, "reverse: stacked_sell=1 delta=-30 cvd_down"
    )


def test_exit_after_max_hold_bars() -> None:
    s = strategy(max_hold_bars=3)
    warm(s, [0, 10])
    assert s.on_bar(LONG, view(20)) is not None
    assert s.on_bar(QUIET, view(20, position=0, working=1)) is None  # not filled yet
    assert s.on_bar(QUIET, view(20, position=1)) is None  # first seen: held 1
    assert s.on_bar(QUIET, view(20, position=1)) is None  # held 2
    assert s.on_bar(QUIET, view(20, position=1)) == intent(0, "max_hold_bars=3")


def test_max_hold_bars_zero_never_exits() -> None:
    s = strategy(max_hold_bars=0)
    for _ in range(50):
        assert s.on_bar(QUIET, view(0, position=1)) is None


def test_cooldown_after_an_entry_signal() -> None:
    s = strategy(cooldown_bars=2)
    warm(s, [0, 10])
    assert s.on_bar(LONG, view(20)) is not None
    # Stopped out at once: flat again, but two bars of cooldown follow the entry signal.
    assert s.on_bar(LONG, view(30)) is None
    assert s.on_bar(LONG, view(40)) is None
    assert s.on_bar(LONG, view(50)) == intent(1, "stacked_buy=2 delta=+30 cvd_up")


def test_reversal_during_cooldown_only_exits() -> None:
    s = strategy(cooldown_bars=2, trend_bars=1, reverse_on_opposite=True)
    warm(s, [0])
    assert s.on_bar(LONG, view(10)) is not None
    assert s.on_bar(SHORT, view(5, position=1)) == intent(
        0, "exit: stacked_sell=1 delta=-30 cvd_down"
    )


def test_entries_only_while_active_but_exits_always() -> None:
    s = strategy(trend_bars=1)
    warm(s, [0])
    assert s.on_bar(LONG, view(10, state=TradingState.REDUCING)) is None
    assert s.on_bar(SHORT, view(5, position=1, state=TradingState.REDUCING)) == intent(
        0, "exit: stacked_sell=1 delta=-30 cvd_down"
    )


def test_cvd_trend_does_not_span_sessions() -> None:
    s = strategy()
    warm(s, [0, 10])
    other = SESSION + 86_400
    signal = dataclasses.replace(LONG, session=other)
    assert s.on_bar(signal, view(40, session=other)) is None  # first sample of the new session


def test_volume_bars_are_ignored_unless_asked() -> None:
    s = strategy()
    volume_signal = dataclasses.replace(LONG, kind="volume")
    for cvd in (0, 10, 20):
        assert s.on_bar(volume_signal, view(cvd)) is None
    s = strategy(FlowSettings(volume_bar=500), use_volume_bars=True)
    for cvd in (0, 10):
        assert s.on_bar(dataclasses.replace(QUIET, kind="volume"), view(cvd)) is None
    assert s.on_bar(LONG, view(20)) is None  # time bars are now the ignored kind
    assert s.on_bar(volume_signal, view(30)) == intent(1, "stacked_buy=2 delta=+30 cvd_up")


def test_trades_are_not_wanted() -> None:
    s = strategy()
    assert s.wants_trades is False
    assert s.on_trade(TradeUpdate(0.0, 5000.0, 1.0, 1), view(0)) is None


# --- replay over real trades --------------------------------------------------------------------


def replay(lines: Iterable[str], source: str, flow: FlowSettings, params: Params) -> list[Intent]:
    """Every intent of the strategy over the trades; each target is applied at once."""
    s = StackedImbalance(params, flow)
    intents: list[Intent] = []
    position = 0
    extractor: OrderFlow

    def on_bar(closed: Bar) -> None:
        nonlocal position
        if closed.kind != "time":
            return
        state = extractor.state()
        v = StrategyView(closed.end, Health.OK, True, TradingState.ACTIVE, position, 0, state)
        got = s.on_bar(closed, v)
        if got is not None:
            intents.append(got)
            position = got.target

    es = Instrument.of_product("ES")  # the trades replayed are ES
    extractor = OrderFlow(flow, DataSettings(), instrument=es, quotes=False, on_bar=on_bar)
    for event in parse_trades(lines, source):
        extractor.on_event(event)
    extractor.flush()
    return intents


def check_sensible(intents: list[Intent], params: Params) -> None:
    """Each intent changes the position; entries come from flat (or reverse), exits go flat."""
    position = 0
    for got in intents:
        assert abs(got.target) <= params.quantity
        assert got.target != position
        if got.target == 0:
            assert got.reason.startswith(("exit: ", "max_hold_bars="))
        elif position == 0:
            side = "stacked_buy=" if got.target > 0 else "stacked_sell="
            assert got.reason.startswith(side)
        else:
            assert params.reverse_on_opposite
            assert got.reason.startswith("reverse: ")
        position = got.target


def slice_lines() -> Iterator[str]:
    with SLICE.open(encoding="utf-8", newline="") as f:
        yield from f


def test_replay_of_the_vendored_slice() -> None:
    flow = FlowSettings(stacked_levels=2)
    params = Params(trend_bars=2, max_hold_bars=3, cooldown_bars=1, reverse_on_opposite=True)
    first = replay(slice_lines(), str(SLICE), flow, params)
    assert replay(slice_lines(), str(SLICE), flow, params) == first
    check_sensible(first, params)
    targets = [i.target for i in first]
    assert targets.count(0) >= 3
    assert sum(1 for t in targets if t) >= 5
    assert any(i.reason.startswith("reverse: ") for i in first)
    assert any(i.reason.startswith("max_hold_bars=") for i in first)


@pytest.mark.skipif(not SHARED.exists(), reason=f"real ES trades not present: {SHARED}")
def test_replay_of_the_whole_shared_file_with_defaults() -> None:
    def lines() -> Iterator[str]:
        with gzip.open(SHARED, "rt", encoding="utf-8", newline="") as f:
            yield from f

    params = Params()
    first = replay(lines(), str(SHARED), FlowSettings(), params)
    assert replay(lines(), str(SHARED), FlowSettings(), params) == first
    check_sensible(first, params)
    assert sum(1 for i in first if i.target) >= 5


# --- configuration ------------------------------------------------------------------------------


def marker_block() -> list[str]:
    lines = CONFIG.read_text(encoding="utf-8").splitlines()
    begin = lines.index("# STRATEGY-PARAMS-BEGIN")
    end = lines.index("# STRATEGY-PARAMS-END")
    return lines[begin + 1 : end]


def test_shipped_config_documents_every_parameter_with_its_default() -> None:
    block = marker_block()
    assert len(block) == 2 * len(Params.model_fields)
    documented: dict[str, Any] = {}
    for comment, line in zip(block[::2], block[1::2], strict=True):
        assert comment.startswith("# "), comment
        assert len(comment) > 10, comment
        assert line.startswith("# "), line
        documented.update(tomllib.loads(line.removeprefix("# ")))
    assert list(documented) == list(Params.model_fields)
    for name, default, _ in params_doc(StackedImbalance):
        expected = default.value if isinstance(default, EntryType) else default
        value = documented[name]
        assert (value, type(value)) == (expected, type(expected)), name


def test_demo_config_loads_and_its_strategy_validates() -> None:
    settings = load_settings(config_file=DEMO, env={}, dotenv=None)
    assert settings.trading.enabled is True
    assert settings.paths.state_dir == Path("state/demo")
    assert (settings.risk.max_position, settings.risk.daily_loss_limit) == (1, 300.0)
    s = load_strategy(settings.strategy, settings.flow)
    assert isinstance(s, StackedImbalance)
    assert s.params != Params()


def test_demo_config_sets_only_keys_that_differ_from_the_defaults() -> None:
    demo = tomllib.loads(DEMO.read_text(encoding="utf-8"))
    defaults = Settings().model_dump()
    params = demo.get("strategy", {}).pop("params", {})
    for section, values in demo.items():
        for key, value in values.items():
            assert defaults[section][key] != value, f"{section}.{key}"
    for key, value in params.items():
        assert getattr(Params(), key) != value, f"strategy.params.{key}"
