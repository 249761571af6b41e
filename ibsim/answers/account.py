"""Account requests: managed accounts, positions, account values and summaries, PnL."""

from __future__ import annotations

from ibsim.answers import inbound
from ibsim.answers.base import ERR_NO_SECURITY, Asker, Handler, no_reply, validation_error
from ibsim.contracts import by_con_id
from ibsim.encoders import In, Out
from ibsim.wire import Fields

REQ_PNL, CANCEL_PNL, REQ_PNL_SINGLE, CANCEL_PNL_SINGLE = 92, 93, 94, 95
REQ_FAMILY_CODES = 80


def _managed_accounts(s: Asker, f: Fields) -> None:
    s.send(s.enc.managed_accounts(s.gw.config.accounts))


def _positions(s: Asker, f: Fields) -> None:
    s.positions_subscribed = True
    for pos in s.gw.engine.positions():
        s.send(s.enc.position(s.gw.contract(pos.con_id), pos))
    s.send(s.enc.position_end())


def _cancel_positions(s: Asker, f: Fields) -> None:
    s.positions_subscribed = False


def _account_updates(s: Asker, f: Fields) -> None:
    f.skip(1)
    subscribe = f.flag()
    account = f.text() or s.gw.config.accounts[0]
    s.account_subscribed = subscribe
    if not subscribe:
        return
    for key, value, currency in s.gw.account_values(account):
        s.send(s.enc.account_value(key, value, currency, account))
    for pos in s.gw.engine.positions():
        if pos.account == account:
            spec = s.gw.contract(pos.con_id)
            s.send(s.enc.portfolio_value(spec, pos, s.gw.mark(spec)))
    s.send(s.enc.account_update_time(s.gw.clock.now()))
    s.send(s.enc.account_download_end(account))


def _account_updates_multi(s: Asker, f: Fields) -> None:
    f.skip(1)
    req_id = f.integer()
    account = f.text() or s.gw.config.accounts[0]
    for key, value, currency in s.gw.account_values(account):
        s.send(s.enc.account_update_multi(req_id, account, key, value, currency))
    s.send(s.enc.end(Out.ACCOUNT_UPDATE_MULTI_END, req_id))


def _account_summary(s: Asker, f: Fields) -> None:
    f.skip(1)
    req_id = f.integer()
    f.skip(1)  # group
    tags = {t for t in f.text().split(",") if t}
    for account in s.gw.config.accounts:
        for key, value, currency in s.gw.account_values(account):
            if not tags or key in tags:
                s.send(s.enc.account_summary(req_id, account, key, value, currency))
    s.send(s.enc.end(Out.ACCOUNT_SUMMARY_END, req_id))


def _positions_multi(s: Asker, f: Fields) -> None:
    f.skip(1)
    req_id = f.integer()
    account = f.text()
    for pos in s.gw.engine.positions():
        if not account or pos.account == account:
            s.send(s.enc.position_multi(req_id, s.gw.contract(pos.con_id), pos))
    s.send(s.enc.end(Out.POSITION_MULTI_END, req_id))


def _pnl(s: Asker, f: Fields, *, single: bool) -> None:
    req = inbound.read_pnl(f, single=single)
    if req.account not in s.gw.config.accounts:
        validation_error(s, req.req_id, f"Invalid account code {req.account!r}")
        return
    if req.con_id is not None and by_con_id(req.con_id) is None:
        s.error(req.req_id, 200, ERR_NO_SECURITY)
        return
    s.gw.pnl.subscribe(s, req.req_id, req.account, req.con_id)


def _req_pnl(s: Asker, f: Fields) -> None:
    _pnl(s, f, single=False)


def _req_pnl_single(s: Asker, f: Fields) -> None:
    _pnl(s, f, single=True)


def _cancel_pnl(s: Asker, f: Fields) -> None:
    s.gw.pnl.cancel(s, f.integer())


def _family_codes(s: Asker, f: Fields) -> None:
    s.send(s.enc.family_codes([(account, "") for account in s.gw.config.accounts]))


HANDLERS: dict[int, Handler] = {
    In.REQ_MANAGED_ACCTS: _managed_accounts,
    In.REQ_POSITIONS: _positions,
    In.CANCEL_POSITIONS: _cancel_positions,
    In.REQ_ACCOUNT_UPDATES: _account_updates,
    In.REQ_ACCOUNT_UPDATES_MULTI: _account_updates_multi,
    In.CANCEL_ACCOUNT_UPDATES_MULTI: no_reply,
    In.REQ_ACCOUNT_SUMMARY: _account_summary,
    In.CANCEL_ACCOUNT_SUMMARY: no_reply,
    In.REQ_POSITIONS_MULTI: _positions_multi,
    In.CANCEL_POSITIONS_MULTI: no_reply,
    REQ_PNL: _req_pnl,
    CANCEL_PNL: _cancel_pnl,
    REQ_PNL_SINGLE: _req_pnl_single,
    CANCEL_PNL_SINGLE: _cancel_pnl,
    REQ_FAMILY_CODES: _family_codes,
}
