"""Triple-barrier labels (López de Prado, *Advances in Financial Machine Learning*, ch. 3).

For each sample (an event index ``i`` of a price series, e.g. the mid at every book event) the
label looks forward from the sample's price ``p_i`` in log-return space ``r = log(p_j / p_i)``:

- upper barrier ``+pt·R_i`` (label +1, barrier "pt"), lower barrier ``−sl·R_i`` (label −1, "sl"),
- vertical barrier at ``t + horizon``, ``t`` the sample time (label 0, "vertical"); ``t_touch`` is
  then the vertical barrier time itself and ``ret`` the log return of the last event at or before it.

Rules (all tested):

- A barrier is touched when the return reaches it: ``r >= pt·R`` or ``r <= −sl·R`` (equality counts).
- Only events strictly after the sample row and with ``ts <= t + horizon`` are scanned, in row
  order; the first row that touches wins. With ``R > 0`` one return cannot touch both barriers, so a
  "tie" can only be two rows with the same timestamp: the earlier row (stored event order) wins.
- ``R_i`` is the *volatility unit*: the realised volatility of event log returns measured only on
  events at or before the sample row (no look-ahead), scaled to the horizon:
  ``R = sqrt(variance per second · horizon_s)``. ``vol_kind="rolling"``: the sum of squared returns in
  the window ``(ts_i − W, ts_i]`` divided by ``W`` (or, for a count window of ``n`` returns, by the
  time those ``n`` returns span). ``vol_kind="ewm"``: squared returns decayed with time constant ``W``
  (``exp(−Δt/W)``), divided by the weight integral ``W·(1 − exp(−(ts_i − ts_0)/W))``; for a count
  window an EWM (α = 2/(n+1)) of squared returns divided by an EWM of the time steps.
  ``R = max(R, min_vol)``. Before one full window of history ``R`` is NaN (warm-up).
- Unlabelled samples keep their row (label NaN, barrier "none", ``t_touch`` = vertical barrier time):
  warm-up (R NaN), zero volatility (``R == 0``: barriers would sit on the sample price; set
  ``min_vol > 0`` to label flat periods), and every sample whose vertical barrier lies after the last
  event of the data (``t + horizon > ts[-1]``), even if a horizontal barrier was touched before the
  data end (keeping only those would bias the tail towards touches). Drop them with
  ``out.dropna(subset=["label"])``.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import pandas as pd
from numba import njit

from orderflow.features.config import LabelConfig

log = logging.getLogger(__name__)

NS = 1_000_000_000
BARRIER_NAMES = ("none", "pt", "sl", "vertical")  # index = kernel code


# -- numba kernels --------------------------------------------------------------------------------


@njit(cache=True)
def _vol_time(ts: np.ndarray, logp: np.ndarray, window_ns: np.int64, ewm: bool) -> np.ndarray:
    """Variance of log returns per second at every event, from events at or before it (NaN in warm-up)."""
    n = ts.size
    out = np.full(n, np.nan)
    if n == 0:
        return out
    t0 = ts[0]
    s = 0.0  # rolling: sum of r^2 in the window; ewm: decayed sum
    nonzero = 0  # rolling: nonzero returns in the window (exact zero detection)
    lo = 1  # rolling: first return index inside the window
    for i in range(1, n):
        r = logp[i] - logp[i - 1]
        if ewm:
            s = s * np.exp(-(ts[i] - ts[i - 1]) / window_ns) + r * r
        else:
            s += r * r
            if r != 0.0:
                nonzero += 1
            while ts[lo] <= ts[i] - window_ns:
                rl = logp[lo] - logp[lo - 1]
                s -= rl * rl
                if rl != 0.0:
                    nonzero -= 1
                lo += 1
            if nonzero == 0 or s < 0.0:
                s = 0.0
        if ts[i] - t0 >= window_ns:
            if ewm:
                out[i] = s / (window_ns * (1.0 - np.exp(-(ts[i] - t0) / window_ns)) / NS)
            else:
                out[i] = s / (window_ns / NS)
    return out


@njit(cache=True)
def _vol_count(ts: np.ndarray, logp: np.ndarray, nwin: int, ewm: bool) -> np.ndarray:
    """As :func:`_vol_time` with a window of ``nwin`` returns."""
    n = ts.size
    out = np.full(n, np.nan)
    alpha = 2.0 / (nwin + 1.0)
    a = 0.0
    b = 0.0
    for i in range(1, n):
        r = logp[i] - logp[i - 1]
        if ewm:
            if i == 1:
                a = r * r
                b = float(ts[1] - ts[0])
            else:
                a = (1.0 - alpha) * a + alpha * r * r
                b = (1.0 - alpha) * b + alpha * (ts[i] - ts[i - 1])
            if i >= nwin and b > 0:
                out[i] = a / (b / NS)
        elif i >= nwin:
            s = 0.0
            for k in range(i - nwin + 1, i + 1):
                d = logp[k] - logp[k - 1]
                s += d * d
            span = ts[i] - ts[i - nwin]
            if span > 0:
                out[i] = s / (span / NS)
    return out


@njit(cache=True)
def _scan(
    ts: np.ndarray,
    logp: np.ndarray,
    idx: np.ndarray,
    t_sample: np.ndarray,
    unit: np.ndarray,
    pt: float,
    sl: float,
    horizon_ns: np.int64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    m = idx.size
    n = ts.size
    label = np.full(m, np.nan)
    t_touch = np.empty(m, dtype=np.int64)
    ret = np.full(m, np.nan)
    code = np.zeros(m, dtype=np.int8)
    t_end = ts[n - 1] if n > 0 else np.int64(0)
    for k in range(m):
        i = idx[k]
        tv = t_sample[k] + horizon_ns
        t_touch[k] = tv
        u = unit[k]
        if not (u > 0.0) or tv > t_end:  # NaN / zero vol, or the horizon runs past the data
            continue
        up = pt * u
        dn = -sl * u
        p0 = logp[i]
        last = i
        j = i + 1
        while j < n and ts[j] <= tv:
            r = logp[j] - p0
            if r >= up:
                label[k], t_touch[k], ret[k], code[k] = 1.0, ts[j], r, 1
                break
            if r <= dn:
                label[k], t_touch[k], ret[k], code[k] = -1.0, ts[j], r, 2
                break
            last = j
            j += 1
        if code[k] == 0:
            label[k], ret[k], code[k] = 0.0, logp[last] - p0, 3
    return label, t_touch, ret, code


# -- public API -----------------------------------------------------------------------------------


def vol_unit(ts_ns: np.ndarray, price: np.ndarray, cfg: LabelConfig) -> np.ndarray:
    """The volatility unit R at every event (see the module docstring), NaN during warm-up."""
    ts, logp = _prepare(ts_ns, price)
    if cfg.vol_window_n is not None:
        var = _vol_count(ts, logp, int(cfg.vol_window_n), cfg.vol_kind == "ewm")
    else:
        var = _vol_time(ts, logp, np.int64(round(cfg.vol_window_s * NS)), cfg.vol_kind == "ewm")
    unit = np.sqrt(var * cfg.horizon_s)
    return np.where(np.isnan(unit), np.nan, np.maximum(unit, cfg.min_vol))


def _prepare(ts_ns: np.ndarray, price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ts = np.ascontiguousarray(ts_ns, dtype=np.int64)
    p = np.ascontiguousarray(price, dtype=np.float64)
    if ts.ndim != 1 or p.shape != ts.shape:
        raise ValueError(f"triple_barrier: ts_ns {ts.shape} and price {p.shape} must be equal 1-D shapes")
    if ts.size and np.any(np.diff(ts) < 0):
        bad = int(np.argmax(np.diff(ts) < 0)) + 1
        raise ValueError(f"triple_barrier: ts_ns decreases at row {bad} ({ts[bad - 1]} -> {ts[bad]})")
    bad = ~(np.isfinite(p) & (p > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"triple_barrier: price must be finite and positive; row {i} is {p[i]!r}")
    return ts, np.log(p)


def _mode(n: int, samples: np.ndarray | None, by: str) -> str:
    if by not in ("auto", "index", "ts"):
        raise ValueError(f"triple_barrier: by must be 'auto', 'index' or 'ts', got {by!r}")
    if samples is None:
        return "index"
    if by != "auto":
        return by
    s = np.asarray(samples)
    is_idx = np.issubdtype(s.dtype, np.integer) and (s.size == 0 or (s.min() >= 0 and s.max() < n))
    return "index" if is_idx else "ts"


def sample_index(
    ts_ns: np.ndarray, samples: np.ndarray | None, by: Literal["auto", "index", "ts"] = "auto"
) -> np.ndarray:
    """Row indices of the samples. ``by="index"``: ``samples`` are row numbers; ``by="ts"``: times, each
    mapped to the last row with ``ts <= t`` (−1 when before the first row; its price is the sample's
    price, the vertical barrier counts from ``t``); ``"auto"``: integer arrays
    whose values all lie in [0, n) are row numbers, anything else is times. ``None``: every row."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    n = ts.size
    if samples is None:
        return np.arange(n, dtype=np.int64)
    s = np.asarray(samples)
    if _mode(n, s, by) == "index":
        s = s.astype(np.int64)
        if s.size and (s.min() < 0 or s.max() >= n):
            raise ValueError(f"triple_barrier: sample index out of range [0, {n}): {s.min()}..{s.max()}")
        return s
    return np.searchsorted(ts, s.astype(np.int64), side="right").astype(np.int64) - 1


def triple_barrier(
    ts_ns: np.ndarray,
    price: np.ndarray,
    samples: np.ndarray | None = None,
    cfg: LabelConfig | None = None,
    *,
    by: Literal["auto", "index", "ts"] = "auto",
    unit: np.ndarray | None = None,
) -> pd.DataFrame:
    """Triple-barrier labels of ``samples`` (row indices or times, see :func:`sample_index`) over the
    price series (``ts_ns``, ``price``), e.g. the mid at every book event.

    Returns one row per sample: ``ts_event`` (the sample time; for time samples the given time),
    ``label`` (+1/−1/0, NaN when unlabelled), ``t_touch`` (ns), ``ret`` (log return to the touch),
    ``barrier`` ("pt"/"sl"/"vertical"/"none") and ``vol_unit`` (R). ``unit`` overrides R per event."""
    cfg = cfg or LabelConfig()
    ts, logp = _prepare(ts_ns, price)
    mode = _mode(ts.size, samples, by)
    idx = sample_index(ts, samples, mode)  # type: ignore[arg-type]
    r_all = vol_unit(ts, np.exp(logp), cfg) if unit is None else np.asarray(unit, dtype=np.float64)
    if r_all.shape != ts.shape:
        raise ValueError(f"triple_barrier: unit has shape {r_all.shape}, expected {ts.shape}")
    ok = idx >= 0
    safe = np.where(ok, idx, 0)
    r = np.where(ok, r_all[safe], np.nan)
    t_sample = np.asarray(samples).astype(np.int64) if mode == "ts" else ts[safe]
    h = np.int64(round(cfg.horizon_s * NS))
    label, t_touch, ret, code = _scan(ts, logp, safe, t_sample, r, float(cfg.pt), float(cfg.sl), h)
    out = pd.DataFrame(
        {
            "ts_event": t_sample,
            "label": label,
            "t_touch": t_touch,
            "ret": ret,
            "barrier": np.asarray(BARRIER_NAMES, dtype=object)[code],
            "vol_unit": r,
        }
    )
    log.debug("triple_barrier: %d samples, %d labelled", len(out), int(np.isfinite(label).sum()))
    return out


def sample_weights_by_uniqueness(ts_event: np.ndarray, t_touch: np.ndarray) -> np.ndarray:
    """Average uniqueness of each label (López de Prado §4.4): the mean over the sample times inside
    ``[ts_event_i, t_touch_i]`` of 1 / (number of label spans covering that time). 1.0 when no span
    overlaps another; lower when labels are concurrent."""
    t0 = np.asarray(ts_event, dtype=np.int64)
    t1 = np.asarray(t_touch, dtype=np.int64)
    if t0.shape != t1.shape:
        raise ValueError(f"uniqueness: ts_event {t0.shape} and t_touch {t1.shape} differ")
    if t0.size == 0:
        return np.zeros(0)
    grid = np.unique(t0)
    started = np.searchsorted(np.sort(t0), grid, side="right")
    ended = np.searchsorted(np.sort(t1), grid, side="left")
    conc = started - ended  # spans with t0 <= g <= t1
    inv = np.concatenate([[0.0], np.cumsum(1.0 / np.maximum(conc, 1))])
    lo = np.searchsorted(grid, t0, side="left")
    hi = np.searchsorted(grid, t1, side="right")
    return (inv[hi] - inv[lo]) / np.maximum(hi - lo, 1)
