"""The default strategy: stacked footprint imbalances confirmed by the session CVD trend.

An example of the strategy protocol, not trading advice. On every closed bar of its kind (time
bars, or volume bars with ``use_volume_bars``):

- **Long signal**: the bar has at least ``min_stacked`` stacked buy imbalances, its delta is
  positive and at least ``min_delta_ratio`` of its volume, its volume is at least
  ``min_bar_volume``, and the session CVD (sampled at each bar close) is higher than it was
  ``trend_bars`` bars ago. **Short** is the mirror (stacked sells, negative delta, CVD lower).
  The CVD samples belong to one Globex session: a new session starts the trend afresh.
- **Wanted target**, from the effective position ``position + working_entries``: a signal on
  the side already held or working changes nothing; from flat it enters ``±quantity``; against
  the position it exits to 0, or reverses to ``∓quantity`` with ``reverse_on_opposite``.
  Entries (from flat or by reversing) need trading state ACTIVE and no entry signal in the last
  ``cooldown_bars`` bars; otherwise a reversal becomes an exit to 0.
- **Time exit**: with ``max_hold_bars`` > 0, a position seen on that many bar closes (the bar
  it was first seen at counts as one) is exited to 0, unless a signal decided otherwise.
- An intent is returned only when the wanted target differs from the effective position.

Untrusted view (data not OK, connection not ready, or position unknown): returns None and
forgets the CVD samples, so a trend needs ``trend_bars`` + 1 trusted bar closes again; a signal
seen meanwhile is dropped, never replayed later. The bar count (cooldown, holding time) keeps
running, as it measures time; a holding-time exit then fires on the first trusted bar, against
the freshly known position.
"""

from __future__ import annotations

from collections import deque

from pydantic import BaseModel, ConfigDict, Field

from daemon.flow.features import Bar
from daemon.settings import FlowSettings
from daemon.trading.model import EntryType, Intent, StrategyView, TradeUpdate, TradingState


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


class StackedImbalance:
    """Stacked imbalances + CVD trend -> target ±quantity; exits on the opposite signal or time."""

    class Params(BaseModel):
        """Parameters of `StackedImbalance` (``[strategy.params]``)."""

        model_config = ConfigDict(extra="forbid", frozen=True)

        quantity: int = Field(
            default=1,
            gt=0,
            description="Contracts per entry: the target position is +quantity or -quantity.",
        )
        stop_ticks: int = Field(
            default=8, gt=0, description="Protective stop, in ticks from the entry price."
        )
        target_ticks: int = Field(
            default=12, gt=0, description="Profit target, in ticks from the entry price."
        )
        entry: EntryType = Field(
            default=EntryType.LMT,
            description='Entry order: "LMT" (offset_ticks through the near touch) or "MKT".',
        )
        offset_ticks: int = Field(
            default=0,
            ge=0,
            description="LMT entries: 0 joins the bid (buy) or the ask (sell); "
            "1 is one tick more aggressive.",
        )
        min_stacked: int = Field(
            default=1,
            gt=0,
            description="Stacked imbalances (runs of flow.stacked_levels imbalanced levels) "
            "a signal bar needs.",
        )
        min_delta_ratio: float = Field(
            default=0.1,
            ge=0,
            le=1,
            description="The signal bar's delta, on the signal's side, is at least this share "
            "of its volume.",
        )
        min_bar_volume: float = Field(
            default=100.0, ge=0, description="Contracts a signal bar has traded at least."
        )
        trend_bars: int = Field(
            default=3,
            gt=0,
            description="Session CVD must have risen (long) or fallen (short) over this many bars.",
        )
        cooldown_bars: int = Field(
            default=3,
            ge=0,
            description="Bars after an entry signal during which no other entry is signalled.",
        )
        max_hold_bars: int = Field(
            default=30,
            ge=0,
            description="Exit to flat once a position has been seen at this many bar closes; "
            "0 = no time exit.",
        )
        reverse_on_opposite: bool = Field(
            default=False,
            description="An opposite signal reverses the position instead of only closing it.",
        )
        use_volume_bars: bool = Field(
            default=False,
            description="Signal on volume bars (needs flow.volume_bar > 0) instead of time bars.",
        )

    wants_trades: bool = False

    def __init__(self, params: StackedImbalance.Params, flow: FlowSettings) -> None:
        if params.use_volume_bars and flow.volume_bar == 0:
            raise ValueError("use_volume_bars: needs flow.volume_bar > 0 (volume bars are off)")
        self.params = params
        self._kind = "volume" if params.use_volume_bars else "time"
        self._cvd: deque[float] = deque(maxlen=params.trend_bars + 1)  # oldest first
        self._session: float | None = None  # Globex session the CVD samples belong to
        self._bars = 0  # bars of our kind seen
        self._last_entry_bar: int | None = None
        self._held_side = 0  # side of the position last seen, 0 = flat
        self._held_since = 0  # bar count when that side was first seen

    def on_trade(self, trade: TradeUpdate, view: StrategyView) -> Intent | None:
        """Not used (``wants_trades`` is False)."""
        return None

    def on_bar(self, bar: Bar, view: StrategyView) -> Intent | None:
        """A closed bar: maybe a new target (see the module docstring)."""
        if bar.kind != self._kind:
            return None
        self._bars += 1
        flow = view.flow
        position = view.position
        if not view.trusted or flow is None or position is None:
            self._cvd.clear()
            return None
        self._sample_cvd(bar, flow.features.session_start, flow.features.cvd_session)
        self._track_position(position)

        current = position + view.working_entries
        current_side = _sign(current)
        side, why = self._signal(bar)
        want = self._wanted(side, current_side, view.trading_state)
        if want is None:
            want, reason = self._time_exit(position)
        elif want == 0:
            reason = f"exit: {why}"
        else:
            reason = f"reverse: {why}" if current_side == -side else why
        if want is None or want == current:
            return None
        if want != 0:
            self._last_entry_bar = self._bars
        p = self.params
        return Intent(want, p.stop_ticks, p.target_ticks, p.entry, p.offset_ticks, reason)

    def _sample_cvd(self, bar: Bar, session: float | None, cvd: float) -> None:
        if bar.session is None or session != bar.session:
            # Outside a Globex session, or the snapshot already belongs to another one.
            self._cvd.clear()
            self._session = None
            return
        if bar.session != self._session:
            self._cvd.clear()
            self._session = bar.session
        self._cvd.append(cvd)

    def _track_position(self, position: int) -> None:
        side = _sign(position)
        if side != self._held_side:
            self._held_side = side
            self._held_since = self._bars

    def _signal(self, bar: Bar) -> tuple[int, str]:
        """(+1 long, -1 short, 0 none) and the reason naming it."""
        p = self.params
        cvd = self._cvd
        if len(cvd) <= p.trend_bars or bar.volume <= 0 or bar.volume < p.min_bar_volume:
            return 0, ""
        if abs(bar.delta) < p.min_delta_ratio * bar.volume:
            return 0, ""
        trend = _sign(cvd[-1] - cvd[0])
        side = _sign(bar.delta)
        if side == 0 or trend != side:
            return 0, ""
        stacked = bar.stacked_buy if side > 0 else bar.stacked_sell
        if len(stacked) < p.min_stacked:
            return 0, ""
        name = "stacked_buy" if side > 0 else "stacked_sell"
        cvd_word = "cvd_up" if side > 0 else "cvd_down"
        return side, f"{name}={len(stacked)} delta={bar.delta:+g} {cvd_word}"

    def _wanted(self, side: int, current_side: int, state: TradingState) -> int | None:
        """Target a signal asks for, given the side held or working; None: no change."""
        if side == 0 or side == current_side:
            return None
        p = self.params
        cooling = (
            self._last_entry_bar is not None
            and self._bars - self._last_entry_bar <= p.cooldown_bars
        )
        can_enter = state is TradingState.ACTIVE and not cooling
        if current_side == 0:
            return side * p.quantity if can_enter else None
        return side * p.quantity if p.reverse_on_opposite and can_enter else 0

    def _time_exit(self, position: int) -> tuple[int | None, str]:
        limit = self.params.max_hold_bars
        if limit and position != 0 and self._bars - self._held_since + 1 >= limit:
            return 0, f"max_hold_bars={limit}"
        return None, ""
