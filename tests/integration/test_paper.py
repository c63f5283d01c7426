"""`orderflow paper`: the live engine against an in-process local exchange on the simulator, over real
sockets (market streams, signed REST orders, the user data stream): with no arguments it runs and says
what it did; with the OFI-only example config it trades, every order is filled and booked, and the
position is flat at the end."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from orderflow.cli import main

OFI_ONLY = str(Path(__file__).resolve().parents[2] / "config" / "examples" / "ofi-only")


@pytest.mark.slow
def test_paper_without_arguments_runs_and_reports(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ORDERFLOW_REGISTRY", str(tmp_path / "reg"))  # an empty registry: no model
    assert main(["paper", "--minutes", "0.15", "--log-level", "WARNING"]) == 0
    out = capsys.readouterr().out
    assert "in-process local exchange" in out and "book events" in out
    m = re.search(r"ran \d+ s: ([\d,]+) book events", out)
    assert m and int(m.group(1).replace(",", "")) > 100


@pytest.mark.slow
@pytest.mark.parametrize("market", ["usdm", "spot"])  # spot: the user data stream on the WebSocket API
def test_paper_trades_and_books_every_fill(tmp_path, capsys, monkeypatch, market):
    monkeypatch.setenv("ORDERFLOW_REGISTRY", str(tmp_path / "reg"))
    db = tmp_path / "journal.sqlite"
    rc = main(["paper", "--minutes", "0.4", "--speed", "25", "--config", OFI_ONLY, "--model", "none",
               "--market", market, "--log-level", "WARNING", "--db", str(db)])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    m = re.search(r"orders sent (\d+), fills (\d+), round trips (\d+), position (\S+)", out)
    assert m, out
    orders, fills, trips, pos = int(m.group(1)), int(m.group(2)), int(m.group(3)), float(m.group(4))
    assert orders >= 2 and fills >= orders and trips >= 1 and pos == 0.0, out
    assert "order error" not in out
    assert re.search(r"tick-to-order: p50 \d+ us", out)
    # the journal holds every order (intent first), its final state and every fill
    from orderflow.journal import Journal

    with Journal.open(str(db)) as j:
        by_state = j.orders_by_state()
        assert sum(by_state.values()) == orders and by_state.get("filled", 0) == orders, by_state
        assert not j.unresolved_intents() and not j.open_orders()
        assert len(j.fills()) == fills
        (run,) = j.runs()
        assert run.stop_reason == "completed"
        # the decisions: one "pass" row per order the strategy asked for, rejections by named gates
        sig = j.signals()
        passed = [x for x in sig if x.gate == "pass"]
        assert len(passed) == orders and {x.action for x in passed} <= {"enter", "add", "exit"}
        assert {x.action for x in passed} >= {"enter", "exit"}
        rejected = [x for x in sig if x.gate != "pass"]
        assert rejected and all(x.action == "none" for x in rejected)
        assert {x.gate for x in rejected} <= {"invalid", "stale", "regime", "confidence", "quality", "ev",
                                              "risk", "pending", "spot_short"}  # fmt: skip
        assert all(x.ev is None or abs(x.ev) < 0.1 for x in sig)  # fractions of notional
        # the position is exact: flat at the end, so its realized PnL is sells minus buys over the
        # journaled fills, recomputed here in Decimal and compared exactly (no float tail)
        (p,) = j.positions(run.id)
        fl = j.fills(run.id)
        expected = sum((f.qty * f.price * (1 if f.side == "sell" else -1) for f in fl), Decimal(0))
        # fees in quote: on spot a buy pays its commission in the base asset, which is not added in
        quote_fees = sum((f.fee for f in fl if f.fee_asset in (None, "USDT")), Decimal(0))
        assert (p.qty, p.realized_pnl, p.fees) == (0, expected, quote_fees)
        assert j.summary(run.id)["pnl"]["realized"] == expected
    assert main(["journal", "--db", str(db), "--json"]) == 0
    assert '"fills"' in capsys.readouterr().out


def test_live_refuses_without_confirmation_or_keys(capsys, monkeypatch):
    assert main(["live", "--minutes", "0.1", "--model", "none"]) == 2
    assert "--i-understand-this-trades-real-money" in capsys.readouterr().err
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    rc = main(["live", "--minutes", "0.1", "--model", "none", "--i-understand-this-trades-real-money",
               "--rest-url", "http://127.0.0.1:9", "--ws-url", "ws://127.0.0.1:9"])  # fmt: skip
    assert rc == 2 and "BINANCE_API_KEY" in capsys.readouterr().err


def test_paper_start_failure_closes_the_run_as_failed(tmp_path, capsys, monkeypatch):
    """A wrong API secret: the venue refuses the first signed request at start-up. One line, exit 2, and
    the journal's run is closed as failed with the venue's reason (not left "running or crashed")."""
    from orderflow.execution.local.testing import running_local_exchange
    from orderflow.journal import Journal

    monkeypatch.setenv("ORDERFLOW_REGISTRY", str(tmp_path / "reg"))
    db = tmp_path / "journal.sqlite"
    with running_local_exchange(source="sim", seed=1, clock="realtime", speed=10, sim_hours=0.1) as ex:
        monkeypatch.setenv("WRONGKEYS_API_KEY", ex.api_key)
        monkeypatch.setenv("WRONGKEYS_API_SECRET", "not-" + str(ex.api_secret))
        rc = main(["paper", "--rest-url", ex.rest_url, "--ws-url", ex.ws_url, "--keys-prefix",
                   "WRONGKEYS", "--minutes", "0.2", "--model", "none", "--db", str(db),
                   "--log-level", "WARNING"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("orderflow: ")]
    assert line.startswith("orderflow: paper run 1 failed at start: SignatureError: Binance -1022"), err
    with Journal.open(str(db)) as j:
        (run,) = j.runs()
    assert run.stopped_ns is not None and run.stop_reason.startswith("failed at start: SignatureError")
    assert "Signature for this request is not valid" in run.stop_reason
    assert main(["journal", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "FAILED, stopped" in out and "running or crashed" not in out


def test_paper_on_a_corrupt_journal_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ORDERFLOW_REGISTRY", str(tmp_path / "reg"))
    db = tmp_path / "journal.sqlite"
    db.write_bytes(b"not sqlite at all " * 200)
    assert main(["paper", "--minutes", "0.1", "--model", "none", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err == f"orderflow: journal: sqlite:///{db}: file is not a database\n"
