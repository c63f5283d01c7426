"""Paper-mode latency against the local exchange (prints figures; not a test).

Runs the live engine (`orderflow paper`'s PaperEngine) against an in-process local exchange on the
simulator with the OFI-only example strategy (so orders are sent without a trained model, unless
`--model DIR` gives a bundle) and prints:

- tick-to-order: from a book event handed out by the feed to the order handed to the trading client
  (book copy, streaming features, the ensemble when given, the trading core), p50/p99;
- per book event processing time, p50/p99;
- order round trips seen by the engine (orders, fills).

Run: .venv/bin/python benchmarks/bench_paper.py [--seconds 60] [--speed 20] [--model DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

import numpy as np

from orderflow.adapters.binance.common.signing import Credentials
from orderflow.config import load_config
from orderflow.core.instruments import KNOWN
from orderflow.engine.paper import PaperEngine
from orderflow.execution.local.testing import running_local_exchange

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--speed", type=float, default=20.0)
    ap.add_argument("--model", help="a bundle directory (default: none, the OFI-only strategy)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(REPO / "config" / "examples" / "ofi-only", environ={})
    model = None
    if args.model:
        from orderflow.models.serving import EnsembleModel

        model = EnsembleModel.from_bundle(args.model, None)
    inst = KNOWN[("binance-usdm", "BTCUSDT")]
    hours = args.seconds * args.speed / 3600 + 0.05
    with running_local_exchange(source="sim", seed=1, clock="realtime", speed=args.speed, market="usdm",
                                sim_hours=hours) as ex:  # fmt: skip
        eng = PaperEngine(cfg, "usdm", "BTCUSDT", ex.rest_url, ex.ws_url,
                          Credentials.hmac(ex.api_key, ex.api_secret), inst, model)  # fmt: skip
        st = asyncio.run(eng.run(args.seconds / 60))
    ev, tto = np.array(st.event_us), np.array(st.tick_to_order_us)
    print(f"paper engine vs local exchange, {args.seconds:g} s at {args.speed:g}x, model "
          f"{args.model or 'none (OFI-only strategy)'}")  # fmt: skip
    print(
        f"book events {st.book_events:,} ({st.valid_rows:,} valid), orders {st.orders_sent}, fills {st.fills}"
    )
    if ev.size:
        print(f"per book event: p50 {np.percentile(ev, 50):.0f} us, p99 {np.percentile(ev, 99):.0f} us")
    if tto.size:
        print(f"tick-to-order: p50 {np.percentile(tto, 50):.0f} us, p99 {np.percentile(tto, 99):.0f} us "
              f"over {tto.size} orders (target: single-digit milliseconds)")  # fmt: skip


if __name__ == "__main__":
    main()
