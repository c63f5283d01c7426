"""OFI price-impact study (Cont, Kukanov & Stoikov 2014; Xu, Gould & Howison 2019; Cont, Cucuringu &
Zhang 2021): how much of the mid-price change over an interval the order-flow imbalance explains.

For each interval, buckets are aligned to the first book event; ``y`` is the mid change in ticks
between the last book states of consecutive buckets and ``x_m`` the bucket's level-m OFI divided by
level m's average depth over the whole sample (:func:`orderflow.features.ofi.impact_design`, the same
rows as :func:`orderflow.features.ofi.ofi_price_impact`). Every R^2 is an OLS with an intercept:

- ``r2_best``: level 1 alone (``beta_best`` its slope, ticks per unit of normalised OFI);
- ``r2_multi``: levels 1..L jointly (in-sample it nests the best level, so ``r2_multi >= r2_best``);
  ``r2_multi_adj`` is its adjusted R^2 (L regressors);
- ``r2_weighted``: one regressor Σ_m w_m x_m with w_m = 1/m by default;
- ``r2_integrated``: one regressor, the projection on the first principal component of the
  normalised levels, the PCA fitted on the whole sample (in-sample, as in the published studies);
- ``r2_integrated_oos`` / ``r2_multi_oos``: PCA weights and OLS coefficients fitted on the first half
  of the buckets, R^2 (1 − SSE/SST around the second half's mean) on the second half.

Undefined figures (too few buckets for the regressors, constant mid) are ``None`` in the result, so
it is JSON as is.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from orderflow.core.instruments import infer_tick
from orderflow.data.schema import book_arrays
from orderflow.data.store import Store
from orderflow.features.ofi import (
    impact_design,
    integrated_ofi,
    ofi_price_impact,
    ols_fit,
    pca_weights,
    r2_out_of_sample,
    weighted_ofi,
)

log = logging.getLogger(__name__)

NS = 1_000_000_000


def _num(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def _interval(
    ts: np.ndarray, arrs: tuple[np.ndarray, ...], seconds: float, tick: float, levels: int, weights
) -> dict[str, Any]:
    bucket_ns = round(seconds * NS)
    fit = ofi_price_impact(ts, *arrs, bucket_ns, tick, levels=levels)
    x, y = impact_design(ts, *arrs, bucket_ns, tick, levels=levels)
    n = y.size
    out: dict[str, Any] = {
        "seconds": seconds,
        "n": int(fit.n),
        "r2_best": _num(fit.r2_best),
        "r2_multi": _num(fit.r2_joint),
        "r2_multi_adj": None,
        "r2_weighted": None,
        "r2_integrated": None,
        "beta_best": _num(fit.beta_best),
        "r2_integrated_oos": None,
        "r2_multi_oos": None,
    }
    if n != fit.n:  # the two share one definition of the rows
        raise AssertionError(f"impact_study: design has {n} rows, ofi_price_impact {fit.n}")
    if math.isfinite(fit.r2_joint) and n > levels + 1:
        out["r2_multi_adj"] = _num(1.0 - (1.0 - fit.r2_joint) * (n - 1) / (n - levels - 1))
    if n >= 3:
        out["r2_weighted"] = _num(ols_fit(y, weighted_ofi(x, weights))[1])
        out["r2_integrated"] = _num(ols_fit(y, integrated_ofi(x, pca_weights(x)))[1])
    h = n // 2
    if h >= 3:
        w = pca_weights(x[:h])
        coef, _ = ols_fit(y[:h], integrated_ofi(x[:h], w))
        out["r2_integrated_oos"] = _num(r2_out_of_sample(y[h:], integrated_ofi(x[h:], w), coef))
        coef_m, _ = ols_fit(y[:h], x[:h])
        out["r2_multi_oos"] = _num(r2_out_of_sample(y[h:], x[h:], coef_m))
    return out


def impact_study(
    book_df: pd.DataFrame,
    tick: float,
    intervals_s: Sequence[float] = (1, 10, 60),
    levels: int = 10,
    weights: Sequence[float] | None = None,
) -> dict[str, Any]:
    """R^2 of the mid change in ticks on normalised OFI per interval (module docstring), from a stored
    ``book`` frame (ts_event, bid_px_1.., bid_sz_1.., ask_px_1.., ask_sz_1.. ordered by ts_event).

    Returns ``{"levels": L, "tick": tick, "book_events": n, "intervals": [{"seconds", "n", "r2_best",
    "r2_multi", "r2_weighted", "r2_integrated", "beta_best", ...}, ...]}``."""
    if not tick or not math.isfinite(tick) or tick <= 0:
        raise ValueError(f"impact_study: tick must be a positive number, got {tick!r}")
    if levels < 1:
        raise ValueError(f"impact_study: levels must be >= 1, got {levels}")
    stored = sum(1 for c in book_df.columns if c.startswith("bid_px_"))
    if stored < levels:
        raise ValueError(f"impact_study: the book frame has {stored} levels, {levels} requested")
    if len(book_df) < 2:
        raise ValueError(f"impact_study: need at least 2 book rows, got {len(book_df)}")
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    ts = book_df["ts_event"].to_numpy(np.int64)
    arrs = book_arrays(book_df, levels)
    rows = []
    for s in intervals_s:
        if s <= 0:
            raise ValueError(f"impact_study: intervals must be positive seconds, got {s}")
        rows.append(_interval(ts, arrs, float(s), float(tick), levels, w))
        log.info("impact %s s: %s", s, rows[-1])
    return {"levels": levels, "tick": float(tick), "book_events": len(book_df), "intervals": rows}


def impact_from_store(
    store: Store,
    venue: str,
    symbol: str,
    intervals_s: Sequence[float] = (1, 10, 60),
    levels: int = 10,
    start_ns: int | None = None,
    end_ns: int | None = None,
    tick: float | None = None,
    weights: Sequence[float] | None = None,
) -> dict[str, Any]:
    """:func:`impact_study` on the stored ``book`` of ``venue``/``symbol`` in [start_ns, end_ns). The
    tick is the stored instrument's unless given (inferred from prices as a last resort)."""
    cols = ["ts_event"] + [
        f"{s}_{w}_{i}" for s in ("bid", "ask") for w in ("px", "sz") for i in range(1, levels + 1)
    ]
    book = store.read(venue, symbol, "book", start_ns, end_ns, columns=cols)
    if len(book) < 2:
        raise ValueError(f"impact_from_store: {venue}/{symbol} has {len(book)} book rows in {store.root}")
    if tick is None:
        inst = store.instrument(venue, symbol)
        if inst is not None:
            tick = inst.tick_size
        else:
            px = book[["bid_px_1", "ask_px_1"]].to_numpy(np.float64).ravel()
            tick = infer_tick(px[np.isfinite(px)])
            log.warning(
                "impact_from_store: no stored instrument for %s/%s, inferred tick %s", venue, symbol, tick
            )
    out = impact_study(book, tick, intervals_s, levels, weights)
    return {"venue": venue, "symbol": symbol, **out}


def render_impact(result: dict[str, Any]) -> str:
    """A text table of an :func:`impact_study` result, one row per interval ("-" where undefined)."""
    cols = [
        ("seconds", "{:g}"),
        ("n", "{:d}"),
        ("r2_best", "{:.3f}"),
        ("r2_multi", "{:.3f}"),
        ("r2_multi_adj", "{:.3f}"),
        ("r2_weighted", "{:.3f}"),
        ("r2_integrated", "{:.3f}"),
        ("r2_integrated_oos", "{:.3f}"),
        ("beta_best", "{:.2f}"),
    ]
    head = f"{result.get('venue', '')}/{result.get('symbol', '')}".strip("/")
    lines = [
        f"OFI price impact {head} (levels {result['levels']}, tick {result['tick']:g})".replace("  ", " ")
    ]
    lines.append(" ".join(f"{name:>17}" for name, _ in cols))
    for row in result["intervals"]:
        cells = ["-" if row.get(k) is None else fmt.format(row[k]) for k, fmt in cols]
        lines.append(" ".join(f"{c:>17}" for c in cells))
    return "\n".join(lines)
