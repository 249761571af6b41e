"""The request handlers that live outside the session, by message id."""

from __future__ import annotations

from ibsim.answers import account, market, reference, refused
from ibsim.answers.base import Handler

HANDLERS: dict[int, Handler] = {
    **market.HANDLERS,
    **account.HANDLERS,
    **reference.HANDLERS,
    **refused.HANDLERS,
}
