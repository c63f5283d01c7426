"""Feature specs: what a feature column is (name, group, definition, window, unit), and the table of
the technical indicators (their names and definitions; the TA-Lib calls are in ``technical``).

No numba or TA-Lib here: the registry (``registry.default_specs``), the technical group and
configuration code import it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orderflow.features.config import ContextFeatureConfig, TechnicalConfig

GROUPS = ("ofi", "cvd", "micro", "time", "regime", "technical", "context")


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: stable ``name``, ``group``, how it is computed, over which window, in what unit."""

    name: str
    group: str
    definition: str
    window: str
    unit: str


def wlabel(w: float) -> str:
    """Window label used in names: 1.0 -> '1s', 0.5 -> '0.5s'."""
    return f"{w:g}s"


# name, definition (TA-Lib function and parameters), longest period in bars, unit
INDICATORS: tuple[tuple[str, str, int, str], ...] = (
    ("rsi_14", "talib.RSI(close, 14)", 14, "index 0-100"),
    ("macd_line", "talib.MACD(close, 12, 26, 9) macd / close", 26, "fraction of price"),
    ("macd_signal", "talib.MACD(close, 12, 26, 9) macdsignal / close", 26, "fraction of price"),
    ("macd_hist", "talib.MACD(close, 12, 26, 9) macdhist / close", 26, "fraction of price"),
    (
        "bb_pctb",
        "talib.BBANDS(close, 20, 2, 2, SMA): (close - lower) / (upper - lower), NaN if upper == lower",
        20,
        "ratio",
    ),
    ("bb_width", "talib.BBANDS(close, 20, 2, 2, SMA): (upper - lower) / middle", 20, "fraction"),
    ("natr_14", "talib.ATR(high, low, close, 14) / close", 14, "fraction of price"),
    ("adx_14", "talib.ADX(high, low, close, 14)", 14, "index 0-100"),
    ("plus_di_14", "talib.PLUS_DI(high, low, close, 14)", 14, "index 0-100"),
    ("minus_di_14", "talib.MINUS_DI(high, low, close, 14)", 14, "index 0-100"),
    (
        "obv_flow_20",
        "(OBV_t - OBV_t-20) / sum(volume, 20): OBV by talib.OBV's rule (sign of close change x "
        "volume), both sums taken afresh over the last 20 bars",
        20,
        "ratio -1..1",
    ),
    ("cci_20", "talib.CCI(high, low, close, 20)", 20, "index"),
    ("stoch_k", "talib.STOCH(high, low, close, 5, 3, SMA, 3, SMA) slowk", 5, "index 0-100"),
    ("stoch_d", "talib.STOCH(high, low, close, 5, 3, SMA, 3, SMA) slowd", 5, "index 0-100"),
    ("willr_14", "talib.WILLR(high, low, close, 14)", 14, "index -100-0"),
    ("mfi_14", "talib.MFI(high, low, close, volume, 14)", 14, "index 0-100"),
    ("roc_10", "talib.ROC(close, 10)", 10, "percent"),
    ("mom_10", "talib.MOM(close, 10) / close", 10, "fraction of price"),
    ("ema20_ratio", "close / talib.EMA(close, 20) - 1", 20, "fraction"),
    ("ema50_ratio", "close / talib.EMA(close, 50) - 1", 50, "fraction"),
    ("sma20_ratio", "close / talib.SMA(close, 20) - 1", 20, "fraction"),
    ("ultosc", "talib.ULTOSC(high, low, close, 7, 14, 28)", 28, "index 0-100"),
    ("aroonosc_14", "talib.AROONOSC(high, low, 14)", 14, "index -100-100"),
    ("cmo_14", "talib.CMO(close, 14)", 14, "index -100-100"),
    ("trix_15", "talib.TRIX(close, 15)", 15, "percent per bar"),
    (
        "log_vol_ratio_20",
        "ln(1 + volume / mean(volume, 20)) - ln 2 (0 at the mean, -ln 2 for an empty bar; "
        "NaN while the 20-bar volume is 0)",
        20,
        "log ratio",
    ),
    ("buy_share_20", "sum(buy volume, 20) / sum(volume, 20) (buy = aggressor side +1)", 20, "share 0-1"),
)
N_INDICATORS = len(INDICATORS)


def technical_names(cfg: TechnicalConfig) -> list[str]:
    """Feature names in column order (``tech_<interval>_<name>``), without the registry."""
    return [f"tech_{iv}_{name}" for iv in cfg.intervals for name, *_ in INDICATORS]


def technical_specs(cfg: TechnicalConfig) -> list[FeatureSpec]:
    """FeatureSpecs of the group, in column order: interval by interval, ``tech_<interval>_<name>``."""
    return [
        FeatureSpec(
            name=f"tech_{iv}_{name}",
            group="technical",
            definition=f"{definition}; on {iv} trade bars, value at the last closed bar, computed "
            f"over at most {cfg.lookback_bars} bars",
            window=f"{bars} bars of {iv}",
            unit=unit,
        )
        for iv in cfg.intervals
        for name, definition, bars, unit in INDICATORS
    ]


def duration_label(seconds: float) -> str:
    """300 -> '5m', 3600 -> '1h', 86400 -> '1d', 90 -> '90s' (names of the context features)."""
    for unit, n in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= n and seconds % n == 0:
            return f"{int(seconds // n)}{unit}"
    return f"{seconds:g}s"


def context_specs(cfg: ContextFeatureConfig) -> list[FeatureSpec]:
    """FeatureSpecs of the market context group (``features/context.py``), in column order. Every
    definition names its input kind (``orderflow.data.context_schema``) and when a value becomes
    available; a context row is read only once its ``ts_recv`` <= the sample time."""
    p = cfg.period
    w = duration_label(cfg.oi_window * cfg.period_s)
    b = duration_label(cfg.liq_bucket_s)
    nz = cfg.funding_z_window
    hl = duration_label(cfg.premium_halflife_s)
    stat = f"{p} (read at its end + delay)"
    S = FeatureSpec
    return [
        S("ctx_funding_rate", "context", "rate of the last settled funding (kind funding; available at the "
          "funding time)", "8 h interval", "fraction per interval"),
        S("ctx_funding_z", "context", f"(rate - mean) / std of the last {nz} settled rates including it, "
          f"population std (kind funding); NaN until there are {nz} or while their std is 0",
          f"{nz} funding rows", "std"),
        S("ctx_funding_est", "context", "predicted rate of the current interval, the mark-price stream's "
          "funding_rate (kind mark_price, every 1 s)", "event", "fraction per interval"),
        S("ctx_premium", "context", "1e4 (mark_price - index_price) / index_price of the last mark-price row "
          "(kind mark_price)", "event", "bps"),
        S("ctx_premium_tw", "context", f"time-weighted premium: EWMA of ctx_premium over the rows' ts_event, "
          f"half-life {hl} (weight of a new row 1 - 2^(-dt/half-life), started at the first row; kind "
          "mark_price)", f"half-life {hl}", "bps"),
        S(f"ctx_oi_chg_{w}", "context", f"1e4 ln(OI / OI {cfg.oi_window} rows earlier) of open_interest "
          f"(kind open_interest_{p}); NaN unless that row starts exactly {w} earlier", f"{w} of {p} rows",
          "bps"),
        S(f"ctx_oi_px_chg_{w}", "context", "1e4 ln of the change of open_interest_value / open_interest (the "
          f"price the statistic used) over the same rows (kind open_interest_{p})", f"{w} of {p} rows",
          "bps"),
        S(f"ctx_oi_conf_{w}", "context", f"ctx_oi_chg_{w} x sign(ctx_oi_px_chg_{w}): > 0 positions opened "
          "with the move, < 0 the move came with closing positions", f"{w} of {p} rows", "bps"),
        S(f"ctx_taker_buy_share_{p}", "context", "buy_volume / (buy_volume + sell_volume) of Binance's "
          f"taker statistic (kind taker_ratio_{p})", stat, "share 0-1"),
        S(f"ctx_taker_share_diff_{p}", "context", f"ctx_taker_buy_share_{p} - own buy share of the same "
          "period (size of trades with side +1 / side +1 or -1, ts_event in [start, start + period) as "
          "the engine saw them, the CVD's inputs); NaN if the engine's first trade is after the period "
          "start or it saw no signed volume", stat, "share -1..1"),
        S(f"ctx_taker_bad_{p}", "context", f"1 if |ctx_taker_share_diff_{p}| > {cfg.taker_bad_threshold:g} "
          "(the venue's statistic and the recorded trades disagree: bad or missing data), else 0; NaN "
          "with the difference", stat, "flag"),
        S(f"ctx_ls_global_{p}", "context", "ln(ratio) of all accounts' long/short ratio (kind "
          f"ls_global_{p})", stat, "log ratio"),
        S(f"ctx_ls_top_pos_div_{p}", "context", f"ln(ratio of ls_top_positions_{p}) - ln(ratio of "
          f"ls_global_{p}): top traders' positions against the crowd (the latest row of each)", stat,
          "log ratio"),
        S(f"ctx_ls_top_acc_div_{p}", "context", f"ln(ratio of ls_top_accounts_{p}) - ln(ratio of "
          f"ls_global_{p})", stat, "log ratio"),
        S(f"ctx_liq_buy_{b}", "context", f"notional avg_price x filled_qty (price x qty when 0) of buy-side "
          f"liquidations (shorts closed) received in the last closed UTC {b} bucket (kind liquidation, by "
          "ts_recv); 0 without any, NaN when the source has no liquidation series", f"1 bucket of {b}",
          "quote units"),
        S(f"ctx_liq_sell_{b}", "context", "the same for sell-side liquidations (longs closed)",
          f"1 bucket of {b}", "quote units"),
        S("ctx_fng", "context", "value of the last published fear & greed day (alternative.me/FNG kind "
          "fear_greed; a day's value is available at the day's end + 10 min)", "1 day", "index 0-100"),
        S("ctx_fng_class", "context", "its class 0-4 (Extreme Fear .. Extreme Greed; from the value by "
          "alternative.me's bands 0-24, 25-46, 47-54, 55-75, 76-100 when the class is missing)", "1 day",
          "class 0-4"),
        S("ctx_fng_regime", "context", "-1 fear (class 0-1), 0 neutral (2), +1 greed (3-4)", "1 day",
          "state -1/0/1"),
    ]  # fmt: skip
