"""Order round-trip latency of BinanceTradingClient against the local exchange (prints p50 / p99).

place+ack: a resting LIMIT order far from the market, timed from the call to the parsed answer;
cancel+ack: its cancel. Each includes filter checks, signing, the HTTP round trip on 127.0.0.1 and
the local exchange's handling. Run: ``python benchmarks/bench_order_roundtrip.py --n 500 --market usdm``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from decimal import Decimal

import aiohttp
import numpy as np

from orderflow.adapters.binance.common.config import TradingClientConfig
from orderflow.adapters.binance.common.signing import Credentials
from orderflow.adapters.binance.trading.client import BinanceTradingClient, sequential_ids


async def run(n: int, market: str) -> None:
    from orderflow.execution.local.testing import running_local_exchange

    with running_local_exchange(source="sim", seed=0, clock="manual", market=market) as ex:
        cfg = TradingClientConfig(market=market, rest_base_url=ex.rest_url, ws_base_url=ex.ws_url)
        creds = Credentials.hmac(ex.api_key, ex.api_secret)
        async with BinanceTradingClient(cfg, creds, client_id_gen=sequential_ids("bench", "0")) as client:
            prefix = "/api/v3" if market == "spot" else "/fapi/v1"
            sym = next(iter(client.filters))
            async with (
                aiohttp.ClientSession() as s,
                s.get(f"{ex.rest_url}{prefix}/depth?symbol={sym}&limit=5") as r,
            ):
                book = await r.json()
            f = client.filters[sym]
            price = (
                Decimal(book["bids"][0][0]) * Decimal("0.9") / f.tick_size
            ).to_integral_value() * f.tick_size
            qty = max(f.min_qty, (f.min_notional * 2 / price / f.step_size).to_integral_value() * f.step_size)
            place, cancel = [], []
            for _ in range(n):
                t0 = time.perf_counter_ns()
                o = await client.place_order(sym, "BUY", "LIMIT", qty, price)
                t1 = time.perf_counter_ns()
                await client.cancel_order(sym, order_id=o.order_id)
                t2 = time.perf_counter_ns()
                place.append(t1 - t0)
                cancel.append(t2 - t1)
            for name, xs in (("place+ack", place), ("cancel+ack", cancel)):
                a = np.asarray(xs) / 1e3
                print(
                    f"{market} {name:<11} n={n}  p50 {np.percentile(a, 50):8.0f} us  "
                    f"p99 {np.percentile(a, 99):8.0f} us  mean {a.mean():8.0f} us"
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--market", choices=["usdm", "spot", "both"], default="both")
    args = ap.parse_args()
    for m in ("usdm", "spot") if args.market == "both" else (args.market,):
        asyncio.run(run(args.n, m))


if __name__ == "__main__":
    main()
