"""The doctor's checks 4-8, run on one connected session (the runner is `doctor`)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from ib_async import Client, Contract, MarketOrder, OrderState, RequestError, Ticker

from daemon.broker import tws_errors
from daemon.broker.contracts import NoContractError, select_front
from daemon.broker.doctor_model import (
    ACCOUNTS,
    CHECKS,
    CLOCK,
    MARKET_DATA,
    READ_ONLY,
    SERVER_VERSION,
    TICK_BY_TICK,
    CheckResult,
    DoctorTimeouts,
    Status,
)
from daemon.broker.ib.contracts import fetch_future_details
from daemon.broker.ib.doctor.probe import Session
from daemon.settings import Settings, is_paper_account, mask_account

log = structlog.get_logger("daemon.broker.doctor")

SKEW_WARN_S = 2.0  # reqCurrentTime has 1 s resolution, so less is noise
SKEW_FAIL_S = 30.0  # bars, trading hours and order times would be visibly off
API_SETTINGS = "File/Edit → Global Configuration → API → Settings"


class SessionChecks:
    """Collects results by check; runs the checks that need a connected session."""

    def __init__(self, settings: Settings, timeouts: DoctorTimeouts, wall: Callable[[], float]):
        self.settings = settings
        self.ib_settings = settings.ib
        self.timeouts = timeouts
        self.wall = wall
        self.results: dict[str, CheckResult] = {}
        self.running = SERVER_VERSION  # the session check in progress

    def set(self, check: str, status: Status, detail: str, fix: str = "") -> None:
        self.results[check] = CheckResult(check, status, detail, fix)
        log.debug("doctor_check", check=check, status=status.value)

    def skip_rest(self, reason: str) -> None:
        for check in CHECKS:
            if check not in self.results:
                self.set(check, Status.SKIP, reason)

    def report(self) -> list[CheckResult]:
        self.skip_rest("not run")
        return [self.results[check] for check in CHECKS]

    async def session_checks(self, session: Session) -> None:
        """Checks 4-8; a socket closed meanwhile fails the running check and skips the rest."""
        # ib_async refuses requests once the socket is gone: reported below
        with contextlib.suppress(ConnectionError):
            await self._session_checks(session)
        if session.socket_closed:
            for check in CHECKS[CHECKS.index(self.running) :]:
                self.results.pop(check, None)
            self.set(
                self.running,
                Status.FAIL,
                "TWS / IB Gateway closed the API connection during this check",
                "check that TWS / IB Gateway still runs and is logged in (a login elsewhere or "
                "the daily restart drops API clients), then rerun",
            )
            self.skip_rest("the API connection was closed")

    async def _session_checks(self, session: Session) -> None:
        self._next(session, SERVER_VERSION)
        self.check_server_version(session.server_version)
        self._next(session, ACCOUNTS)
        account = self.check_accounts(session.ib.managedAccounts())
        self._next(session, MARKET_DATA)
        contract = await self.check_market_data(session)
        if contract is None:
            self.set(TICK_BY_TICK, Status.SKIP, "needs the front-month contract")
            self.set(READ_ONLY, Status.SKIP, "needs the front-month contract")
        else:
            self._next(session, TICK_BY_TICK)
            await self.check_tick_by_tick(session, contract)
            self._next(session, READ_ONLY)
            if account is None:
                self.set(READ_ONLY, Status.SKIP, "needs a usable account")
            else:
                await self.check_read_only(session, contract, account)
        self._next(session, CLOCK)
        await self.check_clock(session)

    def _next(self, session: Session, check: str) -> None:
        """Start `check`, unless the socket closed during the previous one (it gets the FAIL)."""
        if session.socket_closed:
            raise ConnectionError("socket closed")
        self.running = check

    def check_server_version(self, version: int) -> None:
        newest = Client.MaxClientVersion
        if version >= newest:
            self.set(SERVER_VERSION, Status.PASS, f"server version {version}")
            return
        self.set(
            SERVER_VERSION,
            Status.WARN,
            f"server version {version}: older than {newest}, the newest ib_async speaks "
            f"(minimum {Client.MinClientVersion}); newer API fields are missing",
            "update TWS / IB Gateway to a current stable release",
        )

    def check_accounts(self, accounts: list[str]) -> str | None:
        """The account a what-if order should name ("" = the login's only one), or None."""
        masked = ", ".join(mask_account(a) for a in accounts) or "none"
        configured = self.ib_settings.account
        if not accounts:
            self.set(ACCOUNTS, Status.FAIL, "the login manages no account", "log in to TWS again")
            return None
        if configured and configured not in accounts:
            self.set(
                ACCOUNTS,
                Status.FAIL,
                f"ib.account {mask_account(configured)} is not managed by this login "
                f"(managed: {masked})",
                "set ib.account to one of the managed accounts, or log in with the right user",
            )
            return None
        chosen = [configured] if configured else accounts
        live = [a for a in chosen if not is_paper_account(a)]
        kind = "live" if live else "paper"
        detail = f"managed: {masked} ({kind})"
        if live and self.settings.trading.mode != "live":
            self.set(  # the daemon refuses such a login: nothing would trade
                ACCOUNTS,
                Status.FAIL,
                f"{detail}: not a paper account (paper ids start with DU)",
                "log in to the paper account (TWS/IB Gateway paper login), or to trade live "
                'set trading.mode = "live" and pass --live',
            )
        elif len(chosen) > 1:
            self.set(
                ACCOUNTS,
                Status.WARN,
                f"{detail}: several accounts and no ib.account",
                "set ib.account to the account to trade",
            )
        else:
            self.set(ACCOUNTS, Status.PASS, detail)
        return configured

    async def check_market_data(self, session: Session) -> Contract | None:
        ib, inst = session.ib, self.settings.instrument
        now = datetime.fromtimestamp(self.wall(), UTC)
        try:
            details = await asyncio.wait_for(
                fetch_future_details(ib, inst.symbol, inst.exchange, inst.currency),
                self.timeouts.step,
            )
            front = select_front(details, now, inst.roll_days_before_expiry).contract
        except (NoContractError, ValueError, TimeoutError) as exc:
            why = str(exc) or f"no contract details within {self.timeouts.step:g} s"
            self.set(
                MARKET_DATA,
                Status.FAIL,
                f"cannot qualify the {inst.symbol} front month: {why}",
                "check instrument.symbol, instrument.exchange and instrument.currency; if TWS "
                "reports the sec-def farm broken (2157), wait and rerun",
            )
            return None
        assert isinstance(front, Contract)  # fetch_future_details keeps details with one
        name = front.localSymbol or inst.symbol
        refusal, seconds = await self._stream(session, lambda: ib.reqMktData(front, "233"))
        ib.cancelMktData(front)
        if refusal is not None:
            code, text = refusal
            detail = f"{name}: {code} {text}"
            if code in tws_errors.NO_SUBSCRIPTION:
                detail += await self._delayed_note(session, front)
            severity = Status.FAIL if code in tws_errors.MARKET_DATA_REFUSALS else Status.WARN
            self.set(MARKET_DATA, severity, detail, _fix(code))
        elif session.md_farm in tws_errors.MARKET_DATA_FARM_DOWN:
            farm = session.md_farm
            self.set(
                MARKET_DATA,
                Status.WARN,
                f"{name}: {tws_errors.lookup(farm).meaning.rstrip('.')} ({farm})",
                _fix(farm),
            )
        elif seconds is None:
            self.set(
                MARKET_DATA,
                Status.WARN,
                f"{name}: no refusal, but no tick within {self.timeouts.listen:g} s",
                "rerun while ES trades (Sunday-Friday 17:00-16:00 CT); if still silent, check "
                "TWS's Data Connections window",
            )
        else:
            self.set(MARKET_DATA, Status.PASS, f"{name}: real-time data ({seconds:.1f} s)")
        return front

    async def _stream(
        self, session: Session, request: Callable[[], Ticker]
    ) -> tuple[tuple[int, str] | None, float | None]:
        """Start a subscription; (first refusal, None) or (None, seconds to the first tick)."""
        since = len(session.errors)
        loop = asyncio.get_running_loop()
        start = loop.time()
        ticker = request()
        ticked: list[float] = []

        def on_tickers(tickers: set[Ticker]) -> None:
            if ticker in tickers and not ticked:
                ticked.append(loop.time() - start)

        session.ib.pendingTickersEvent += on_tickers
        try:
            await session.until(
                lambda: bool(ticked or session.request_errors(since)), self.timeouts.listen
            )
        finally:
            session.ib.pendingTickersEvent -= on_tickers
        refusals = session.request_errors(since)
        if refusals:
            return refusals[0], None
        return None, ticked[0] if ticked else None

    async def _delayed_note(self, session: Session, contract: Contract) -> str:
        """Whether delayed data would flow (10167): says the login lacks only real-time."""
        session.ib.reqMarketDataType(3)
        try:
            refusal, _ = await self._stream(session, lambda: session.ib.reqMktData(contract))
        finally:
            session.ib.cancelMktData(contract)
            session.ib.reqMarketDataType(1)
        if refusal is not None and refusal[0] == tws_errors.DELAYED_DATA:
            return "; delayed data is available (10167), real-time is not"
        return ""

    async def check_tick_by_tick(self, session: Session, contract: Contract) -> None:
        mode = self.settings.data.mode
        if mode == "snapshot":
            self.set(TICK_BY_TICK, Status.SKIP, 'data.mode = "snapshot" does not use it')
            return
        refusal, _ = await self._stream(
            session, lambda: session.ib.reqTickByTickData(contract, "AllLast", 0, False)
        )
        session.ib.cancelTickByTickData(contract, "AllLast")
        if refusal is None:
            self.set(
                TICK_BY_TICK,
                Status.PASS,
                f"AllLast accepted (no refusal within {self.timeouts.listen:g} s)",
            )
            return
        code, text = refusal
        if mode == "tick_by_tick":
            self.set(
                TICK_BY_TICK,
                Status.FAIL,
                f'{code} {text}; data.mode = "tick_by_tick" has no fallback',
                _fix(code),
            )
        else:
            self.set(
                TICK_BY_TICK,
                Status.WARN,
                f"{code} {text}; the daemon falls back to reqMktData (snapshot mode)",
                _fix(code),
            )

    async def check_read_only(self, session: Session, contract: Contract, account: str) -> None:
        order = MarketOrder("BUY", 1, account=account)
        since = len(session.errors)
        answer: asyncio.Future[OrderState] = asyncio.ensure_future(
            session.ib.whatIfOrderAsync(contract, order)
        )
        answer.add_done_callback(session.poke)
        try:
            await session.until(
                lambda: answer.done() or bool(session.request_errors(since)), self.timeouts.step
            )
        finally:
            if not answer.done():
                answer.cancel()
        errors = session.request_errors(since)
        if not errors and answer.done() and not answer.cancelled():
            exc = answer.exception()
            if isinstance(exc, RequestError):
                errors = [(exc.code, exc.message)]
        if errors:
            code, text = errors[0]
            status = Status.FAIL if code == tws_errors.READ_ONLY_API else Status.WARN
            self.set(READ_ONLY, status, f"what-if order refused: {code} {text}", _fix(code))
        elif (state := _result(answer)) is not None:
            margin = _money(state.initMarginChange)
            self.set(
                READ_ONLY,
                Status.PASS,
                f"what-if BUY 1 {contract.localSymbol} evaluated (initial margin change "
                f"{margin}); no order placed",
            )
        else:
            self.set(
                READ_ONLY,
                Status.WARN,
                f"no answer to a what-if order within {self.timeouts.step:g} s",
                f'check "Read-Only API" is unticked in TWS ({API_SETTINGS}) and rerun',
            )

    async def check_clock(self, session: Session) -> None:
        before = self.wall()
        try:
            server = await asyncio.wait_for(session.ib.reqCurrentTimeAsync(), self.timeouts.step)
        except (TimeoutError, ConnectionError) as exc:
            self.set(CLOCK, Status.WARN, f"reqCurrentTime failed: {type(exc).__name__}")
            return
        local = (before + self.wall()) / 2
        skew = server.timestamp() - local
        detail = (
            f"server {server:%Y-%m-%d %H:%M:%S} UTC, local clock "
            f"{'behind' if skew >= 0 else 'ahead'} by {abs(skew):.1f} s "
            f"(WARN > {SKEW_WARN_S:g} s, FAIL > {SKEW_FAIL_S:g} s; 1 s resolution)"
        )
        fix = "enable NTP: sudo timedatectl set-ntp true (check with timedatectl status)"
        if abs(skew) > SKEW_FAIL_S:
            self.set(CLOCK, Status.FAIL, detail, fix)
        elif abs(skew) > SKEW_WARN_S:
            self.set(CLOCK, Status.WARN, detail, fix)
        else:
            self.set(CLOCK, Status.PASS, detail)


def _result(answer: asyncio.Future[OrderState]) -> OrderState | None:
    if not answer.done() or answer.cancelled() or answer.exception() is not None:
        return None
    return answer.result()  # None when ib_async ended the request on an error


def _fix(code: int) -> str:
    return tws_errors.FIXES.get(code) or tws_errors.lookup(code).action


def _money(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value or "?"
    return "?" if math.isnan(number) or abs(number) >= 1e300 else f"{number:,.2f}"
