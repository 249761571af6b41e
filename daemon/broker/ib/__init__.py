"""The broker edge: the only code in the daemon that imports ib_async or touches its internals.

- `client`: `IbClient`, the one `IB` with its throttle, the requests the daemon makes (plain
  results) and the one reset on disconnect; the connection state machine listens to it.
- `errors`: the one `errorEvent` subscriber, routing each code by reqId to its owner.
- `framing`: the frame-size guard and fair reads on the socket.
- `market`: the tick-by-tick decoder fast path and the reqMktData taps → `MarketEvent`s.
- `orders`: the live `OrderGateway` (place / modify / cancel) and IB's order messages as events.
- `contracts`: ContractDetails and positions as `Listing`s and `Position`s.
- `finished_trades`: finished trades trimmed from ib_async's memory.
- `doctor`: `orderflowd doctor`, on short connections of its own.

A test (tests/daemon/broker/test_ib_seam.py) holds the rule: no module of `daemon` outside this
package imports ib_async.
"""

from daemon.broker.ib.client import IbClient, LinkListener
from daemon.broker.ib.market import MarketStream
from daemon.broker.ib.orders import IbOrderGateway

__all__ = ["IbClient", "IbOrderGateway", "LinkListener", "MarketStream"]
