"""Requests for what this account or gateway does not have, answered as TWS answers them.

- FA configuration (18, 19): 321, the account is not a financial advisor's.
- Fundamentals (52): 430, as TWS answers for futures.
- Options (21, 54, 55): 200, no option contract is listed here.
- News and Wall Street Horizon (84, 86, 100, 102): 10276 "News feed is not allowed."; the
  provider list (85) is empty.
- API verification (65, 66, 72, 73): a failed VERIFY(_AND_AUTH)_COMPLETED, since the client did
  not ask for it at connect.
"""

from __future__ import annotations

from ibsim.answers.base import (
    ERR_NO_SECURITY,
    Asker,
    Handler,
    no_reply,
    req_id_after_version,
    validation_error,
)
from ibsim.wire import Fields

ERR_NEWS = "News feed is not allowed."
ERR_FUNDAMENTALS = "The fundamentals data for the security specified is not available."
ERR_VERIFY = "API verification is not enabled for this connection"


def _fa(s: Asker, f: Fields) -> None:
    validation_error(s, -1, "FA data operations ignored for non FA customers.")


def _replace_fa(s: Asker, f: Fields) -> None:
    f.skip(3)  # version, faDataType, xml
    req_id = f.integer() if f.remaining else -1
    validation_error(s, req_id, "FA data operations ignored for non FA customers.")


def _no_option(s: Asker, f: Fields) -> None:
    s.error(req_id_after_version(f), 200, ERR_NO_SECURITY)


def _fundamentals(s: Asker, f: Fields) -> None:
    s.error(req_id_after_version(f), 430, ERR_FUNDAMENTALS)


def _no_news(s: Asker, f: Fields) -> None:
    s.error(f.integer(), 10276, ERR_NEWS)


def _news_providers(s: Asker, f: Fields) -> None:
    s.send(s.enc.news_providers())


def _verify(s: Asker, f: Fields) -> None:
    s.send(s.enc.verify_completed(False, ERR_VERIFY))


def _verify_and_auth(s: Asker, f: Fields) -> None:
    s.send(s.enc.verify_completed(False, ERR_VERIFY, auth=True))


HANDLERS: dict[int, Handler] = {
    12: no_reply,  # news bulletins: none will come
    13: no_reply,
    14: no_reply,  # server log level
    18: _fa,
    19: _replace_fa,
    21: _no_option,
    52: _fundamentals,
    53: no_reply,
    54: _no_option,
    55: _no_option,
    56: no_reply,
    57: no_reply,
    65: _verify,
    66: _verify,
    72: _verify_and_auth,
    73: _verify_and_auth,
    84: _no_news,
    85: _news_providers,
    86: _no_news,
    100: _no_news,
    101: no_reply,
    102: _no_news,
    103: no_reply,
}
