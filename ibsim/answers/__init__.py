"""Answers to the requests outside the trading core: market data, historical and real-time
data, account and PnL, reference data, and the requests TWS refuses for this kind of account.

`table.REQUESTS` lists every request id and how it is answered (`docs/ibsim-messages.md`).
"""
