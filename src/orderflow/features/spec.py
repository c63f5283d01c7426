"""Feature specs: what a feature column is (name, group, definition, window, unit), and the table of
the technical indicators (their names and definitions; the TA-Lib calls are in ``technical``).

No numba or TA-Lib here: the registry (``registry.default_specs``), the technical group and
configuration code import it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orderflow.features.config import TechnicalConfig

GROUPS = ("ofi", "cvd", "micro", "time", "regime", "technical")


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
