"""Settings of the data package: the market simulator (``simulator:``) and the quality thresholds of
``data check`` (``quality:``). Pydantic models only: the aggregate configuration imports this module
without loading numba or DuckDB (the simulator kernel and the quality checker do)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from orderflow.core.instruments import Instrument


class ContextSimConfig(BaseModel):
    """The simulated market context (:mod:`orderflow.data.sim_context`): funding, mark and index price,
    open interest, long/short ratios, taker volumes and liquidations derived from the simulated trades.
    Rates and shares are fractions (0.0001 = 0.01 %), times in s, sizes in base currency."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    periods: tuple[str, ...] = Field(("5m", "1h"), description="periods of the statistics (5m .. 1d)")
    stat_delay_s: float = Field(10.0, ge=0, description="publication delay after a period closes")
    latency_ms: float = Field(5.0, ge=0, description="mean receive latency of mark price and liquidations")
    index_halflife_s: float = Field(600.0, gt=0, description="half-life of the index's EMA of the price")
    basis_bps: float = Field(3.0, ge=0, description="std of the slow index noise (AR(1)), bps")
    basis_tau_s: float = Field(7200.0, gt=0, description="time constant of the index noise")
    interest_rate: float = Field(0.0001, description="interest rate per funding interval")
    interest_clamp: float = Field(0.0005, ge=0, description="clamp of interest - premium")
    funding_cap: float = Field(0.003, gt=0, description="cap of |funding rate|")
    oi_initial: float = Field(80_000.0, gt=0, description="open interest at the start")
    oi_open_share: float = Field(0.02, ge=0, description="share of traded volume that opens positions")
    oi_persist_gain: float = Field(0.5, ge=0, description="OI opened per unit |EMA of signed volume/s|")
    oi_tau_s: float = Field(21_600.0, gt=0, description="time constant of the decay of opened positions")
    flow_halflife_s: float = Field(300.0, gt=0, description="half-life of the EMA of signed volume per s")
    ls_base_global: float = Field(0.55, gt=0, lt=1, description="mean long share of all accounts")
    ls_base_top: float = Field(0.5, gt=0, lt=1, description="mean long share of top traders")
    ls_flow_gain: float = Field(0.15, ge=0, description="long share added per unit period flow imbalance")
    ls_informed_gain: float = Field(
        0.2, ge=0, description="top traders' long share per unit tanh(future return / scale)"
    )
    informed_horizon_s: float = Field(1800.0, gt=0, description="horizon of the top traders' information")
    informed_ret_scale: float = Field(0.004, gt=0, description="return scale of the top traders' lean")
    ls_noise: float = Field(0.02, ge=0, description="std of the AR(1) noise of the long shares")
    liq_window_s: int = Field(60, ge=1, description="window of the price move that triggers liquidations")
    liq_threshold: float = Field(0.002, gt=0, description="|log move| over the window where they start")
    liq_rate: float = Field(0.5, ge=0, description="liquidations/s at twice the threshold")
    liq_size: float = Field(0.5, gt=0, description="median liquidated quantity per order")
    liq_sigma: float = Field(1.0, ge=0, description="log-normal sigma of liquidated quantities")

    @field_validator("periods")
    @classmethod
    def _check_periods(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from orderflow.data.context_schema import PERIODS

        bad = [p for p in v if p not in PERIODS]
        if bad or not v or len(set(v)) != len(v):
            raise ValueError(f"context.periods must be distinct periods of {', '.join(PERIODS)}, got {v}")
        return v


class SimulatorConfig(BaseModel):
    """Simulator settings. Sizes are in base currency (BTC), prices in quote currency, times in s."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str = Field("BTCUSDT", description="symbol written to the store")
    venue: str = Field("sim", description="venue written to the store")
    start: str = Field("2024-01-01", description="ISO date or datetime (UTC) of the first event")
    hours: float = Field(1.0, gt=0, le=24 * 31, description="simulated hours")
    seed: int = Field(1, ge=0, description="random seed: same seed, same output")
    levels: int = Field(20, ge=1, le=100, description="book levels per stored row")
    snapshot_interval_ms: int = Field(100, ge=1, description="book row interval")
    tick_size: float = Field(0.1, gt=0, description="price grid (Binance USD-M BTCUSDT)")
    lot_size: float = Field(0.001, gt=0, description="size grid (Binance USD-M BTCUSDT)")
    initial_price: float = Field(60000.0, gt=0, description="starting mid")
    latency_ms: float = Field(5.0, ge=0, description="mean ts_recv - ts_event (exponential around it)")
    chunk_hours: float = Field(1.0, gt=0, description="simulate and write in chunks of this length")
    # noise market orders
    market_order_rate: float = Field(7.0, gt=0, description="noise market orders/s (both sides, calm)")
    market_order_size: float = Field(0.03, gt=0, description="median market order size")
    market_order_sigma: float = Field(1.8, ge=0, description="log-normal sigma of market order sizes")
    hawkes_alpha: float = Field(1.0, ge=0, description="intensity added per market order (1/s)")
    hawkes_beta: float = Field(8.0, gt=0, description="decay rate of the excitation (1/s)")
    prints_per_lot: float = Field(0.01, ge=0, description="extra trade prints per lot filled at a level")
    # liquidity
    join_rate: float = Field(8.0, ge=0, description="orders/s joining each best queue")
    join_size: float = Field(0.2, gt=0, description="median size joining or cancelled at the best")
    join_sigma: float = Field(1.0, ge=0, description="log-normal sigma of best-queue order sizes")
    cancel_rate: float = Field(8.0, ge=0, description="cancels/s at each best when it holds queue_ref")
    queue_ref: float = Field(3.0, gt=0, description="reference best-queue size for cancel rates")
    deep_rate: float = Field(6.0, ge=0, description="orders/s per side behind the best")
    deep_size: float = Field(0.13, gt=0, description="median size of orders behind the best")
    deep_sigma: float = Field(1.2, ge=0, description="log-normal sigma of orders behind the best")
    deep_max: int = Field(150, ge=2, le=2000, description="ticks behind the best where orders land")
    deep_cancel: float = Field(0.05, ge=0, description="cancel rate of each level behind the best")
    inside_rate: float = Field(200.0, gt=0, description="quotes/s arriving inside a spread > 1 tick")
    inside_size: float = Field(1.5, gt=0, description="median size of a new quote (inside or re-quote)")
    follow: float = Field(1.0, description="log-odds that a quote inside the spread follows the last move")
    fair_pull: float = Field(0.05, ge=0, description="log-odds per tick of F-mid toward fair value")
    requote_rate: float = Field(
        20.0, gt=0, description="re-quotes/s once |F-mid| > requote_threshold (1/reaction time)"
    )
    requote_threshold: float = Field(8.0, ge=0.5, description="ticks of |F-mid| before market makers move")
    requote_step: float = Field(40.0, ge=1, description="most ticks one re-quote moves the quotes")
    kyle_lambda: float = Field(1.0, ge=0, description="ticks F moves per unit (BTC) of market order flow")
    impact_follow: float = Field(
        0.0, ge=0, le=1, description="share of a market order's own mid move that F adopts"
    )
    # news and private information
    news_rate: float = Field(0.35, ge=0, description="public news events/s (times activity)")
    news_scale: tuple[float, float, float] = Field(
        (32.0, 45.0, 65.0), description="scale of Student-t news moves of V and F per regime, ticks"
    )
    news_df: float = Field(3.0, gt=2, description="degrees of freedom of the news moves")
    news_alpha: float = Field(0.0, ge=0, description="news intensity added per news event (1/s)")
    news_beta: float = Field(2.0, gt=0, description="decay rate of the news excitation (1/s)")
    news_reveal: float = Field(0.03, ge=0, le=1, description="share of V-F made public by a news event")
    private_vol: float = Field(13.0, ge=0, description="vol of private information (V only), ticks/sqrt(s)")
    # informed flow
    informed_rate: float = Field(
        4.0, ge=0, description="informed market orders/s at |V-mid| = informed_scale"
    )
    informed_scale: float = Field(50.0, gt=0, description="ticks of |V-mid| for informed_rate")
    informed_cap: float = Field(3.0, gt=0, description="cap on |V-mid| / informed_scale")
    # regimes: calm, trending, volatile
    regime_activity: tuple[float, float, float] = Field((1.0, 1.3, 2.0), description="rate multipliers")
    fair_vol: tuple[float, float, float] = Field(
        (1.0, 1.5, 2.5), description="public diffusion of V and F, ticks/sqrt(s)"
    )
    trend_drift: float = Field(1.0, description="drift of V and F in the trending regime, ticks/s")
    jump_rate: float = Field(0.0005, ge=0, description="rare large public jumps/s (times activity)")
    jump_scale: float = Field(150.0, ge=0, description="scale of Student-t(3) rare jumps, ticks")
    regime_durations_s: tuple[float, float, float] = Field(
        (2400.0, 900.0, 600.0), description="mean durations"
    )
    regime_transitions: tuple[tuple[float, float, float], ...] = Field(
        ((0.0, 0.6, 0.4), (0.6, 0.0, 0.4), (0.7, 0.3, 0.0)), description="row-stochastic jump matrix"
    )
    context: ContextSimConfig | None = Field(
        default_factory=ContextSimConfig, description="market context series (None = off)"
    )

    def start_ns(self) -> int:
        ts = pd.Timestamp(self.start)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return int(ts.value)

    def instrument(self) -> Instrument:
        return Instrument(self.venue, self.symbol, self.tick_size, self.lot_size)

    def transition_matrix(self) -> np.ndarray:
        m = np.array(self.regime_transitions, dtype=np.float64)
        if m.shape != (3, 3) or np.any(m < 0) or not np.allclose(m.sum(axis=1), 1.0):
            raise ValueError(f"regime_transitions must be a 3x3 row-stochastic matrix, got {m.tolist()}")
        return m


class QualityThresholds(BaseModel):
    """Limits per dataset; ``None`` means measured and reported but never a failure."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_gaps: int | None = Field(0, ge=0)
    max_crossed: int | None = Field(0, ge=0)
    max_stale_periods: int | None = Field(None, ge=0)
    max_out_of_order: int | None = Field(0, ge=0)
    max_outliers: int | None = Field(None, ge=0)
    max_missing_bars: int | None = Field(0, ge=0)
    max_duplicates: int | None = Field(0, ge=0)
    max_corrupt_parts: int | None = Field(0, ge=0)
    stale_after_s: float = Field(10.0, gt=0)
    trade_stale_after_s: float = Field(60.0, gt=0)
    # 1-event returns are heavy-tailed: on the recorded BTCUSDT trades (2024-08-08) the robust z of
    # clean data reaches 88 (usdm) and 367 (spot), so 10 would flag hundreds of genuine sweeps
    outlier_sigma: float = Field(50.0, gt=0)
