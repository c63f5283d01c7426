"""The market context group (features/context.py) on small hand-made cases: expected values computed
by hand in the comments, each case through both paths (ContextStream event by event and
context_batch's as-of joins), which must agree."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from orderflow.data.context_schema import frame
from orderflow.features import context as C
from orderflow.features.config import ContextFeatureConfig, FeatureConfig
from orderflow.features.context import ContextStream, context_batch
from orderflow.features.registry import default_specs, group_counts

NS = 1_000_000_000
T0 = pd.Timestamp("2024-01-01", tz="UTC").value


def s(x: float) -> int:
    return T0 + round(x * NS)


NO_TRADES = pd.DataFrame({"ts_event": np.zeros(0, np.int64), "price": [], "size": [], "side": []})


def both(context: dict, samples_s, cfg=None, trades=NO_TRADES) -> np.ndarray:
    """The group at each sample (seconds after T0) by both paths; asserts they agree."""
    cfg = cfg or ContextFeatureConfig()
    samples = np.array([s(x) for x in samples_s], np.int64)
    tr = [tuple(r) for r in trades[["ts_event", "price", "size", "side"]].itertuples(index=False)]
    rows = sorted(
        ((int(r["ts_recv"]), int(r["ts_event"]), kind, r) for kind, df in context.items()
         for r in df.to_dict("records")), key=lambda x: (x[0], x[1]),
    )  # fmt: skip
    st = ContextStream(cfg, context.keys())
    out = np.empty((samples.size, C.N_CONTEXT))
    it = ic = 0
    for i, t in enumerate(samples):
        while it < len(tr) and tr[it][0] <= t:
            st.on_trade(*tr[it])
            it += 1
        while ic < len(rows) and rows[ic][0] <= t:
            st.on_context(rows[ic][2], rows[ic][3])
            ic += 1
        st.advance(int(t))
        out[i] = st.values
    tt = trades
    got = context_batch(context, tt.ts_event.to_numpy(np.int64), tt.price.to_numpy(float),
                        tt["size"].to_numpy(float), tt.side.to_numpy(np.int64), samples, cfg)  # fmt: skip
    np.testing.assert_array_equal(got, out)
    return out


def test_the_group_is_opt_in_and_adds_19_features():
    assert len(default_specs(FeatureConfig())) == 162
    specs = default_specs(FeatureConfig(context=ContextFeatureConfig()))
    assert group_counts(specs)["context"] == 19 == C.N_CONTEXT and specs[-19].name == "ctx_funding_rate"
    with pytest.raises(ValueError, match=r"context\.period must be one of"):
        ContextFeatureConfig(period="7m")


def test_funding_rate_and_z_score_over_the_rates_published_so_far():
    t = [s(8 * 3600 * k) for k in (1, 2, 3)]
    fund = frame("funding", t, t, rate=[1e-4, 2e-4, 3e-4], mark_price=[np.nan] * 3)
    v = both({"funding": fund}, [100, 8 * 3600 - 1, 8 * 3600, 16 * 3600, 24 * 3600],
             ContextFeatureConfig(funding_z_window=3))  # fmt: skip
    np.testing.assert_array_equal(v[:2, C.FUND], [np.nan, np.nan])  # nothing published yet
    assert v[2, C.FUND] == 1e-4 and v[3, C.FUND] == 2e-4 and v[4, C.FUND] == 3e-4  # from the funding time
    # z at the third: mean 2e-4, population std 1e-4 sqrt(2/3) -> (3e-4 - 2e-4) / that = sqrt(1.5)
    assert np.isnan(v[:4, C.FUND_Z]).all() and v[4, C.FUND_Z] == pytest.approx(math.sqrt(1.5), rel=1e-12)
    same = frame("funding", t, t, rate=[1e-4] * 3, mark_price=[np.nan] * 3)  # std 0: NaN, not inf
    assert np.isnan(
        both({"funding": same}, [24 * 3600], ContextFeatureConfig(funding_z_window=3))[0, C.FUND_Z]
    )


def test_premium_and_its_time_weighted_ewma():
    e = [s(1), s(2), s(4)]
    mp = frame("mark_price", e, [x + 5_000_000 for x in e], mark_price=[100.1, 100.0, 100.2],
               index_price=[100.0] * 3, est_settle_price=[100.0] * 3, funding_rate=[1e-4, 2e-4, 3e-4],
               next_funding_ns=[s(8 * 3600)] * 3)  # fmt: skip
    cfg = ContextFeatureConfig(premium_halflife_s=1.0)
    v = both({"mark_price": mp}, [1.001, 1.005, 2.005, 4.005], cfg)
    assert np.isnan(v[0, [C.PREM, C.PREM_TW, C.FUND_EST]]).all()  # event at 1 s, received 5 ms later
    # 1e4 x 0.1 / 100 = 10 bps; then 0 after 1 s: EWMA 10 + (1 - 2^-1)(0 - 10) = 5
    assert v[1, C.PREM] == pytest.approx(10.0, rel=1e-12) and v[1, C.PREM_TW] == pytest.approx(
        10.0, rel=1e-12
    )
    assert v[2, C.PREM] == 0.0 and v[2, C.PREM_TW] == pytest.approx(5.0, rel=1e-12)
    # 20 bps after 2 s: 5 + (1 - 2^-2)(20 - 5) = 16.25
    assert v[3, C.PREM_TW] == pytest.approx(16.25, rel=1e-12) and v[3, C.FUND_EST] == 3e-4


def test_open_interest_change_against_the_price_change():
    starts = [s(300 * k) for k in (0, 1, 2, 4, 5)]  # the 4th period (k = 3) is missing
    oi = np.array([100.0, 110.0, 121.0, 121.0, 100.0])
    px = np.array([10.0, 10.0, 11.0, 11.0, 10.0])
    kind = "open_interest_5m"
    df = frame(kind, starts, [t + 310 * NS for t in starts], open_interest=oi, open_interest_value=oi * px)
    v = both({kind: df}, [910, 1510, 1810], ContextFeatureConfig(oi_window=2))  # at the rows' ts_recv
    # rows 0 -> 2: 1e4 ln(121 / 100) = 1906.2 bps, price 10 -> 11: 953.1 bps, same sign: +1906.2
    assert v[0, C.OI_CHG] == pytest.approx(1e4 * math.log(1.21), rel=1e-12)
    assert v[0, C.OI_PX] == pytest.approx(1e4 * math.log(1.1), rel=1e-9)
    assert v[0, C.OI_CONF] == v[0, C.OI_CHG]
    # period 4: the row 2 back is period 1, 3 periods earlier (period 3 is missing): NaN; period 5: 2
    assert np.isnan(v[1, C.OI_CHG])
    assert np.isnan(v[2, [C.OI_CHG, C.OI_PX, C.OI_CONF]]).all()
    # a fall in price with opened positions: conf = -chg
    df2 = frame(kind, starts[:3], [t + 310 * NS for t in starts[:3]], open_interest=[100.0, 105.0, 110.0],
                open_interest_value=[1000.0, 1000.0, 990.0])  # fmt: skip
    w = both({kind: df2}, [910], ContextFeatureConfig(oi_window=2))
    assert w[0, C.OI_CONF] == pytest.approx(-1e4 * math.log(1.1), rel=1e-12)


def trades_of(rows) -> pd.DataFrame:
    ts, px, sz, side = zip(*rows, strict=True)
    return pd.DataFrame({"ts_event": [s(x) for x in ts], "price": px, "size": sz, "side": side})


def test_taker_statistic_against_the_engines_own_trades():
    # period [0, 300 s): buys 2 + 1, sells 1, one unsigned trade ignored -> own buy share 0.75
    tr = trades_of([(0.0, 100.0, 2.0, 1), (10.0, 100.0, 1.0, -1), (20.0, 100.0, 5.0, 0),
                    (299.9, 100.0, 1.0, 1), (300.0, 100.0, 7.0, -1)])  # fmt: skip
    kind = "taker_ratio_5m"
    starts = [s(0), s(300)]
    good = frame(kind, starts, [t + 310 * NS for t in starts], buy_sell_ratio=[3.0, 0.0],
                 buy_volume=[3.0, 0.0], sell_volume=[1.0, 7.0])  # fmt: skip
    v = both({kind: good}, [309.9, 310.0, 610.0], trades=tr)
    assert np.isnan(v[0, [C.TK_SHARE, C.TK_DIFF, C.TK_BAD]]).all()  # before the period's publication
    assert v[1, C.TK_SHARE] == 0.75 and v[1, C.TK_DIFF] == 0.0 and v[1, C.TK_BAD] == 0.0
    assert v[2, C.TK_SHARE] == 0.0 and v[2, C.TK_DIFF] == 0.0  # [300, 600): only the 7 sold
    bad = frame(kind, starts[:1], [s(310)], buy_sell_ratio=[1.0], buy_volume=[1.0], sell_volume=[1.0])
    w = both({kind: bad}, [310.0], trades=tr)
    # Binance says 0.5, the trades 0.75: difference -0.25 > 0.02: flagged
    assert w[0, C.TK_DIFF] == -0.25 and w[0, C.TK_BAD] == 1.0
    late = both({kind: good}, [310.0], trades=tr.iloc[1:])  # the engine started after the period start
    assert late[0, C.TK_SHARE] == 0.75 and np.isnan(late[0, C.TK_DIFF]) and np.isnan(late[0, C.TK_BAD])


def test_top_traders_against_the_crowd():
    t = [s(0)]
    r = [s(310)]
    ctx = {
        "ls_global_5m": frame("ls_global_5m", t, r, ratio=[1.5], long_share=[0.6], short_share=[0.4]),
        "ls_top_positions_5m": frame("ls_top_positions_5m", t, r, ratio=[3.0], long_share=[0.75],
                                     short_share=[0.25]),
    }  # fmt: skip
    v = both(ctx, [309, 310])
    assert np.isnan(v[0, [C.LS_GLOBAL, C.LS_POS_DIV, C.LS_ACC_DIV]]).all()
    assert v[1, C.LS_GLOBAL] == pytest.approx(math.log(1.5)) and v[1, C.LS_POS_DIV] == pytest.approx(
        math.log(2)
    )
    assert np.isnan(v[1, C.LS_ACC_DIV])  # no top-accounts series


def test_liquidation_notional_of_the_last_closed_minute():
    ev = [s(61), s(62), s(125)]
    liq = frame("liquidation", ev, [x + 1_000_000 for x in ev], side=[-1, -1, 1], price=[99.0, 99.0, 101.0],
                avg_price=[100.0, 100.0, 0.0], qty=[2.0, 1.0, 1.0], filled_qty=[2.0, 1.0, 1.0])  # fmt: skip
    v = both({"liquidation": liq}, [30, 119.9, 120.0, 185.0, 250.0])
    # [60, 120): sells 100 x 2 + 100 x 1 = 300; [120, 180): a buy without avg price: 101 x 1
    np.testing.assert_array_equal(v[:, C.LIQ_SELL], [0.0, 0.0, 300.0, 0.0, 0.0])
    np.testing.assert_array_equal(v[:, C.LIQ_BUY], [0.0, 0.0, 0.0, 101.0, 0.0])
    # a source without a liquidation series: NaN, not 0
    assert np.isnan(both({}, [120.0])[0, [C.LIQ_BUY, C.LIQ_SELL]]).all()


def test_fear_and_greed_level_class_and_regime():
    days = [s(-86_400), s(0)]
    fg = frame(
        "fear_greed", days, [d + 87_000 * NS for d in days], value=[80.0, 30.0], classification=[-1, 1]
    )
    v = both({"fear_greed": fg}, [599.0, 600.0, 86_999.0, 87_000.0])
    # yesterday's value at 00:10 (its end + 10 min), today's at 00:10 tomorrow
    assert np.isnan(v[0, [C.FNG, C.FNG_CLASS, C.FNG_REGIME]]).all()
    assert v[1, C.FNG] == 80.0 and v[1, C.FNG_CLASS] == 4 and v[1, C.FNG_REGIME] == 1  # class from the value
    assert v[2, C.FNG] == 80.0
    assert v[3, C.FNG] == 30.0 and v[3, C.FNG_CLASS] == 1 and v[3, C.FNG_REGIME] == -1


def test_a_row_or_frame_without_its_columns_is_named():
    st = ContextStream(ContextFeatureConfig())
    with pytest.raises(ValueError, match="kind 'funding' lacks column 'rate'"):
        st.on_context("funding", {"ts_event": 0, "ts_recv": 0})
    bad = pd.DataFrame({"ts_event": [0], "ts_recv": [0], "ratio": [1.0]})
    with pytest.raises(ValueError, match="context frame 'ls_global_5m' lacks columns"):
        context_batch(
            {"ls_global_5m": bad}, *(np.zeros(0),) * 4, np.zeros(1, np.int64), ContextFeatureConfig()
        )
