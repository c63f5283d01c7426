"""Config records generated from the pydantic models (core.records): every field of every config is
mapped into its record (so a field is written once, in its model), and values round-trip."""

from __future__ import annotations

import typing

import numpy as np
import pytest
from numba import njit
from pydantic import BaseModel

from orderflow.core.records import Derived, RecordSpec
from orderflow.execution import exec_config, sim_config
from orderflow.execution.exec_config import ExecutionConfig
from orderflow.execution.sim_config import LatencyConfig, SimConfig
from orderflow.risk import config as risk_config
from orderflow.risk.config import RiskConfig
from orderflow.strategy import config as strategy_config
from orderflow.strategy.config import RegimeParams, StrategyConfig

SPECS = {
    "strategy": (strategy_config.RECORD, StrategyConfig),
    "risk": (risk_config.RECORD, RiskConfig),
    "execution": (exec_config.RECORD, ExecutionConfig),
    "sim": (sim_config.RECORD, SimConfig),
}

# a config of each kind with no default value where the type allows it (so that a field copied from the
# wrong place cannot pass by chance), and the build context
ODD = {
    "strategy": (
        StrategyConfig(
            w_ofi=0.55,
            w_ai=0.45,
            threshold=0.31,
            ofi_scale=2.5,
            neutral=0.07,
            confidence_gate=0.71,
            quality_gate=0.76,
            ev_cost_mult=2.2,
            take_profit_r=0.95,
            stop_r=1.15,
            timeout_s=61.5,
            trail_start_r=0.55,
            trail_r=0.85,
            horizon_s=62.0,
            rv_window_s=301.0,
            min_r=2e-5,
            max_book_age_ms=2100.0,
            max_trade_age_s=31.0,
            target_trades_per_hour=4.5,
            adapt_every_s=901.0,
            adapt_step=0.11,
            threshold_mult_range=(0.75, 1.45),
            exit_on_signal=False,
            pyramid=False,
            allow_short=None,
            regimes=RegimeParams(
                threshold_mult=(1.1, 1.2, 1.6), allow=(True, False, True), counter_trend_fit=0.4
            ),
        ),
        {"taker_fee": 0.00042, "venue": "binance-spot"},
    ),
    "risk": (
        RiskConfig(
            max_loss_per_trade=0.021,
            daily_drawdown=0.051,
            max_capital_in_use=0.51,
            max_position=0.052,
            var95_limit=0.023,
            confidence_floor=0.52,
            confidence_full=0.91,
            min_confidence_scale=0.26,
            max_adds=3,
            add_size_factor=0.55,
            max_holding_s=601.5,
            min_trade_interval_s=5.25,
            max_trades_24h=499,
            high_vol_percentile=0.94,
            high_vol_size_factor=0.45,
        ),
        {},
    ),
    "execution": (
        ExecutionConfig(
            entry_style="passive",
            passive_ttl_s=11.5,
            max_share_of_depth=0.21,
            depth_levels=6,
            slicing_algo="iceberg",
            twap_duration_s=61.25,
            twap_max_children=21,
            iceberg_clip_share=0.11,
            iceberg_offset_ticks=1,
            max_cost_share_of_ev=0.55,
            max_reprice_ticks=3,
            maker_fee=0.00021,
            taker_fee=0.00051,
            alloc_confidence_floor=0.51,
            alloc_max_symbol_share=0.52,
            resolve_retry_s=1.5,
            resolve_attempts=6,
        ),
        {},
    ),
    "sim": (
        SimConfig(
            venue="binance-spot",
            maker_fee=0.0009,
            taker_fee=None,
            latency=LatencyConfig(kind="lognormal", entry_ms=2.5, response_ms=3.25, sigma=0.6, seed=7),
            queue_model="log",
            queue_power=2.5,
            funding_rate=0.0002,
            funding_interval_h=4,
            max_orders=300,
        ),
        {},
    ),
}


def _paths(model: type[BaseModel], prefix: str = "") -> list[tuple[str, typing.Any]]:
    out = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _paths(ann, f"{prefix}{name}.")
        else:
            out.append((f"{prefix}{name}", ann))
    return out


def _value(cfg: BaseModel, path: str):
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_every_field_of_the_model_is_mapped_into_the_record(kind):
    spec, model = SPECS[kind]
    mapped = spec.mapped()
    paths = [p for p, _ in _paths(model)]
    missing = sorted(set(paths) - set(mapped))
    assert not missing, f"{kind}: fields not in the record: {missing}"
    names = set(spec.dtype.names)
    for path, how in mapped.items():
        assert path in paths, f"{kind}: {path} is not a field"
        verb, _, rest = how.partition(" ")
        if verb in ("copy", "derived"):
            assert rest in names, f"{kind}: {path} -> {rest} missing from the dtype"
        else:
            assert verb == "skip:" and rest, f"{kind}: {path} skipped without a reason"
    # nothing in the record that no field or declared derivation accounts for
    assert names == set(spec.copied) | {d.name for d in spec.derived}


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_copied_fields_round_trip(kind):
    spec, _ = SPECS[kind]
    cfg, ctx = ODD[kind]
    rec = cfg.to_record(**ctx)
    assert rec.shape == (1,) and rec.dtype == spec.dtype
    for name, path in spec.copied.items():
        v = _value(cfg, path)
        got = rec[0][name]
        ann = dict(_paths(type(cfg)))[path]
        if typing.get_origin(ann) is typing.Literal:
            assert typing.get_args(ann)[int(got)] == v, (kind, name)
        elif isinstance(v, tuple):
            assert tuple(got.tolist()) == tuple(type(v[0])(x) for x in v), (kind, name)
        else:
            assert got == v and type(v)(got) == v, (kind, name)


def test_derived_fields_by_hand():
    s = ODD["strategy"][0].to_record(**ODD["strategy"][1])[0]
    assert s["timeout_ns"] == 61.5e9 and s["max_book_age_ns"] == 2.1e9 and s["max_trade_age_ns"] == 31e9
    assert s["adapt_every_ns"] == 901e9 and s["taker_fee"] == 0.00042
    assert not s["allow_short"]  # None on spot: no shorts
    assert StrategyConfig().to_record(0.0005, "binance-usdm")[0]["allow_short"]
    assert s["allow"].tolist() == [1, 0, 1] and s["threshold_mult_range"].tolist() == [0.75, 1.45]
    r = ODD["risk"][0].to_record()[0]
    assert r["max_holding_ns"] == 601_500_000_000 and r["min_trade_interval_ns"] == 5_250_000_000
    assert r.dtype["max_holding_ns"] == np.int64 and r.dtype["max_adds"] == np.int64
    x = ODD["execution"][0].to_record()[0]
    assert x["twap_duration_ns"] == 61_250_000_000 and x["passive_ttl_ns"] == 11_500_000_000
    assert x["entry_style"] == exec_config.STYLE_PASSIVE and x["slicing_algo"] == exec_config.ALGO_ICEBERG
    c = ODD["sim"][0].to_record()[0]
    assert c["maker_fee"] == 0.0009 and c["taker_fee"] == 0.001  # None: the venue's default
    assert c["latency_kind"] == 1 and c["entry_ns"] == 2_500_000.0 and c["response_ns"] == 3_250_000.0
    assert c["funding_rate"] == 0.0 and not c["perpetual"]  # spot: no funding
    assert c["funding_ns"] == 4 * 3_600_000_000_000 and c["queue_model"] == 2
    u = SimConfig().to_record()[0]
    assert u["funding_rate"] == 0.0001 and u["perpetual"]


@njit(cache=True)
def _read(C, vs):
    return C.w_ofi * 2.0 + C.threshold_mult[vs] + (1.0 if C.allow_short else 0.0) + C["w_ai"]


def test_compiled_code_reads_the_record_by_name():
    C = StrategyConfig().to_record(0.0005, "sim")[0]
    assert _read(C, 2) == 0.6 * 2.0 + 1.5 + 1.0 + 0.4


class _Bad(BaseModel):
    name: str = "x"
    n: int = 1


def test_a_field_without_a_dtype_or_unknown_names_are_errors_naming_them():
    with pytest.raises(TypeError, match=r"^name: field of type"):
        RecordSpec(_Bad)
    with pytest.raises(ValueError, match="nope: not a field"):
        RecordSpec(_Bad, skip={"name": "a label", "nope": "?"})
    with pytest.raises(ValueError, match="'n' defined twice"):
        RecordSpec(_Bad, skip={"name": "a label"}, derived=(Derived("n", np.int64, lambda c, _: 2),))
    spec = RecordSpec(_Bad, skip={"name": "a label"})
    assert spec.build(_Bad(n=5))[0]["n"] == 5
    with pytest.raises(TypeError, match="record of _Bad: got RiskConfig"):
        spec.build(RiskConfig())
