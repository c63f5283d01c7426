"""Batch feature engine: the streaming kernels run in one compiled loop over whole arrays.

``batch_features`` gives, for every book row, exactly what ``StreamingFeatureEngine`` emits when fed
the same events in time order (trades, then gaps, then the book event at equal ts).
``fit_integrated_weights`` fits the integrated-OFI loadings on an explicit training window.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from orderflow.data.schema import book_arrays
from orderflow.features import kernels as FK
from orderflow.features.config import FeatureConfig
from orderflow.features.context import context_batch, needed_kinds, ordered_rows
from orderflow.features.engine import StreamingFeatureEngine
from orderflow.features.ofi import average_depth, bucket_ofi, mid_price, ofi_per_event
from orderflow.features.registry import default_specs
from orderflow.features.state import KernelState, combine_validity
from orderflow.features.technical import technical_batch

log = logging.getLogger(__name__)


def _sorted(df: pd.DataFrame, what: str) -> pd.DataFrame:
    ts = df["ts_event"].to_numpy()
    if len(ts) > 1 and np.any(np.diff(ts) < 0):
        log.warning("%s rows are not in ts_event order: sorting them (stable)", what)
        return df.sort_values("ts_event", kind="mergesort")
    return df


def _trade_arrays(trade_df: pd.DataFrame | None):
    if trade_df is None or len(trade_df) == 0:
        return (np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, np.int64))
    missing = {"ts_event", "price", "size", "side"} - set(trade_df.columns)
    if missing:
        raise ValueError(f"batch_features: trade frame lacks columns {sorted(missing)}")
    t = _sorted(trade_df, "trade")
    return (
        t["ts_event"].to_numpy(np.int64),
        t["price"].to_numpy(np.float64),
        t["size"].to_numpy(np.float64),
        t["side"].to_numpy(np.int64),
    )


def batch_features(
    book_df: pd.DataFrame,
    trade_df: pd.DataFrame | None,
    cfg: FeatureConfig,
    gaps_df: pd.DataFrame | None = None,
    context: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Feature matrix at every book row: ts_event, every feature of ``default_specs(cfg)`` in order,
    ``valid`` (bool) and ``invalid_reason`` ('' when valid). ``context``: kind -> context frame
    (``orderflow.data.context_schema``) for the context group (``cfg.context``); a kind left out
    keeps its features NaN."""
    if "ts_event" not in book_df.columns:
        raise ValueError("batch_features: book frame lacks ts_event")
    book_df = _sorted(book_df, "book")
    L = cfg.levels
    have = sum(1 for c in book_df.columns if c.startswith("bid_px_"))
    if have < L:
        raise ValueError(f"batch_features: book frame has {have} levels, cfg.levels = {L}")
    bp, bs, ap, aq = (np.ascontiguousarray(a) for a in book_arrays(book_df, L))
    bts = book_df["ts_event"].to_numpy(np.int64)
    tts, tpx, tsz, tside = _trade_arrays(trade_df)
    gts = (
        np.sort(gaps_df["ts_event"].to_numpy(np.int64))
        if gaps_df is not None and len(gaps_df)
        else np.zeros(0, np.int64)
    )
    st = KernelState(cfg)
    specs = default_specs(cfg)
    n = len(bts)
    core = np.empty((n, st.n_core))
    status = np.zeros(n, dtype=np.int8)
    FK.run_batch(st.state, bts, bp, bs, ap, aq, tts, tpx, tsz, tside, gts, core, status)
    tech = None
    if cfg.technical is not None:
        tech = technical_batch(tts, tpx, tsz, tside, bts, cfg.technical)
    status = combine_validity(status, tech, cfg.require_technical_warm)
    blocks = [core] + ([tech] if tech is not None else [])
    if cfg.context is not None:
        blocks.append(context_batch(context or {}, tts, tpx, tsz, tside, bts, cfg.context))
    mat = np.hstack(blocks) if len(blocks) > 1 else core
    out = pd.DataFrame(mat, columns=[s.name for s in specs])
    out.insert(0, "ts_event", bts)
    out["valid"] = status == FK.OK
    out["invalid_reason"] = np.array(FK.REASONS, dtype=object)[status]
    if st.I[FK.I_OVERFLOW]:
        log.warning("feature ring full: %d events dropped from windows", int(st.I[FK.I_OVERFLOW]))
    return out


def build_features(
    store,
    venue: str,
    symbol: str,
    cfg: FeatureConfig,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> pd.DataFrame:
    """``batch_features`` over the stored book, trade and gap kinds of one symbol in [start, end).
    The tick size comes from the store's instrument when ``cfg.tick_size`` is None. With
    ``cfg.context``, the context kinds of the symbol and ``alternative.me/FNG/fear_greed`` are read
    too (every row with ts_event < end, so the windows include the history before start; the
    features see a row only from its ts_recv)."""
    book = store.read(venue, symbol, "book", start_ns, end_ns)
    if book.empty:
        raise ValueError(f"build_features: no book rows stored for {venue}/{symbol}")
    if cfg.tick_size is None:
        inst = store.instrument(venue, symbol)
        if inst is None:
            raise ValueError(f"build_features: tick size of {venue}/{symbol} unknown; set cfg.tick_size")
        cfg = cfg.model_copy(update={"tick_size": inst.tick_size})
    trades = store.read(
        venue, symbol, "trade", start_ns, end_ns, columns=["ts_event", "price", "size", "side"]
    )
    gaps = store.read(venue, symbol, "gap", start_ns, end_ns)
    context = read_context(store, venue, symbol, cfg, end_ns) if cfg.context is not None else None
    return batch_features(book, trades, cfg, gaps if len(gaps) else None, context)


def read_context(store, venue: str, symbol: str, cfg: FeatureConfig, end_ns: int | None = None):
    """The stored context kinds the context group reads (kind -> frame; kinds not stored are left
    out): the symbol's, and the fear & greed index of ``alternative.me/FNG``."""
    if cfg.context is None:
        return {}
    out = {}
    for kind in needed_kinds(cfg.context):
        v, s = ("alternative.me", "FNG") if kind == "fear_greed" else (venue, symbol)
        df = store.read(v, s, kind, None, end_ns)
        if len(df):
            out[kind] = df
    return out


def fit_integrated_weights(
    book_df: pd.DataFrame, cfg: FeatureConfig, start_ns: int, end_ns: int
) -> tuple[float, ...]:
    """Integrated-OFI loadings (Xu, Gould & Howison 2019) fitted on book rows in [start_ns, end_ns):
    the first principal component of the 1 s bucketed level OFIs normalised by each level's average
    depth over the window; sign fixed so the loadings sum to a positive number; unit L1 norm."""
    ts = book_df["ts_event"].to_numpy(np.int64)
    sel = (ts >= start_ns) & (ts < end_ns)
    if sel.sum() < 3:
        raise ValueError(f"fit_integrated_weights: {int(sel.sum())} book rows in [{start_ns}, {end_ns})")
    bp, bs, ap, aq = (a[sel] for a in book_arrays(book_df, cfg.levels))
    e = ofi_per_event(bp, bs, ap, aq)
    b = bucket_ofi(ts[sel], e, mid_price(bp, ap), NS_BUCKET)
    x = b.normalised(average_depth(bs, aq))
    x = x[np.all(np.isfinite(x), axis=1)]
    if x.shape[0] < 2:
        raise ValueError("fit_integrated_weights: fewer than 2 usable 1 s buckets in the training window")
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    w = vt[0]
    if w.sum() < 0:
        w = -w
    return tuple(float(v) for v in w / np.abs(w).sum())


NS_BUCKET = 1_000_000_000


def stream_features(
    book_df: pd.DataFrame,
    trade_df: pd.DataFrame | None,
    cfg: FeatureConfig,
    gaps_df: pd.DataFrame | None = None,
    context: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The same matrix as ``batch_features``, produced by replaying the events one by one through a
    ``StreamingFeatureEngine`` (trades, then gaps, then the book at equal ts; context rows at their
    ts_recv, after trades and before the book at equal time). For checks and tests."""
    book_df = _sorted(book_df, "book")
    context = context or {}
    eng = StreamingFeatureEngine(cfg, context_kinds=context.keys())
    crow: list[tuple[int, int, str, dict]] = []
    if cfg.context is not None:
        for kind, df in ordered_rows(context, cfg.context):
            crow += [(int(r["ts_recv"]), int(r["ts_event"]), kind, r) for r in df.to_dict("records")]
        crow.sort(key=lambda x: (x[0], x[1]))
    cts = [c[0] for c in crow]
    bp, bs, ap, aq = (np.ascontiguousarray(a) for a in book_arrays(book_df, cfg.levels))
    bts = book_df["ts_event"].to_numpy(np.int64)
    tts, tpx, tsz, tside = _trade_arrays(trade_df)
    gts = (
        np.sort(gaps_df["ts_event"].to_numpy(np.int64))
        if gaps_df is not None and len(gaps_df)
        else np.zeros(0, np.int64)
    )
    rows = np.empty((len(bts), len(eng.specs)))
    reasons = []
    it = ig = ic = 0
    for i, tb in enumerate(bts.tolist()):
        while (
            (it < len(tts) and tts[it] <= tb)
            or (ig < len(gts) and gts[ig] <= tb)
            or (ic < len(cts) and cts[ic] <= tb)
        ):
            nxt_t = tts[it] if it < len(tts) and tts[it] <= tb else None
            nxt_g = gts[ig] if ig < len(gts) and gts[ig] <= tb else None
            nxt_c = cts[ic] if ic < len(cts) and cts[ic] <= tb else None
            if nxt_t is not None and (nxt_g is None or nxt_t <= nxt_g) and (nxt_c is None or nxt_t <= nxt_c):
                eng.on_trade(int(tts[it]), float(tpx[it]), float(tsz[it]), int(tside[it]))
                it += 1
            elif nxt_g is not None and (nxt_c is None or nxt_g <= nxt_c):
                eng.on_gap(int(gts[ig]), "gap row")
                ig += 1
            else:
                eng.on_context(crow[ic][2], crow[ic][3])
                ic += 1
        rows[i] = eng.on_book(tb, bp[i], bs[i], ap[i], aq[i])
        reasons.append(eng.reason)
    out = pd.DataFrame(rows, columns=eng.names())
    out.insert(0, "ts_event", bts)
    out["valid"] = np.array([r == "" for r in reasons], dtype=bool)
    out["invalid_reason"] = np.array(reasons, dtype=object)
    return out
