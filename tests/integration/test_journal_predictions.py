"""The journal's model-evaluation and cost tables (migration 0003) on SQLite and PostgreSQL: predictions
and their outcomes written in batches, a model's input names, funding payments one by one, and the
decision mid carried from an order's intent onto its fills."""

from __future__ import annotations

import json
import os
import uuid
from decimal import Decimal

import msgspec
import pytest
import sqlalchemy as sa

from orderflow.core.orders import OrderIntent, OrderType, Side, TimeInForce
from orderflow.journal import Journal

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
D = Decimal


@pytest.fixture(scope="module")
def pg_database():
    try:
        import psycopg

        admin = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True,
                                connect_timeout=3)  # fmt: skip
    except Exception as e:  # not installed or not reachable
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 unreachable ({e})")
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 unreachable ({e})")
    name = f"orderflow_pred_test_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{PG_SERVER}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def journal(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'journal.sqlite'}"
    else:
        base = request.getfixturevalue("pg_database")
        schema = f"t_{uuid.uuid4().hex[:12]}"
        eng = sa.create_engine(base)
        with eng.begin() as c:
            c.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        eng.dispose()
        url = f"{base}?options=-csearch_path%3D{schema}"
    j = Journal.open(url)
    yield j
    j.close()


def _row(seq: int, **kw) -> dict:
    return {"seq": seq, "ts_ns": 1_000 + seq, "event_ns": 900 + seq, "version": "7", "p_down": 0.2,
            "p_flat": 0.5, "p_up": 0.3, "horizon_ns": 60, "mid": 100.05, **kw}  # fmt: skip


def test_predictions_and_their_outcomes(journal):
    run = journal.start_run("paper", "local", ["BTCUSDT"], 1)
    blob = msgspec.msgpack.encode([0.5, float("nan"), -2.0])
    n = journal.record_predictions(run, "btcusdt", [_row(0, inputs=blob, ev=0.001, cost=0.0004, side=-1,
                                                         client_order_id="of1-1"),
                                                    _row(1, label=1, ret=0.002, outcome_ns=950)])  # fmt: skip
    assert n == 2
    # outcomes of earlier rows by sequence number, with a new row, in one call
    assert journal.record_predictions(run, "BTCUSDT", [_row(2)], [(0, -1, -0.003, 940)]) == 1
    assert journal.record_predictions(run, "BTCUSDT", [], []) == 0
    rows = journal.predictions(run)
    assert [(r.seq, r.label, r.ret, r.outcome_ns) for r in rows] == [
        (0, -1, -0.003, 940), (1, 1, 0.002, 950), (2, None, None, None),
    ]  # fmt: skip
    r0 = rows[0]
    got = (r0.symbol, r0.version, r0.ev, r0.cost, r0.side, r0.client_order_id)
    assert got == ("BTCUSDT", "7", 0.001, 0.0004, -1, "of1-1")
    got = msgspec.msgpack.decode(r0.inputs)
    assert got[0] == 0.5 and got[1] != got[1] and got[2] == -2.0  # NaN survives
    assert rows[1].inputs is None and rows[1].ev is None
    with pytest.raises(ValueError, match="outcome label 2"):
        journal.record_predictions(run, "BTCUSDT", [], [(2, 2, 0.0, 1)])
    with pytest.raises(sa.exc.IntegrityError):  # (run, seq) is unique
        journal.record_predictions(run, "BTCUSDT", [_row(2)])
    long = "/very/long/bundle/path/" + "x" * 200
    journal.record_predictions(run, "BTCUSDT", [_row(3, version=long)])
    v = journal.predictions(run)[-1].version
    assert len(v) == 128 and v.endswith("x" * 100) and v.startswith("...")


def test_model_inputs_are_named_once_per_run_and_version(journal):
    run = journal.start_run("paper", "local", ["BTCUSDT"], 1)
    journal.record_model_inputs(run, "7", ["ofi_e1", "spread_bps"], 10)
    journal.record_model_inputs(run, "7", ["other"], 20)  # a repeat keeps the first
    journal.record_model_inputs(run, "8", ["ofi_e1"], 30)
    with journal.engine.connect() as c:
        rows = c.execute(sa.text("select version, ts_ns, names from model_inputs order by version")).all()
    assert [(v, t, json.loads(n)) for v, t, n in rows] == [("7", 10, ["ofi_e1", "spread_bps"]),
                                                           ("8", 30, ["ofi_e1"])]  # fmt: skip


def test_funding_payments(journal):
    run = journal.start_run("paper", "local", ["BTCUSDT"], 1)
    # the engine's float: 0.083 x 59975.45 x 0.0005 has a float tail; stored to 1e-8
    journal.record_funding(run, 100, "btcusdt", 0.083 * 59975.45 * 0.0005, "model", position=-0.083,
                           mark=59975.45, rate=0.0005)  # fmt: skip
    journal.record_funding(run, 100, "BTCUSDT", D("2.48898118"), "exchange")
    journal.record_funding(run, 200, "BTCUSDT", -1.5, "model")
    with pytest.raises(ValueError, match="funding source 'venue'"):
        journal.record_funding(run, 300, "BTCUSDT", 1.0, "venue")
    with pytest.raises(ValueError, match="amount is NaN"):
        journal.record_funding(run, 300, "BTCUSDT", float("nan"), "model")
    ev = journal.funding_events(run)
    assert [(e.ts_ns, e.source, e.amount) for e in ev] == [
        (100, "model", D("2.48898118")), (100, "exchange", D("2.48898118")), (200, "model", D("-1.5")),
    ]  # fmt: skip
    assert (ev[0].symbol, ev[0].position, ev[0].mark, ev[0].rate) == ("BTCUSDT", D("-0.083"), D("59975.45"),
                                                                      0.0005)  # fmt: skip
    assert ev[1].position is None and ev[1].rate is None


def test_the_decision_mid_goes_from_the_intent_to_its_fills(journal):
    run = journal.start_run("paper", "local", ["BTCUSDT"], 1)
    for cid, ref in (("of1-1", 60000.05), ("of1-2", float("nan"))):
        it = OrderIntent(cid, "BTCUSDT", Side.BUY, 0.002, OrderType.MARKET, time_in_force=TimeInForce.IOC,
                         ref_price=ref, ts_created=5)  # fmt: skip
        journal.record_intent(it, run)
        journal.mark_sent(cid, 6)
        journal.record_fill(cid, 1, 60000.1, 0.001, 7, fee=0.024)
        journal.record_fill(cid, 2, 60000.2, 0.001, 8, fee=0.024)
    assert journal.order("of1-1").ref_price == D("60000.05")
    assert journal.order("of1-2").ref_price is None
    fills = journal.fills(run)
    assert [f.ref_price for f in fills] == [D("60000.05"), D("60000.05"), None, None]
    # the slippage of the first order, exactly: (0.05 + 0.15) x 0.001
    slip = sum((f.price - f.ref_price) * f.qty for f in fills[:2])
    assert slip == D("0.00020")


def test_migration_0003_downgrades_and_upgrades(journal):
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "orderflow.journal:migrations")

    def tables() -> set[str]:
        return set(sa.inspect(journal.engine).get_table_names())

    def columns(t: str) -> set[str]:
        return {c["name"] for c in sa.inspect(journal.engine).get_columns(t)}

    run = journal.start_run("paper", "local", ["BTCUSDT"], 1)
    journal.record_intent(OrderIntent("keep", "BTCUSDT", Side.SELL, 0.001, OrderType.MARKET,
                                      ref_price=10.5, ts_created=1), run)  # fmt: skip
    for target in ("0002", "head"):
        with journal.engine.connect() as conn, conn.begin():
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, target) if target == "0002" else command.upgrade(cfg, target)
        new = {"predictions", "model_inputs", "funding_events"}
        if target == "0002":
            assert not new & tables() and "ref_price" not in columns("fills") | columns("orders")
        else:
            assert new <= tables() and "ref_price" in columns("fills") and "ref_price" in columns("orders")
    assert journal.order("keep").side == "sell"  # the orders survived the round trip
