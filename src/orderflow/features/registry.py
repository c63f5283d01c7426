"""The feature registry: every feature's name, group, definition, window and unit, in column order.

``default_specs(cfg)`` lists the columns of the feature matrix (batch) and of the streaming vector in
the order ``kernels._write`` fills them (groups ofi, cvd, micro, time, regime), followed by the
technical group (``spec.technical_specs``) and, when ``cfg.context`` is set, the market context
group (``spec.context_specs``). Conventions used in the definitions:

- A time window ``w`` at sample time t holds the events with ``t - w < ts <= t`` (event time).
- ``e_m`` is the per-event OFI of level m (Cont, Kukanov & Stoikov 2014, level by level as in Xu,
  Gould & Howison 2019; exactly ``ofi.ofi_per_event``). ``D_m`` is level m's running average depth:
  an EWMA of ``(bid_sz_m + ask_sz_m) / 2`` over good book events with half-life ``depth_halflife_s``
  of event time (weight of a new event ``1 - 2^(-dt/half-life)``, started at the first book).
  ``n_m = e_m / D_m`` is the normalised level OFI.
- Signed trade size: ``+size`` when the buyer aggressed, ``-size`` when the seller did (exchange
  flag); the tick rule only where the flag is 0.
- z-scores use the last ``zscore_window`` samples (book events) including the current one, population
  std; NaN until the window is full.
- ``r`` is the change of log mid between consecutive book events; ``ret_w`` is ``log mid(t) - log mid``
  of the last book event with ``ts <= t - w``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orderflow.features.spec import FeatureSpec, context_specs, technical_specs, wlabel

if TYPE_CHECKING:
    from orderflow.features.config import FeatureConfig


def _ofi(cfg: FeatureConfig) -> list[FeatureSpec]:
    L = cfg.levels
    S = FeatureSpec
    out = [
        S(f"ofi_e{m}", "ofi", f"per-event OFI of level {m} (Cont et al.; NaN at the first book after reset)",
          "event", "base units")
        for m in range(1, L + 1)
    ]  # fmt: skip
    wdesc = "1/m normalised to sum 1" if cfg.ofi_weights == "inverse" else "configured, normalised to sum 1"
    idesc = (
        "fitted PCA loadings (unit L1 norm)" if cfg.integrated_weights else "equal weights 1/L (not fitted)"
    )
    out += [
        S("ofi_w", "ofi", f"weighted multi-level OFI sum_m w_m n_m, w = {wdesc}", "event", "depth units"),
        S("ofi_int", "ofi", f"integrated OFI sum_m u_m n_m, u = {idesc}", "event", "depth units"),
    ]
    for w in cfg.momentum_windows_s:
        lw = wlabel(w)
        out += [
            S(f"ofi_l1_{lw}", "ofi", "sum of e_1 over the window", lw, "base units"),
            S(f"ofi_w_{lw}", "ofi", "sum of ofi_w over the window", lw, "depth units"),
            S(f"ofi_int_{lw}", "ofi", "sum of ofi_int over the window", lw, "depth units"),
        ]
    lw = wlabel(cfg.level_window_s)
    out += [
        S(f"ofi_n{m}_{lw}", "ofi", f"sum of n_{m} = e_{m} / D_{m} over the window", lw, "depth units")
        for m in range(1, L + 1)
    ]
    w0 = wlabel(cfg.momentum_windows_s[0])
    dv = wlabel(cfg.divergence_window_s)
    zw = f"{cfg.zscore_window} samples"
    out += [
        S(f"ofi_l1_z_{w0}", "ofi", f"z-score of ofi_l1_{w0}", zw, "std"),
        S(f"ofi_w_z_{w0}", "ofi", f"z-score of ofi_w_{w0}", zw, "std"),
        S(f"ofi_int_z_{w0}", "ofi", f"z-score of ofi_int_{w0}", zw, "std"),
        S(f"ofi_w_z_{dv}", "ofi", f"z-score of ofi_w_{dv}", zw, "std"),
    ]
    for w in cfg.vol_windows_s:
        lw = wlabel(w)
        out += [
            S(f"ofi_l1_std_{lw}", "ofi", "population std of per-event e_1 over the window", lw, "base units"),
            S(
                f"ofi_w_std_{lw}",
                "ofi",
                "population std of per-event ofi_w over the window",
                lw,
                "depth units",
            ),
        ]
    out += [
        S(f"ofi_div_{dv}", "ofi", f"z(ofi_w_{dv}) - z(ret_{dv}): flow not matched by price", f"{dv}, {zw}",
          "std"),
        S(f"ofi_div_sign_{dv}", "ofi", f"1 if ofi_w_{dv} and ret_{dv} have opposite signs, else 0", dv,
          "flag"),
    ]  # fmt: skip
    return out


def _cvd(cfg: FeatureConfig) -> list[FeatureSpec]:
    S = FeatureSpec
    out = [S("cvd", "cvd", "cumulative signed trade size since the last reset (start, gap, bad book)",
             "since reset", "base units")]  # fmt: skip
    for w in cfg.cvd_windows_s:
        lw = wlabel(w)
        out.append(S(f"cvd_chg_{lw}", "cvd", "sum of signed trade sizes over the window", lw, "base units"))
    for w in cfg.trade_windows_s:
        lw = wlabel(w)
        out += [
            S(f"buy_vol_{lw}", "cvd", "size of buyer-aggressed trades", lw, "base units"),
            S(f"sell_vol_{lw}", "cvd", "size of seller-aggressed trades", lw, "base units"),
            S(f"buy_n_{lw}", "cvd", "number of buyer-aggressed trades", lw, "trades"),
            S(f"sell_n_{lw}", "cvd", "number of seller-aggressed trades", lw, "trades"),
            S(f"trade_imb_{lw}", "cvd", "(buy_vol - sell_vol) / (buy_vol + sell_vol); NaN without trades",
              lw, "ratio -1..1"),
        ]  # fmt: skip
    c0 = wlabel(cfg.cvd_windows_s[0])
    dv = wlabel(cfg.divergence_window_s)
    zw = f"{cfg.zscore_window} samples"
    out += [
        S(f"cvd_z_{c0}", "cvd", f"z-score of cvd_chg_{c0}", zw, "std"),
        S(f"cvd_z_{dv}", "cvd", f"z-score of cvd_chg_{dv}", zw, "std"),
    ]
    for w in cfg.vol_windows_s:
        lw = wlabel(w)
        out.append(S(f"cvd_std_{lw}", "cvd", "population std of per-trade signed size", lw, "base units"))
    out += [
        S(f"cvd_div_{dv}", "cvd", f"z(cvd_chg_{dv}) - z(ret_{dv})", f"{dv}, {zw}", "std"),
        S(f"cvd_div_sign_{dv}", "cvd", f"1 if cvd_chg_{dv} and ret_{dv} have opposite signs, else 0", dv,
          "flag"),
    ]  # fmt: skip
    return out


def _micro(cfg: FeatureConfig) -> list[FeatureSpec]:
    L = cfg.levels
    S = FeatureSpec
    out = [
        S("spread_ticks", "micro", "(ask_px_1 - bid_px_1) / tick_size", "event", "ticks"),
        S("spread_bps", "micro", "(ask_px_1 - bid_px_1) / mid", "event", "bps"),
        S("microprice_bps", "micro", "(microprice - mid) / mid, microprice = (bid_px_1 ask_sz_1 + ask_px_1 "
          "bid_sz_1) / (bid_sz_1 + ask_sz_1)", "event", "bps"),
    ]  # fmt: skip
    out += [
        S(f"depth_imb_l{m}", "micro", f"(bid_sz_{m} - ask_sz_{m}) / (bid_sz_{m} + ask_sz_{m}), missing = 0",
          "event", "ratio -1..1")
        for m in range(1, L + 1)
    ]  # fmt: skip
    cums = ([5] if L > 5 else []) + [L]
    out += [
        S(f"depth_imb_cum{c}", "micro", f"depth imbalance of the sizes summed over levels 1..{c}", "event",
          "ratio -1..1")
        for c in cums
    ]  # fmt: skip
    out += [
        S("book_slope_bid", "micro", f"bid size over levels 1..{L} / (mid - deepest bid px) in bps", "event",
          "base units per bp"),
        S("book_slope_ask", "micro", f"ask size over levels 1..{L} / (deepest ask px - mid) in bps", "event",
          "base units per bp"),
        S("depth_bid", "micro", f"bid size over levels 1..{L}", "event", "base units"),
        S("depth_ask", "micro", f"ask size over levels 1..{L}", "event", "base units"),
    ]  # fmt: skip
    for w in cfg.momentum_windows_s:
        lw = wlabel(w)
        out.append(S(f"ret_{lw}", "micro", "log mid change over the window (ret_w)", lw, "bps"))
    for w in cfg.rv_windows_s:
        lw = wlabel(w)
        out.append(S(f"rv_{lw}", "micro", "sqrt(sum r^2) of per-event log mid changes", lw, "bps"))
    for w in cfg.trade_windows_s:
        lw = wlabel(w)
        out += [
            S(f"trade_rate_{lw}", "micro", "trades in the window / window length", lw, "trades/s"),
            S(f"trade_size_mean_{lw}", "micro", "mean trade size; NaN without trades", lw, "base units"),
        ]
    tw = wlabel(max(cfg.trade_windows_s))
    nk = f"{cfg.kyle_buckets} closed 1 s buckets"
    out += [
        S(f"trade_size_max_{tw}", "micro", "largest trade size (0 without trades)", tw, "base units"),
        S("kyle_lambda", "micro", "OLS slope of the bucket log mid change (bps) on the bucket signed size; "
          "buckets are [k s, (k+1) s) in UTC, empty ones count as (0, 0)", nk, "bps per base unit"),
        S("amihud", "micro", "sum |bucket log mid change| / sum bucket notional x 1e6", nk,
          "bps per 1e6 quote"),
        S("vpin", "micro", f"sum |buy - sell| / (K V) over the last K = {cfg.vpin_buckets} volume buckets of "
          f"V = {cfg.vpin_bucket_notional:g} quote notional (trades split across buckets; side = aggressor "
          "flag / tick rule)", f"{cfg.vpin_buckets} volume buckets", "ratio 0..1"),
    ]  # fmt: skip
    return out


def _time(cfg: FeatureConfig) -> list[FeatureSpec]:
    S = FeatureSpec
    out = [
        S("tod_sin", "time", "sin(2 pi x UTC time of day / 24 h)", "event", "unitless"),
        S("tod_cos", "time", "cos(2 pi x UTC time of day / 24 h)", "event", "unitless"),
        S("dow_sin", "time", "sin(2 pi x (weekday + day fraction) / 7), Monday = 0", "event", "unitless"),
        S("dow_cos", "time", "cos(2 pi x (weekday + day fraction) / 7), Monday = 0", "event", "unitless"),
        S("minute_of_hour", "time", "UTC minute of the hour", "event", "minutes 0-59"),
    ]
    if cfg.futures:
        hours = ", ".join(f"{h:g}" for h in cfg.funding_hours)
        out += [
            S("funding_s", "time", f"seconds to the next funding time (UTC hours {hours}; strictly after t)",
              "event", "s"),
            S("funding_frac", "time", "funding_s / length of the current funding period", "event",
              "fraction 0..1"),
        ]  # fmt: skip
    return out


def _regime(cfg: FeatureConfig) -> list[FeatureSpec]:
    S = FeatureSpec
    ws, wl = (wlabel(w) for w in cfg.regime_vol_windows_s)
    lo, hi = cfg.vol_state_thresholds
    hf, hs = cfg.trend_halflives_s
    return [
        S("vol_ratio", "regime", f"sqrt((rv_{ws}^2 / {ws}) / (rv_{wl}^2 / {wl})): short/long variance rate",
          f"{ws}, {wl}", "ratio"),
        S("vol_state", "regime", f"0 if vol_ratio < {lo:g}, 1 if <= {hi:g}, else 2", f"{ws}, {wl}", "state"),
        S("vol_pct", "regime", f"share of the last {cfg.vol_pct_buckets} 1 s bucket closes whose rv_{ws} "
          f"was <= the current rv_{ws}", f"{cfg.vol_pct_buckets} s", "fraction 0..1"),
        S("trend_bps", "regime", f"EWMA(log mid, half-life {hf:g} s) - EWMA(log mid, half-life {hs:g} s)",
          f"half-lives {hf:g} s, {hs:g} s", "bps"),
        S("trend_strength", "regime", f"trend_bps / rv_{wl}", f"{hs:g} s", "ratio"),
        S("trend_state", "regime", f"sign(trend_strength) if |trend_strength| > {cfg.trend_threshold:g} "
          "else 0", f"{hs:g} s", "state -1/0/1"),
    ]  # fmt: skip


def core_specs(cfg: FeatureConfig) -> list[FeatureSpec]:
    """The kernel's features (every group but technical), in column order."""
    return _ofi(cfg) + _cvd(cfg) + _micro(cfg) + _time(cfg) + _regime(cfg)


def default_specs(cfg: FeatureConfig) -> list[FeatureSpec]:
    """Every feature of ``cfg`` in column order (order of the matrix and the streaming vector)."""
    specs = core_specs(cfg)
    if cfg.technical is not None:
        specs += technical_specs(cfg.technical)
    if cfg.context is not None:
        specs += context_specs(cfg.context)
    return specs


def group_counts(specs: list[FeatureSpec]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in specs:
        out[s.group] = out.get(s.group, 0) + 1
    return out
