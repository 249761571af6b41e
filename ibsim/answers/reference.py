"""Reference data: market rules, symbol search, option chains, scanners, display groups and the
small lookups, answered from what this gateway lists (the family in `ibsim.products`)."""

from __future__ import annotations

from ibsim.answers import inbound
from ibsim.answers.base import Asker, Handler, no_reply, req_id_after_version, validation_error
from ibsim.answers.encoding import SymbolSample
from ibsim.products import MARKET_RULES, PRODUCTS, Product
from ibsim.wire import Fields

DISPLAY_GROUPS = "1|2|3|4|5|6|7"  # TWS's seven colour groups
SCANNER_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<ScanParameterResponse>'
    "<InstrumentList><Instrument><name>US Futures</name><type>FUT.US</type></Instrument>"
    "</InstrumentList><LocationTree/><ScanTypeList/></ScanParameterResponse>\n"
)


def underlying(p: Product) -> SymbolSample:
    """A product's underlying as reqMatchingSymbols describes it: the index its futures are on."""
    return SymbolSample(p.under_con_id, p.symbol, "IND", p.exchange, "USD", ("FUT",), p.long_name)


def matches(pattern: str, p: Product) -> bool:
    """Whether a symbol search finds `p`: a prefix of its symbol or a part of its name."""
    wanted = pattern.strip().upper()
    return bool(wanted) and (p.symbol.startswith(wanted) or wanted in p.long_name.upper())


def _market_rule(s: Asker, f: Fields) -> None:
    rule_id = f.integer()
    increments = MARKET_RULES.get(rule_id)
    if increments is None:  # TWS knows only the rules of contracts it has described
        validation_error(s, -1, f"No market rule {rule_id}: request contract details first")
        return
    s.send(s.enc.market_rule(rule_id, increments))


def _matching_symbols(s: Asker, f: Fields) -> None:
    req_id = f.integer()
    pattern = f.text()
    found = [underlying(p) for p in PRODUCTS.values() if matches(pattern, p)]
    s.send(s.enc.symbol_samples(req_id, found))


def _sec_def_opt_params(s: Asker, f: Fields) -> None:
    req = inbound.read_sec_def_opt_params(f)
    s.send(s.enc.sec_def_opt_params_end(req.req_id))  # no options are listed on ES here


def _soft_dollar_tiers(s: Asker, f: Fields) -> None:
    s.send(s.enc.soft_dollar_tiers(f.integer()))


def _mkt_depth_exchanges(s: Asker, f: Fields) -> None:
    s.send(s.enc.mkt_depth_exchanges())


def _smart_components(s: Asker, f: Fields) -> None:
    req_id = f.integer()
    f.text()  # bboExchange
    s.send(s.enc.smart_components(req_id))


def _user_info(s: Asker, f: Fields) -> None:
    s.send(s.enc.user_info(f.integer(), ""))


def _scanner_parameters(s: Asker, f: Fields) -> None:
    s.send(s.enc.scanner_parameters(SCANNER_XML))


def _scanner_subscription(s: Asker, f: Fields) -> None:
    s.send(s.enc.scanner_data_empty(f.integer()))


def _query_display_groups(s: Asker, f: Fields) -> None:
    s.send(s.enc.display_group_list(req_id_after_version(f), DISPLAY_GROUPS))


def _subscribe_group(s: Asker, f: Fields) -> None:
    req_id = req_id_after_version(f)
    group = f.integer()
    s.display_groups[req_id] = group
    s.send(s.enc.display_group_updated(req_id, s.gw.display_groups.get(group, "")))


def _update_group(s: Asker, f: Fields) -> None:
    req_id = req_id_after_version(f)
    info = f.text()
    group = s.display_groups.get(req_id)
    if group is None:
        return  # not subscribed: TWS ignores it
    s.gw.display_groups[group] = info
    for other in list(s.gw.sessions):
        for other_req, other_group in other.display_groups.items():
            if other_group == group and not other.closed:
                other.send(other.enc.display_group_updated(other_req, info))


def _unsubscribe_group(s: Asker, f: Fields) -> None:
    s.display_groups.pop(req_id_after_version(f), None)


HANDLERS: dict[int, Handler] = {
    91: _market_rule,
    81: _matching_symbols,
    78: _sec_def_opt_params,
    79: _soft_dollar_tiers,
    82: _mkt_depth_exchanges,
    83: _smart_components,
    104: _user_info,
    24: _scanner_parameters,
    22: _scanner_subscription,
    23: no_reply,
    67: _query_display_groups,
    68: _subscribe_group,
    69: _update_group,
    70: _unsubscribe_group,
}
