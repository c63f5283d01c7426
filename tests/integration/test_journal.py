"""The SQL journal on SQLite (a temporary file) and on PostgreSQL at 127.0.0.1:5432.

PostgreSQL: one fresh database per module (unique name, dropped at the end); each test gets its own
schema in it (through ``search_path``), so every test starts from an empty database. An unreachable
server skips the PostgreSQL half with the reason, and fails it when ``CI=true``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderflow.cli.journal import journal_cmd
from orderflow.cli.journal import register as add_journal_parser
from orderflow.core.orders import OrderIntent
from orderflow.journal import (
    ORDER_STATES,
    TRANSITIONS,
    IllegalTransitionError,
    InconsistentReportError,
    Journal,
    UnknownOrderError,
    head_revision,
    resolve_url,
)
from orderflow.journal.models import Base, DuplicateOrderError

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
TABLES = {"runs", "orders", "order_events", "fills", "positions", "equity", "signals", "risk_events",
          "model_versions", "alerts", "alert_deliveries", "alert_incidents", "report_sends",
          "alerter_state", "predictions", "model_inputs", "funding_events", "alembic_version"}  # fmt: skip


def _pg_unavailable(reason: str) -> None:
    msg = f"PostgreSQL at 127.0.0.1:5432 unreachable ({reason})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg + " - required when CI=true")
    pytest.skip(msg)


@pytest.fixture(scope="module")
def pg_database():
    """A fresh database for this module, dropped afterwards; yields its URL."""
    try:
        import psycopg
    except ImportError as e:
        _pg_unavailable(f"psycopg not installed: {e}")
    name = f"orderflow_journal_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True,
                                connect_timeout=3)  # fmt: skip
    except psycopg.OperationalError as e:
        _pg_unavailable(str(e).strip().splitlines()[0])
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{PG_SERVER}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """An empty database: a SQLite file, or a fresh schema in the module's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.sqlite'}"
    base = request.getfixturevalue("pg_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    eng = sa.create_engine(base)
    with eng.begin() as c:
        c.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    eng.dispose()
    return f"{base}?options=-csearch_path%3D{schema}"


@pytest.fixture()
def journal(url):
    j = Journal.open(url)
    yield j
    j.close()


def intent(cid: str, ts: int = 1_000, **kw) -> OrderIntent:
    kw.setdefault("price", 100.0)
    if "tif" in kw:
        kw["time_in_force"] = kw.pop("tif")
    return OrderIntent(client_order_id=cid, symbol=kw.pop("symbol", "BTCUSDT"), side=kw.pop("side", "buy"),
                       quantity=kw.pop("qty", 0.3), ts_created=ts, **kw)  # fmt: skip


def _tables(j: Journal) -> set[str]:
    return set(sa.inspect(j.engine).get_table_names())


def _version(j: Journal) -> str:
    with j.engine.connect() as c:
        return c.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()


# -- schema ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_migrations_create_schema_from_empty_and_match_models(url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with Journal.open(url) as j:
        assert _tables(j) == TABLES
        assert _version(j) == head_revision()
        with j.engine.connect() as c:
            assert compare_metadata(MigrationContext.configure(c), Base.metadata) == []


def test_migrations_are_idempotent_and_keep_data(url):
    with Journal.open(url) as j:
        run = j.start_run("paper", "binance-usdm", ["btcusdt"], 1)
        j.record_intent(intent("keep-1"), run)
    for _ in range(2):
        with Journal.open(url) as j:
            assert _version(j) == head_revision()
            assert _tables(j) == TABLES
            assert [o.client_order_id for o in j.open_orders()] == ["keep-1"]


def test_concurrent_open_of_an_empty_database(url):
    errors: list[BaseException] = []
    opened: list[Journal] = []

    def go() -> None:
        try:
            opened.append(Journal.open(url))
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=go) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(_version(j) == head_revision() for j in opened)
    for j in opened:
        j.close()


# -- order life cycle --------------------------------------------------------------------------------
def test_intent_sent_partial_filled_with_events(journal):
    run = journal.start_run("live", "binance-usdm", "BTCUSDT", 10, config_hash="abc")
    journal.record_intent(intent("c-1", ts=100, qty="0.3", price="100.1", tif="GTC", post_only=True), run)
    assert journal.order("c-1").state == "intent"
    journal.mark_sent("c-1", 101)
    journal.mark_sent("c-1", 999)  # a repeat changes nothing
    assert journal.apply_report("c-1", "NEW", 0, None, 77, 102) is True
    assert journal.apply_report("c-1", "PARTIALLY_FILLED", 0.1, 100.1, 77, 103) is True
    assert journal.apply_report("c-1", "partially_filled", 0.1, 100.1, 77, 104) is False  # repeat
    assert journal.apply_report("c-1", "partially_filled", 0.2, 100.1, 77, 105) is True
    assert journal.apply_report("c-1", "FILLED", 0.3, 100.1, 77, 106, report={"execType": "TRADE"}) is True
    o = journal.order("c-1")
    assert (o.state, o.filled_qty, o.avg_price, o.exchange_order_id) == ("filled", Decimal("0.3"),
                                                                          Decimal("100.1"), "77")  # fmt: skip
    assert (o.created_ns, o.sent_ns, o.updated_ns, o.post_only, o.tif) == (100, 101, 106, True, "gtc")
    ev = journal.order_events("c-1")
    assert [(e.old_state, e.new_state) for e in ev] == [
        (None, "intent"), ("intent", "sent"), ("sent", "new"), ("new", "partially_filled"),
        ("partially_filled", "partially_filled"), ("partially_filled", "filled"),
    ]  # fmt: skip
    assert [e.filled_qty for e in ev][-3:] == [Decimal("0.1"), Decimal("0.2"), Decimal("0.3")]
    assert json.loads(ev[-1].report) == {"execType": "TRADE"}
    assert journal.open_orders() == [] and journal.unresolved_intents() == []
    assert journal.orders_by_state() == {"filled": 1}


def test_report_overtaking_mark_sent_and_unknown_resolution(journal):
    run = journal.start_run("paper", "local", ["BTCUSDT"], 1)
    journal.record_intent(intent("fast"), run)
    journal.apply_report("fast", "new", 0, None, 5, 2)  # the ack arrived before mark_sent ran
    journal.mark_sent("fast", 3)
    o = journal.order("fast")
    assert (o.state, o.sent_ns) == ("new", 3)
    journal.apply_report("fast", "unknown", None, None, None, 10, "no answer in 5 s")
    assert [x.client_order_id for x in journal.unresolved_intents()] == ["fast"]
    journal.apply_report("fast", "canceled", 0, None, 5, 11, "resolved by query")
    assert journal.order("fast").state == "canceled" and journal.unresolved_intents() == []


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (["new", "filled"], "canceled"),
        (["new", "canceled"], "new"),
        (["new"], "sent"),
        (["new", "partially_filled"], "new"),
        (["rejected"], "filled"),
    ],
)
def test_illegal_transitions_rejected(journal, path, bad):
    run = journal.start_run("paper", "local", ["BTCUSDT"], 1)
    journal.record_intent(intent("x"), run)
    for i, state in enumerate(path):
        journal.apply_report("x", state, 0.1 if state == "partially_filled" else None, None, None, 10 + i)
    before = journal.order("x")
    with pytest.raises(IllegalTransitionError) as err:
        journal.apply_report("x", bad, None, None, None, 99)
    assert (err.value.old, err.value.new) == (path[-1], bad)
    assert f"{path[-1]} -> {bad}" in str(err.value)
    after = journal.order("x")
    assert (after.state, after.updated_ns) == (before.state, before.updated_ns)  # nothing written
    assert len(journal.order_events("x")) == 1 + len(path)


def test_inconsistent_reports_and_unknown_orders_rejected(journal):
    run = journal.start_run("paper", "local", ["BTCUSDT"], 1)
    journal.record_intent(intent("q", qty=1), run)
    journal.apply_report("q", "partially_filled", 0.6, 100, None, 2)
    with pytest.raises(InconsistentReportError) as err:
        journal.apply_report("q", "canceled", 0.4, 100, None, 3)
    assert (err.value.value, err.value.limit) == (Decimal("0.4"), Decimal("0.6"))
    with pytest.raises(InconsistentReportError):
        journal.apply_report("q", "filled", 1.5, 100, None, 3)
    with pytest.raises(UnknownOrderError):
        journal.apply_report("nope", "new", 0, None, None, 3)
    with pytest.raises(UnknownOrderError):
        journal.record_fill("nope", 1, 100, 1, 3)
    with pytest.raises(DuplicateOrderError):
        journal.record_intent(intent("q"), run)
    with pytest.raises(ValueError, match="needs a price"):
        journal.record_intent(intent("r", price=None), run)


def test_transition_table_is_the_specified_one():
    terminal = {"filled", "canceled", "expired", "rejected"}
    assert (
        TRANSITIONS["new"] >= {"partially_filled", "filled"} and "filled" in TRANSITIONS["partially_filled"]
    )
    for st_ in ("new", "partially_filled"):
        assert TRANSITIONS[st_] >= {"canceled", "expired", "rejected", "unknown"}
    assert all("unknown" in TRANSITIONS[s_] for s_ in ORDER_STATES if s_ not in terminal)
    assert TRANSITIONS["unknown"] == set(ORDER_STATES)
    assert all(TRANSITIONS[s_] == set() for s_ in terminal)
    assert "intent" not in set().union(*(TRANSITIONS[s_] for s_ in ORDER_STATES if s_ != "unknown"))


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(states=st.lists(st.sampled_from(ORDER_STATES), min_size=1, max_size=6))
def test_state_machine_matches_the_table(journal, states):
    """Any sequence of reports: the journal accepts exactly the table's edges, and the stored state
    always follows the last accepted report."""
    run = journal.start_run("paper", "local", ["BTCUSDT"], 1)
    cid = uuid.uuid4().hex[:16]
    journal.record_intent(intent(cid, qty=10), run)
    cur, filled = "intent", 0
    for i, new in enumerate(states):
        filled += 1 if new in ("partially_filled", "unknown") else 0
        try:
            changed = journal.apply_report(cid, new, filled if new != "filled" else 10, None, None, i + 2)
        except IllegalTransitionError:
            assert new not in TRANSITIONS[cur]
            continue
        assert new in TRANSITIONS[cur] or (new == cur and not changed)
        cur = new
        assert journal.order(cid).state == cur


# -- fills, crash, summary --------------------------------------------------------------------------
def test_duplicate_fill_stored_once(journal):
    run = journal.start_run("paper", "local", ["BTCUSDT"], 1)
    journal.record_intent(intent("f"), run)
    assert journal.record_fill("f", 555, 100.0, 0.1, 5, fee=0.004, fee_asset="USDT", liquidity="MAKER")
    assert not journal.record_fill("f", "555", 100.0, 0.1, 6, fee=0.004, fee_asset="USDT")  # from REST
    assert journal.record_fill("f", 556, 100.5, 0.2, 7)
    fills = journal.fills(run)
    assert [(f.trade_id, f.qty, f.liquidity) for f in fills] == [("555", Decimal("0.1"), "maker"),
                                                                  ("556", Decimal("0.2"), None)]  # fmt: skip
    assert sum(f.qty for f in fills) == Decimal("0.3")  # exact decimals, not 0.30000000000000004


_CRASH = """
import os, signal, sys
from orderflow.core.orders import OrderIntent
from orderflow.journal import Journal
j = Journal.open(sys.argv[1])
run = j.start_run("live", "binance-usdm", ["BTCUSDT"], 1)
j.record_intent(OrderIntent("acked", "BTCUSDT", "buy", 1, price=100, ts_created=2), run)
j.apply_report("acked", "new", 0, None, 9, 3)
j.record_intent(OrderIntent("never-sent", "BTCUSDT", "buy", 1, price=100, ts_created=4), run)
j.record_intent(OrderIntent("sent-no-ack", "BTCUSDT", "sell", 1, price=101, ts_created=5), run)
j.mark_sent("sent-no-ack", 6)
print(run, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_unresolved_intents_found_after_a_crash(url):
    Journal.open(url).close()  # schema first, so the child only writes
    proc = subprocess.run([sys.executable, "-c", _CRASH, url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run = int(proc.stdout.strip())
    with Journal.open(url) as j:
        assert [(o.client_order_id, o.state) for o in j.unresolved_intents()] == [
            ("never-sent", "intent"), ("sent-no-ack", "sent")]  # fmt: skip
        assert {o.client_order_id for o in j.open_orders(run)} == {"acked", "never-sent", "sent-no-ack"}
        assert j.runs()[0].stopped_ns is None  # the run never stopped: it crashed


def test_summary_numbers_by_hand(journal):
    a = journal.start_run("paper", "local", ["BTCUSDT", "ETHUSDT"], 1_000_000_000)
    b = journal.start_run("live", "binance-usdm", ["BTCUSDT"], 2_000_000_000)
    journal.record_intent(intent("a1", qty=0.3, price=100), a)
    journal.apply_report("a1", "filled", 0.3, 100.5, 1, 10)
    journal.record_fill("a1", 1, 100, 0.1, 10, fee=0.01, fee_asset="USDT")
    journal.record_fill("a1", 2, 101, 0.2, 10, fee=0.02, fee_asset="USDT")
    journal.record_intent(intent("a2", symbol="ETHUSDT", side=-1, qty=2, price=50), a)
    journal.apply_report("a2", "partially_filled", 1, 50, 2, 11)
    journal.record_fill("a2", 1, 50, 1, 11, fee=0.001, fee_asset="BNB")
    journal.record_intent(intent("a3", qty=1, price=90), a)
    journal.apply_report("a3", "rejected", 0, None, None, 12, "post-only would cross")
    journal.record_intent(intent("b1", qty=5, price=100), b)
    journal.upsert_position(a, "BTCUSDT", 0.3, 100.5, 0, 0.03, 0, 10)
    journal.upsert_position(
        a, "BTCUSDT", 0.1, 100.5, 1.25, 0.05, -0.01, 20, mark_price=110, unrealized_pnl=0.95
    )
    journal.upsert_position(a, "ETHUSDT", -1, 50, 0, 0.02, 0, 11)
    journal.record_equity(a, 10, 1000)
    journal.record_equity(a, 20, 1002.14)
    journal.record_equity(b, 30, 500)
    journal.record_signal(a, 10, "BTCUSDT", fused=0.5, ofi_score=0.4, ai_score=0.6, confidence=0.7, quality=1,
                          ev=0.001, cost=0.0003, action="enter", gate=0)  # fmt: skip
    journal.record_risk_event(
        12, "max_notional", 150.0, 100.0, "notional above limit", run_id=a, approved_qty=0
    )
    journal.record_model_version(5, "7", "loaded", "h1", run_id=a)
    journal.record_model_version(6, "8", "refused", "h2", run_id=a, message="schema mismatch")
    journal.stop_run(a, 3_000_000_000, "end of session")

    s = journal.summary()
    assert s["orders"] == {"total": 4, "by_state": {"intent": 1, "partially_filled": 1, "filled": 1,
                                                    "rejected": 1}, "open": 2, "unresolved": 1}  # fmt: skip
    f = s["fills"]
    assert (f["count"], f["volume_base"], f["volume_quote"]) == (3, Decimal("1.3"), Decimal("80.2"))
    assert f["fees_by_asset"] == {"USDT": Decimal("0.03"), "BNB": Decimal("0.001")}
    assert f["by_symbol"]["BTCUSDT"] == {
        "count": 2,
        "volume_base": Decimal("0.3"),
        "volume_quote": Decimal("30.2"),
    }
    assert [(p["symbol"], p["qty"]) for p in s["positions"]] == [("BTCUSDT", Decimal("0.1")),
                                                                 ("ETHUSDT", Decimal("-1"))]  # fmt: skip
    # realized 1.25 + 0; unrealized 0.95 (the only known one); fees 0.05 + 0.02; funding -0.01
    assert s["pnl"] == {"realized": Decimal("1.25"), "unrealized": Decimal("0.95"), "fees": Decimal("0.07"),
                        "funding": Decimal("-0.01"), "net": Decimal("2.12")}  # fmt: skip
    assert s["equity"] == [{"run_id": a, "ts_ns": 20, "equity": Decimal("1002.14")},
                           {"run_id": b, "ts_ns": 30, "equity": Decimal("500")}]  # fmt: skip
    assert (s["signals"], s["risk_events"], s["model"]["version"], s["model"]["event"]) == (
        1,
        1,
        "8",
        "refused",
    )
    assert [(r["id"], r["orders"], r["stop_reason"]) for r in s["runs"]] == [(a, 3, "end of session"),
                                                                            (b, 1, None)]  # fmt: skip
    only_b = journal.summary(b)
    assert only_b["orders"]["by_state"] == {"intent": 1} and only_b["fills"]["count"] == 0
    assert only_b["pnl"]["unrealized"] is None and only_b["equity"][0]["equity"] == Decimal("500")


@pytest.mark.slow
def test_concurrent_journals_one_run_each(url):
    Journal.open(url).close()
    errors: list[BaseException] = []
    runs: dict[str, int] = {}

    def engine(name: str) -> None:
        try:
            with Journal.open(url) as j:
                run = runs[name] = j.start_run("paper", "local", [name], 1)
                for i in range(30):
                    cid = f"{name}-{i}"
                    j.record_intent(intent(cid, ts=10 + i, symbol=name), run)
                    j.mark_sent(cid, 11 + i)
                    j.apply_report(cid, "filled", 0.3, 100, i, 12 + i)
                    j.record_fill(cid, i, 100, 0.3, 12 + i)
                    j.upsert_position(run, name, 0.3 * (i + 1), 100, 0, 0, 0, 12 + i)
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=engine, args=(n,)) for n in ("BTCUSDT", "ETHUSDT")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Journal.open(url) as j:
        for name, run in runs.items():
            assert j.orders_by_state(run) == {"filled": 30}
            assert len(j.fills(run)) == 30 and {f.symbol for f in j.fills(run)} == {name}
            assert [(p.symbol, p.qty) for p in j.positions(run)] == [(name, Decimal("9.0"))]
            assert len(j.order_events(f"{name}-29")) == 3


def test_secrets_never_stored(journal):
    from orderflow.secrets import register_secret

    register_secret("SECRETSECRETSECRET")
    run = journal.start_run("live", "binance-usdm", ["BTCUSDT"], 1)
    journal.record_intent(intent("s"), run)
    journal.apply_report("s", "rejected", 0, None, None, 2, "HTTP 400 for ...&signature=deadbeef00",
                         report={"raw": "key SECRETSECRETSECRET"})  # fmt: skip
    journal.record_risk_event(3, "auth", None, None, "bad key SECRETSECRETSECRET", run_id=run)
    with journal.engine.connect() as c:
        dump = " ".join(str(r) for t in ("orders", "order_events", "risk_events")
                        for r in c.execute(sa.text(f"SELECT * FROM {t}")))  # fmt: skip
    assert "SECRETSECRETSECRET" not in dump and "deadbeef00" not in dump
    assert "signature=<redacted>" in dump


# -- the command ---------------------------------------------------------------------------------------
def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_journal_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["journal", *argv])


@pytest.mark.slow
def test_journal_command_table_and_json(url, capsys):
    with Journal.open(url) as j:
        run = j.start_run("paper", "local", ["BTCUSDT"], 1)
        j.record_intent(intent("c"), run)
        j.apply_report("c", "filled", 0.3, 100, 1, 2)
        j.record_fill("c", 1, 100, 0.3, 2, fee=0.03, fee_asset="USDT")
    assert journal_cmd(None, _args("--db", url)) == 0
    out = capsys.readouterr().out
    assert "orders: 1 (filled 1)" in out and "volume 0.3 base = 30 quote" in out
    assert journal_cmd(None, _args("--db", url, "--json", "--run", str(run))) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fills"]["volume_quote"] == "30" and data["orders"]["by_state"] == {"filled": 1}
    assert journal_cmd(None, _args("--db", url, "--run", "999")) == 2
    assert "no run 999" in capsys.readouterr().err


def test_journal_command_missing_file_and_url_resolution(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "none.sqlite"
    assert journal_cmd(None, _args("--db", str(missing))) == 0
    assert "no journal at" in capsys.readouterr().out and not missing.exists()
    monkeypatch.setenv("ORDERFLOW_DB", "postgresql://u@h/db")
    assert resolve_url() == "postgresql+psycopg://u@h/db"
    assert resolve_url("/x/j.sqlite") == "sqlite:////x/j.sqlite"
    monkeypatch.delenv("ORDERFLOW_DB")
    assert resolve_url().endswith(str(Path("orderflow") / "journal.sqlite"))


# -- errors name the real cause, in one line ------------------------------------------------------------
def _main_err(capsys, *argv: str) -> tuple[int, str]:
    from orderflow.cli import main

    rc = main(["journal", *argv])
    return rc, capsys.readouterr().err


def test_journal_errors_give_the_drivers_message_in_one_line(tmp_path, capsys):
    bad = tmp_path / "j.db"
    bad.write_bytes(b"this is not a database file, just some text" * 100)
    rc, err = _main_err(capsys, "--db", str(bad))
    assert rc == 2 and err == f"orderflow: journal sqlite:///{bad}: file is not a database\n"
    with pytest.raises(Exception, match="file is not a database") as e:
        Journal.open(str(bad))
    assert type(e.value).__name__ == "JournalDatabaseError" and "Wraps" not in str(e.value)

    rc, err = _main_err(capsys, "--db", "postgresql://postgres@127.0.0.1:1/none")  # nothing listens on 1
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith("orderflow: journal postgresql+psycopg://postgres@127.0.0.1:1/none: ")
    assert "Connection refused" in err and "Wraps" not in err


@pytest.mark.parametrize("db", ["mysql://u:hunter2@db.example/j", "nosuch://x/y"])
def test_journal_unsupported_url_names_db_and_value(capsys, db):
    rc, err = _main_err(capsys, "--db", db)
    shown = db.replace("hunter2", "***")
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"orderflow: journal --db {shown}: unsupported database") and "hunter2" not in err


@pytest.mark.slow
def test_journal_command_prints_no_alembic_info(tmp_path):
    db = tmp_path / "j.sqlite"
    Journal.open(str(db)).close()
    env = {**os.environ, "ORDERFLOW_DB": str(db)}
    proc = subprocess.run([sys.executable, "-m", "orderflow.cli", "journal"], capture_output=True,
                          text=True, timeout=300, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "alembic" not in proc.stdout + proc.stderr and "INFO" not in proc.stderr, proc.stderr
    assert proc.stdout.startswith(f"journal sqlite:///{db}\n")


# -- positions in exact decimals, from the fills --------------------------------------------------------
def test_position_from_fills_is_exact(journal):
    run = journal.start_run("paper", "local", ["BTCUSDT"], 1)
    fills = [
        ("b1", "buy", "65000.1", "0.003", "0.0780001"),
        ("b2", "buy", "65010.3", "0.002", "0.052"),
        ("s1", "sell", "64990.7", "0.004", "0.104"),
        ("s2", "sell", "64980.9", "0.003", "0.078"),
    ]
    for i, (cid, side, px, qty, fee) in enumerate(fills):
        journal.record_intent(intent(cid, ts=10 + i, side=side, qty=qty, price=px), run)
        journal.record_fill(cid, 1, float(px), float(qty), 10 + i, fee=float(fee), fee_asset="USDT")
        journal.sync_position(run, "BTCUSDT", 10 + i, quote_asset="USDT")  # after each fill, as paper does
    journal.record_intent(intent("bnb", ts=20, qty="0.001", price="64000"), run)
    journal.record_fill("bnb", 1, "64000", "0.001", 20, fee="0.00001", fee_asset="BNB")  # not quote
    ledger = journal.sync_position(run, "BTCUSDT", 30, funding=-0.0123456789123, quote_asset="USDT")
    # FIFO by hand: s1 closes b1 (0.003: (64990.7 - 65000.1) * 0.003 = -0.0282) and 0.001 of b2
    # ((64990.7 - 65010.3) * 0.001 = -0.0196); s2 closes 0.001 of b2 (-0.0294) and opens 0.002 short at
    # 64980.9; "bnb" buys 0.001 back: (64980.9 - 64000) * 0.001 = 0.9809
    realized = Decimal("-0.0282") + Decimal("-0.0196") + Decimal("-0.0294") + Decimal("0.9809")
    (p,) = journal.positions(run)
    assert (p.qty, p.avg_price, p.realized_pnl) == (Decimal("-0.001"), Decimal("64980.9"), realized)
    assert p.fees == Decimal("0.3120001") and p.funding == Decimal("-0.01234568")
    assert ledger.realized == realized and journal.summary(run)["pnl"]["realized"] == Decimal("0.9037")
    # kept between calls, the ledger read only the new fills each time: a fresh rebuild agrees
    fresh = Journal(journal.engine).sync_position(
        run, "BTCUSDT", 30, funding=-0.0123456789123, quote_asset="USDT"
    )
    assert (fresh.qty, fresh.realized, fresh.fees) == (ledger.qty, ledger.realized, ledger.fees)
    # the same fills in floats, as the trading core books them, carry a tail the journal must not keep
    assert repr(0.003 * (64990.7 - 65000.1)) != "-0.0282"


@pytest.mark.slow
def test_position_adopted_at_start_is_booked_before_the_runs_fills(journal):
    run = journal.start_run("live", "binance-usdm", ["BTCUSDT"], 1)
    journal.record_intent(intent("close", side="sell", qty="0.002", price="64100.5"), run)
    journal.record_fill("close", 1, 64100.5, 0.002, 5, fee=0.0512804, fee_asset="USDT")
    journal.sync_position(run, "BTCUSDT", 6, opening=(0.002, 64000.2))  # left by a run that died
    (p,) = journal.positions(run)
    # (64100.5 - 64000.2) * 0.002 = 0.2006; flat afterwards
    assert (p.qty, p.avg_price, p.realized_pnl, p.fees) == (0, None, Decimal("0.2006"), Decimal("0.0512804"))
