"""The trading section of status.json and of `orderflowd status`.

State and why, the position (only when trusted: PnL on an untrusted position is not shown), the
day's PnL, working orders, refusals, the last reconcile and what it found, contracts no stop
covers, positions kept in months rolled out of and the roll under way, the broker's own
position, the last flatten, and the alarms.
"""

from __future__ import annotations

from typing import Any

from daemon.trading.alarms import Alarms
from daemon.trading.closing import BrokerPositions
from daemon.trading.execution import Executor
from daemon.trading.operator import Operator
from daemon.trading.pnl import DayPnl
from daemon.trading.risk import RiskManager
from daemon.trading.roll import Roller
from daemon.trading.sync import BrokerSync
from daemon.trading.upkeep import unprotected

__all__ = ["TradingStatus"]


class TradingStatus:
    """Builds the trading status document from the trader's parts."""

    def __init__(
        self,
        enabled: bool,
        risk: RiskManager,
        pnl: DayPnl,
        sync: BrokerSync,
        executor: Executor,
        positions: BrokerPositions,
        alarms: Alarms,
        operator: Operator,
        roller: Roller,
    ) -> None:
        self.enabled = enabled
        self.risk = risk
        self.pnl = pnl
        self.sync = sync
        self.executor = executor
        self.positions = positions
        self.alarms = alarms
        self.operator = operator
        self.roller = roller

    def document(self) -> dict[str, Any]:
        risk = self.risk.summary()
        position = self.sync.position
        trusted = position is not None  # else PnL on an untrusted position: not shown
        unrealized = self.pnl.unrealized() if trusted else None
        net = self.pnl.net() if trusted else None
        live = self.executor.live()
        return {
            "enabled": self.enabled,
            "state": self.risk.state.value if self.enabled else "DISABLED",
            "reason": self.risk.reason,
            "position": position,
            "avg_price": self.pnl.ledger.avg_price,
            "realized_pnl": round(self.pnl.realized, 2),
            "unrealized_pnl": None if unrealized is None else round(unrealized, 2),
            "commissions": round(self.pnl.commissions, 2),
            "net_pnl": None if net is None else round(net, 2),
            "working_orders": [r.as_status() for r in live],
            "refusals": risk.get("refusals", {}),
            "last_refusals": risk.get("last_refusals", []),
            "reconciled": self.sync.reconciled,
            "last_reconcile": self.sync.last_reconcile,
            "unprotected": unprotected(position, self.executor.live_here()),
            "held_elsewhere": {str(c): p for c, p in self.sync.held_elsewhere().items()},
            "roll": self.roller.as_status(),
            "mismatches": self.sync.mismatches,
            "account_position": self.positions.last(self.sync.con_id()),
            "last_flatten": self.operator.last_flatten,
            **self.alarms.as_status(),
            "day": self.pnl.day,
        }
