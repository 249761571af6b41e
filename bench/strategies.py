"""Bench-only strategies: intents on a signal the benchmark controls, nothing else."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from daemon.flow.features import Bar
from daemon.settings import FlowSettings
from daemon.trading.model import Intent, StrategyView, TradeUpdate


class Trigger:
    """A resting entry on a trade of ``arm_size`` contracts, cancelled on one of ``disarm_size``.

    For `bench.tick_to_order`: the benchmark prints those sizes and nothing else does, so the
    time from that print to the order at the gateway is the daemon's own path. The entry is a
    limit ``offset_ticks`` through the bid (negative: below it), far enough not to fill. Only
    an update holding exactly one trade counts: a size summed over several prints is never a
    signal. Arming needs a trusted view; disarming does not (it only cancels), so an entry
    never outlives a spell of degraded data. Bars are ignored.
    """

    class Params(BaseModel):
        """Parameters of `Trigger` (``[strategy.params]``)."""

        model_config = ConfigDict(extra="forbid", frozen=True)

        arm_size: int = Field(
            default=77, gt=0, description="Trade size that asks for a 1-lot long entry."
        )
        disarm_size: int = Field(
            default=78, gt=0, description="Trade size that asks to be flat (cancels the entry)."
        )
        offset_ticks: int = Field(
            default=-8, description="Entry limit, in ticks through the bid (negative: below it)."
        )
        stop_ticks: int = Field(default=8, gt=0, description="Stop distance of the bracket.")
        target_ticks: int = Field(default=12, gt=0, description="Target distance of the bracket.")

    wants_trades = True

    def __init__(self, params: Params, flow: FlowSettings) -> None:
        if params.disarm_size == params.arm_size:
            raise ValueError(f"disarm_size: must differ from arm_size ({params.arm_size})")
        self.params = params
        self.armed = 0  # arm signals turned into intents
        self.disarmed = 0

    def on_trade(self, trade: TradeUpdate, view: StrategyView) -> Intent | None:
        if trade.trades != 1:
            return None
        p = self.params
        if trade.size == p.arm_size and view.trusted:
            self.armed += 1
            return Intent(
                target=1,
                stop_ticks=p.stop_ticks,
                target_ticks=p.target_ticks,
                offset_ticks=p.offset_ticks,
                reason="bench_arm",
            )
        if trade.size == p.disarm_size:
            self.disarmed += 1
            return Intent(
                target=0,
                stop_ticks=p.stop_ticks,
                target_ticks=p.target_ticks,
                reason="bench_disarm",
            )
        return None

    def on_bar(self, bar: Bar, view: StrategyView) -> Intent | None:
        return None
