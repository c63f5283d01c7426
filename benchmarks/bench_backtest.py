"""Backtest throughput: orderflow's compiled event loop vs hftbacktest on the same recorded events.
Prints figures; not a test. Run pinned to one core:

    taskset -c 0 .venv/bin/python benchmarks/bench_backtest.py [--data ../shared/data] [--hours 6]

Target: replay with fills and the strategy's decisions over precomputed features at >= 1,000,000
events/s on one core (events = book events + trades).

Data: (a) the real Binance USD-M recording ``hftbacktest_binance_raw/usdm/btcusdt_20240808.gz`` (about
6 min), imported with orderflow's importer into a temporary store (skipped when the data folder is
absent); (b) the market simulator, 6 h, seed 1 (as ``orderflow data simulate --hours 6 --seed 1``).

orderflow: features built once (not timed); probabilities from a fixed rule (:func:`rule_probs`);
``run_backtest`` with the config/ defaults except ``ev_cost_mult = 0``; compile (or numba cache load)
timed apart on a 60 s slice, then the best of ``--reps`` full runs. The first call in this process loads
numba's on-disk cache; a cold compile is measured once in a subprocess with an empty NUMBA_CACHE_DIR.

hftbacktest: the same trades and book changes converted by ``hftbt_convert`` (the lossless ``depth``
kind for the recording, top-20 row diffs for the simulator, which stores no depth kind), constant 10 ms
entry / 10 ms response latency (orderflow's default), risk-averse queue model, fees 2 / 5 bp, and the
no-partial-fill exchange of hftbacktest's examples (in 2.4.4 its partial-fill exchange ends the quote loop
with InvalidOrderStatus, code 14, when a cancel races a fill). Two numba strategies written here, timed
the same way (compile apart, best of reps):

- ``imbalance IOC`` (the comparable one): wakes on every feed message and order response; top-of-book
  imbalance (bid_qty - ask_qty) / (bid_qty + ask_qty) >= 0.6 enters long (<= -0.6 short) with a
  marketable IOC limit at the opposite best for 0.01 BTC; exits by IOC after 60 s or when the imbalance
  crosses the threshold the other way; one order in flight, >= 5 s between entries, at most 500 entries
  (orderflow's defaults: timeout 60 s, min_trade_interval 5 s, max_trades_24h 500).
- ``quote 10 ms``: the market-making style loop of hftbacktest's examples (the ~7M events/s reference):
  every 10 ms cancel stale quotes and post GTX bids/asks at the best prices, 0.01 BTC, |position| <= 0.1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hftbacktest import GTX, LIMIT, BacktestAsset, HashMapMarketDepthBacktest
from hftbacktest.order import IOC
from numba import njit

from orderflow.backtest import loop as LP
from orderflow.backtest.engine import Market, make_signals, run_backtest
from orderflow.config import load_config
from orderflow.data.importers.binance_raw import import_binance_raw
from orderflow.data.simulator import simulate
from orderflow.data.store import Store
from orderflow.features.batch import build_features

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hftbt_convert as HC

NS = 1_000_000_000
REAL_FILE = "hftbacktest_binance_raw/usdm/btcusdt_20240808.gz"
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Dataset:
    name: str
    store: Store
    venue: str
    symbol: str = "BTCUSDT"


def rule_probs(ofi_z: np.ndarray) -> np.ndarray:
    """The stand-in "model" (deterministic, in-sample, benchmark only): u = logistic(ofi_int_z_1s) (NaN as
    0); p(-1) = 0.9 (1 - u), p(0) = 0.1, p(+1) = 0.9 u. The confidence p(dir) / (p(+1) + p(-1)) = u passes
    the 0.7 gate when |z| >= 0.85."""
    u = 1.0 / (1.0 + np.exp(-np.nan_to_num(ofi_z)))
    return np.stack([0.9 * (1.0 - u), np.full_like(u, 0.1), 0.9 * u], axis=1)


_COLD = """
import sys, time, numpy as np
from orderflow.backtest.engine import Market, Signals, run_backtest
from orderflow.data.store import Store
st, v, s = Store(sys.argv[1]), sys.argv[2], sys.argv[3]
m = Market.from_frames(v, s, st.read(v, s, "book"), st.read(v, s, "trade"))
m = m.window(None, int(m.b_ts[0] + 60 * 10**9))
n = m.n_book
f = np.linspace(-2.0, 2.0, n)
one = np.ones(n)
sig = Signals(np.ones(n, bool), f, 0.5 - f / 5, 0.5 + f / 5, 2 * one, one, 0 * one, 0.5 * one)
t0 = time.perf_counter()
run_backtest(m, sig, st.instrument(v, s))
print(time.perf_counter() - t0)
"""


def cold_compile_seconds(ds: Dataset) -> float:
    """First ``run_backtest`` call in a fresh interpreter whose numba cache directory is empty: the compile
    of the loop and of every kernel it calls (synthetic signals on a 60 s slice; the types are what count)."""
    with tempfile.TemporaryDirectory(prefix="numba_cold_") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        args = [sys.executable, "-c", _COLD, str(ds.store.root), ds.venue, ds.symbol]
        out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900, check=True)
    return float(out.stdout.split()[-1])


def bench_orderflow(ds: Dataset, cfg, reps: int) -> tuple[dict, Market]:
    st, v, s = ds.store, ds.venue, ds.symbol
    t0 = time.perf_counter()
    feats = build_features(st, v, s, cfg.features)
    t_feat = time.perf_counter() - t0
    market = Market.from_frames(v, s, st.read(v, s, "book"), st.read(v, s, "trade"))
    scfg = cfg.strategy.model_copy(update={"ev_cost_mult": 0.0})
    sig = make_signals(feats, rule_probs(feats[scfg.ofi_feature].to_numpy()), scfg)
    filled = int(np.isnan(sig.vol_pct).sum())
    sig.vol_pct = np.nan_to_num(sig.vol_pct, nan=0.5)  # a short file never fills the percentile's history
    inst = st.instrument(v, s)
    end = int(market.b_ts[0] + 60 * NS)
    head = market.b_ts < end
    t0 = time.perf_counter()
    run_backtest(market.window(None, end), sig.window(head), inst, cfg.backtest, scfg, cfg.risk)
    t_compile = time.perf_counter() - t0
    hits = sum(LP.run_loop.stats.cache_hits.values())
    best_loop, best_call, r = np.inf, np.inf, None
    for _ in range(reps):
        t0 = time.perf_counter()
        r = run_backtest(market, sig, inst, cfg.backtest, scfg, cfg.risk)
        best_call = min(best_call, time.perf_counter() - t0)
        best_loop = min(best_loop, r.seconds)
    print(f"  orderflow: features {feats.shape} in {t_feat:.1f} s (not timed), valid rows "
          f"{sig.valid.mean():.1%}, vol_pct NaN filled with 0.5: {filled} rows; first call on 60 s "
          f"{t_compile:.2f} s ({'numba cache load' if hits else 'compile'})")  # fmt: skip
    print(f"  orderflow: orders {r.orders}, fills {len(r.fills)}, round trips {len(r.trades)}, "
          f"net pnl {r.trades['net_pnl'].sum():.2f}, refusals {r.rejections}")  # fmt: skip
    return {
        "events": r.events, "book": market.n_book, "trades": int(market.t_ts.size), "orders": r.orders,
        "fills": len(r.fills), "round_trips": len(r.trades), "compile": t_compile, "loop": best_loop,
        "call": best_call,
    }, market  # fmt: skip


@njit
def hbt_imbalance_ioc(hbt, thr, qty, hold_ns, gap_ns, max_entries, out):
    """Feed-driven imbalance taker (module docstring). out: wakes, orders, entries, last return code
    (1 = end of data; >= 10 an hftbacktest error), final best bid and ask ticks."""
    oid = 0
    inflight = False
    entry_ts = 0
    last_entry = -(2**62)
    entries = 0
    wakes = 0
    while True:
        r = hbt.wait_next_feed(True, 1_000_000_000_000)
        if r == 1 or r >= 10:
            break
        wakes += 1
        if inflight:
            o = hbt.orders(0).get(oid)
            if o is None or o.req == 0:  # response received (filled / expired / rejected)
                inflight = False
                hbt.clear_inactive_orders(0)
            else:
                continue
        d = hbt.depth(0)
        bq, aq = d.best_bid_qty, d.best_ask_qty
        if not (bq > 0.0 and aq > 0.0):
            continue
        imb = (bq - aq) / (bq + aq)
        pos = hbt.position(0)
        now = hbt.current_timestamp
        if abs(pos) < 1e-9:
            if entries < max_entries and abs(imb) >= thr and now - last_entry >= gap_ns:
                oid += 1
                if imb > 0:
                    hbt.submit_buy_order(0, oid, d.best_ask, qty, IOC, LIMIT, False)
                else:
                    hbt.submit_sell_order(0, oid, d.best_bid, qty, IOC, LIMIT, False)
                inflight = True
                entries += 1
                entry_ts = now
                last_entry = now
        elif now - entry_ts >= hold_ns or (pos > 0 and imb <= -thr) or (pos < 0 and imb >= thr):
            oid += 1
            if pos > 0:
                hbt.submit_sell_order(0, oid, d.best_bid, pos, IOC, LIMIT, False)
            else:
                hbt.submit_buy_order(0, oid, d.best_ask, -pos, IOC, LIMIT, False)
            inflight = True
    d = hbt.depth(0)
    out[0], out[1], out[2], out[3], out[4], out[5] = wakes, oid, entries, r, d.best_bid_tick, d.best_ask_tick


@njit
def hbt_quote(hbt, every_ns, qty, max_pos, out):
    """Quote both bests every ``every_ns`` (module docstring). out: wakes, orders, cancels, last return
    code, final best bid and ask ticks."""
    oid = 0
    wakes = 0
    cancels = 0
    while True:
        r = hbt.elapse(every_ns)
        if r != 0:
            break
        wakes += 1
        hbt.clear_inactive_orders(0)
        d = hbt.depth(0)
        bid_t, ask_t = d.best_bid_tick, d.best_ask_tick
        if not (bid_t < ask_t) or d.best_bid_qty <= 0.0 or d.best_ask_qty <= 0.0:
            continue
        pos = hbt.position(0)
        have_bid = False
        have_ask = False
        it = hbt.orders(0).values()
        while it.has_next():
            o = it.get()
            if not o.cancellable:
                continue
            want = bid_t if o.side == 1 else ask_t
            if o.price_tick != want:
                hbt.cancel(0, o.order_id, False)
                cancels += 1
            elif o.side == 1:
                have_bid = True
            else:
                have_ask = True
        if not have_bid and pos < max_pos:
            oid += 1
            hbt.submit_buy_order(0, oid, d.best_bid, qty, GTX, LIMIT, False)
        if not have_ask and pos > -max_pos:
            oid += 1
            hbt.submit_sell_order(0, oid, d.best_ask, qty, GTX, LIMIT, False)
    d = hbt.depth(0)
    out[0], out[1], out[2], out[3], out[4], out[5] = wakes, oid, cancels, r, d.best_bid_tick, d.best_ask_tick


def _hbt(data: np.ndarray, tick: float, lot: float):
    asset = (
        BacktestAsset().data(data).linear_asset(1.0).constant_order_latency(10_000_000, 10_000_000)
        .risk_adverse_queue_model().no_partial_fill_exchange().trading_value_fee_model(0.0002, 0.0005)
        .tick_size(tick).lot_size(lot).last_trades_capacity(0)
    )  # fmt: skip
    return HashMapMarketDepthBacktest([asset])


def _time_hbt(fn, args, data, head, tick, lot, reps) -> tuple[float, float, np.ndarray, tuple]:
    out = np.zeros(6, np.int64)
    hbt = _hbt(head, tick, lot)
    t0 = time.perf_counter()
    fn(hbt, *args, out)
    t_compile = time.perf_counter() - t0
    hbt.close()
    best = np.inf
    for _ in range(reps):
        hbt = _hbt(data, tick, lot)  # loads the array into hftbacktest (not timed)
        t0 = time.perf_counter()
        fn(hbt, *args, out)
        best = min(best, time.perf_counter() - t0)
        sv = hbt.state_values(0)
        state = (sv.num_trades, sv.position)
        hbt.close()
        if out[3] != 1:
            raise RuntimeError(f"hftbacktest stopped before the end of the data: return code {out[3]}")
    return t_compile, best, out.copy(), state


def bench_hbt(ds: Dataset, market: Market, reps: int) -> dict:
    st, v, s = ds.store, ds.venue, ds.symbol
    t0 = time.perf_counter()
    trades = HC.trade_events(st.read(v, s, "trade"))
    if st.files(v, s, "depth"):
        book = HC.depth_events(st.read(v, s, "depth"))
        how = "lossless depth kind"
    else:
        m = market
        book = HC.book_diff_events(m.b_ts, m.b_recv, m.bid_px, m.bid_sz, m.ask_px, m.ask_sz)
        how = "top-20 book row diffs"
    data = HC.merge(trades, book)
    print(f"  hftbacktest: converted in {time.perf_counter() - t0:.1f} s ({how}): {len(data):,} rows "
          f"({len(book):,} level changes + {len(trades):,} trades)")  # fmt: skip
    head = data[: min(len(data), 20_000)].copy()
    inst = st.instrument(v, s)
    res = {"rows": len(data)}
    runs = (
        ("imbalance IOC", hbt_imbalance_ioc, (0.6, 0.01, 60 * NS, 5 * NS, 500)),
        ("quote 10 ms", hbt_quote, (10_000_000, 0.01, 0.1)),
    )
    for name, fn, args in runs:
        t_c, best, out, (fills, pos) = _time_hbt(fn, args, data, head, inst.tick_size, inst.lot_size, reps)
        extra = f"entries {out[2]}" if fn is hbt_imbalance_ioc else f"cancels {out[2]:,}"
        same = (out[4], out[5]) == (round(market.bid_px[-1, 0] / inst.tick_size),
                                    round(market.ask_px[-1, 0] / inst.tick_size))  # fmt: skip
        print(f"  hftbacktest {name}: compile {t_c:.2f} s; best {best:.3f} s; wakes {out[0]:,}, "
              f"orders {out[1]:,}, {extra}, fills {fills:,}, end position {pos:.3f}; final best bid/ask "
              f"{'equal' if same else 'DIFFER from'} orderflow's")  # fmt: skip
        res[name] = {"compile": t_c, "best": best, "orders": int(out[1]), "fills": int(fills)}
    return res


def load_real(data_dir: Path, tmp: Path) -> Dataset | None:
    path = data_dir / REAL_FILE
    if not path.exists():
        print(f"(a) real recording skipped: {path} not found (pass --data pointing at ../shared/data)")
        return None
    st = Store(tmp / "real")
    t0 = time.perf_counter()
    rep = import_binance_raw(st, [path])
    print(f"(a) imported {path.name} in {time.perf_counter() - t0:.1f} s: {rep.rows}")
    return Dataset("real usdm btcusdt 6 min", st, "binance-usdm")


def load_sim(cfg, hours: float, seed: int, tmp: Path) -> Dataset:
    st = Store(tmp / "sim")
    t0 = time.perf_counter()
    simulate(cfg.simulator.model_copy(update={"hours": hours, "seed": seed}), st)
    print(f"(b) simulated {hours:g} h (seed {seed}) in {time.perf_counter() - t0:.1f} s")
    return Dataset(f"simulator {hours:g} h seed {seed}", st, cfg.simulator.venue, cfg.simulator.symbol)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _row(*cells: str) -> str:
    widths = (26, 32, 10, 8, 12, 12, 7, 6, 9)
    cells = cells + ("",) * (len(widths) - len(cells))
    return " ".join(
        c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    ).rstrip()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args(argv)
    cores = sorted(os.sched_getaffinity(0))
    pin = "" if len(cores) == 1 else "  (not pinned: use taskset -c 0)"
    print(f"cores allowed: {cores}{pin}; load average {_load()}")
    cfg = load_config(ROOT / "config", environ={})
    rows = []
    cold = float("nan")
    with tempfile.TemporaryDirectory(prefix="bench_bt_") as tmp:
        for ds in (load_real(a.data, Path(tmp)), load_sim(cfg, a.hours, a.seed, Path(tmp))):
            if ds is None:
                continue
            print(f"[{ds.name}]")
            of, market = bench_orderflow(ds, cfg, a.reps)
            if not rows:
                cold = cold_compile_seconds(ds)
                print(f"  orderflow: cold numba compile (empty cache, subprocess): {cold:.1f} s")
            hb = bench_hbt(ds, market, a.reps)
            rows.append((ds.name, of, hb))
    print(f"\norderflow compile: cold {cold:.1f} s (empty numba cache); the 'compile s' column is the first "
          "call in this process (numba cache load for orderflow, a real compile for hftbacktest's strategies "
          "on the first data set, already compiled on the second)")  # fmt: skip
    print("events = book events + trades of the recording (the same count for both); "
          "hftbacktest rows = level changes + trades")  # fmt: skip
    print(_row("data", "engine / strategy", "events", "best s", "events/s", "rows/s", "orders", "fills",
               "compile s"))  # fmt: skip
    for name, of, hb in rows:
        ev, loop = of["events"], of["loop"]
        print(_row(name, "orderflow run_loop", f"{ev:,}", f"{loop:.3f}", f"{ev / loop:,.0f}", "",
                   f"{of['orders']:,}", f"{of['fills']:,}", f"{of['compile']:.2f}"))  # fmt: skip
        print(
            _row(
                "", "orderflow run_backtest (call)", f"{ev:,}", f"{of['call']:.3f}", f"{ev / of['call']:,.0f}"
            )
        )
        print(_row("", "  book events/s (loop)", f"{of['book']:,}", "", f"{of['book'] / loop:,.0f}"))
        for k in ("imbalance IOC", "quote 10 ms"):
            h = hb[k]
            print(_row("", "hftbacktest " + k, f"{ev:,}", f"{h['best']:.3f}", f"{ev / h['best']:,.0f}",
                       f"{hb['rows'] / h['best']:,.0f}", f"{h['orders']:,}", f"{h['fills']:,}",
                       f"{h['compile']:.2f}"))  # fmt: skip
        ioc, quote = hb["imbalance IOC"]["best"] / loop, hb["quote 10 ms"]["best"] / loop
        print(f"{'':26} ratio orderflow / hftbacktest (events/s): imbalance IOC {ioc:.2f}x, quote 10 ms "
              f"{quote:.2f}x; hftbacktest rows per event {hb['rows'] / ev:.1f}")  # fmt: skip
    print(
        "\nWhat differs. orderflow decides at every book event with its full strategy (OFI + probability "
        "fusion, quality/EV/regime gates, TP/SL/trailing/timeout exits), the risk engine's checks and "
        "sizing, "
        "funding, equity sampled every 1 s and fills/round trips written to arrays; its book is the stored "
        "top 20 after each event and its market orders walk it. hftbacktest's IOC strategy reads only the "
        "best-level imbalance, wakes once per feed timestamp (events sharing a local time come together) "
        "and per order response; its exchange (no partial fill) fills a crossing IOC fully at the best "
        "price. On the recording hftbacktest maintains the full lossless depth (every level change of every "
        "diff: many more rows per event); on the simulator both see the same top-20 book. The quote loop "
        "wakes every 10 ms regardless of the feed. Common: 10 ms entry/response latency, risk-averse queue, "
        "2 / 5 bp fees, recorded feed times clamped to >= exchange time."
    )
    print(f"load average at end {_load()}")


if __name__ == "__main__":
    main()
