"""The pure trading core: no I/O, no asyncio, no ib_async — the same code live, in a backtest
and in table-driven tests."""
