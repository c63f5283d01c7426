"""Compatibility: ccxt's own Binance classes (an independent client) against the local exchange.

Overrides, each because the local exchange serves one market and no wallet endpoints:
- ``urls['api']``: every REST family ccxt uses for the market points at the local server
  (spot: ``public`` / ``private`` -> ``/api/v3``; USD-M: ``fapiPublic`` / ``fapiPrivate`` -> ``/fapi/v1``,
  ``fapiPrivateV2`` / ``fapiPrivateV3`` -> ``/fapi/v2`` / ``/fapi/v3``);
- ``options['fetchMarkets'] = {'types': [<market>]}``: load only the served market (default loads
  spot + linear + inverse);
- ``options['fetchCurrencies'] = False``: that call is the wallet endpoint ``/sapi/v1/capital/config/getall``;
- ``options['fetchMargins'] = False``: no ``/sapi`` margin pair lists during ``load_markets``.
"""

from __future__ import annotations

import ccxt
import pytest

from orderflow.execution.local import running_local_exchange

KEY, SECRET = "ccxtkey", "ccxtsecret"


def _client(cls: type, ex, market: str):
    c = cls({"apiKey": KEY, "secret": SECRET, "enableRateLimit": False, "timeout": 10_000})
    base = ex.rest_url
    if market == "spot":
        c.urls["api"] = {**c.urls["api"], "public": f"{base}/api/v3", "private": f"{base}/api/v3"}
        c.options["fetchMarkets"] = {"types": ["spot"]}
    else:
        c.urls["api"] = {
            **c.urls["api"],
            "fapiPublic": f"{base}/fapi/v1",
            "fapiPrivate": f"{base}/fapi/v1",
            "fapiPrivateV2": f"{base}/fapi/v2",
            "fapiPrivateV3": f"{base}/fapi/v3",
        }
        c.options["fetchMarkets"] = {"types": ["linear"]}
    c.options["fetchCurrencies"] = False
    c.options["fetchMargins"] = False
    return c


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_ccxt_binance_against_local_exchange(market: str):
    with running_local_exchange(market=market, sim_hours=0.05, api_key=KEY, api_secret=SECRET) as ex:
        c = _client(ccxt.binance if market == "spot" else ccxt.binanceusdm, ex, market)
        markets = c.load_markets()
        symbol = "BTC/USDT" if market == "spot" else "BTC/USDT:USDT"
        assert symbol in markets
        m = markets[symbol]
        assert m["precision"]["price"] == (0.01 if market == "spot" else 0.1)
        assert m["limits"]["cost"]["min"] == (5.0 if market == "spot" else 100.0)
        book = c.fetch_order_book(symbol, limit=5)
        bid, ask = book["bids"][0][0], book["asks"][0][0]
        assert 0 < bid < ask and len(book["bids"]) == 5
        amount = 0.01
        lim = c.create_order(symbol, "limit", "buy", amount, bid - 50)
        got = c.fetch_order(lim["id"], symbol)
        assert got["status"] == "open" and got["price"] == pytest.approx(bid - 50) and got["amount"] == amount
        canceled = c.cancel_order(lim["id"], symbol)
        assert canceled["status"] == "canceled"
        assert c.fetch_order(lim["id"], symbol)["status"] == "canceled"
        mkt = c.create_order(symbol, "market", "buy", amount)
        filled = c.fetch_order(mkt["id"], symbol)
        assert filled["status"] == "closed" and filled["filled"] == pytest.approx(amount)
        assert filled["average"] >= ask
        bal = c.fetch_balance()
        if market == "spot":
            assert bal["BTC"]["total"] == pytest.approx(1 + amount * (1 - 0.001))
            assert bal["USDT"]["total"] == pytest.approx(100_000 - filled["cost"])
        else:
            # total = margin balance (wallet + unrealized PnL of the new long); the wallet paid the taker fee
            assert float(bal["info"]["totalWalletBalance"]) == pytest.approx(
                100_000 - 0.0005 * filled["cost"]
            )
            assert bal["USDT"]["total"] == pytest.approx(100_000, abs=50)
        with pytest.raises(ccxt.OrderNotFound):
            c.fetch_order("123456", symbol)
        with pytest.raises(ccxt.ExchangeError, match=r"(?i)duplicate"):  # spot -2010, futures -4116
            c.create_order(symbol, "limit", "buy", amount, bid - 50, {"newClientOrderId": "x"})
            c.create_order(symbol, "limit", "buy", amount, bid - 50, {"newClientOrderId": "x"})
