"""Operator controls of a running `orderflow paper` process: SIGTERM stops it gracefully (journal run
stopped with the reason, position closed by the stop policy); the kill switch set from another process
(`orderflow kill`) moves the engine to reduce-only and then halts it, recorded in the journal."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orderflow.cli import main

REPO = Path(__file__).resolve().parents[2]
OFI_ONLY = str(REPO / "config" / "examples" / "ofi-only")


def _paper(tmp_path: Path, *extra: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "ORDERFLOW_KILL_FILE": str(tmp_path / "kill"),
        "ORDERFLOW_REGISTRY": str(tmp_path / "r"),
    }
    return subprocess.Popen([sys.executable, "-m", "orderflow.cli", "paper", "--config", OFI_ONLY, "--model",
                             "none", "--speed", "20", "--db", str(tmp_path / "j.sqlite"), "--log-level",
                             "WARNING", *extra], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def _wait_for_orders(tmp_path: Path, proc: subprocess.Popen, n: int, timeout: float = 90.0) -> None:
    from orderflow.journal import Journal

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.3)
        try:
            with Journal.open(str(tmp_path / "j.sqlite")) as j:
                if len(j.orders()) >= n:
                    return
        except Exception:
            continue
    raise AssertionError(f"fewer than {n} orders in time; output: {proc.communicate(timeout=5)[0]}")


@pytest.mark.slow
def test_sigterm_stops_gracefully_and_closes_the_position(tmp_path):
    from orderflow.journal import Journal

    proc = _paper(tmp_path, "--minutes", "3")
    _wait_for_orders(tmp_path, proc, 1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    with Journal.open(str(tmp_path / "j.sqlite")) as j:
        (run,) = j.runs()
        assert run.stop_reason == "signal SIGTERM"
        assert not j.unresolved_intents() and not j.open_orders()
        assert all(float(p.qty) == 0.0 for p in j.positions())


@pytest.mark.slow
def test_kill_switch_reduce_only_then_halt(tmp_path, capsys):
    from orderflow.journal import Journal

    kill = str(tmp_path / "kill")
    proc = _paper(tmp_path, "--minutes", "3")
    _wait_for_orders(tmp_path, proc, 1)
    assert main(["kill", "reduce_only", "--file", kill]) == 0
    assert "reduce_only" in capsys.readouterr().out
    time.sleep(3)
    with Journal.open(str(tmp_path / "j.sqlite")) as j:
        n_entries = sum(1 for o in j.orders() if o.purpose == "entry")
    time.sleep(4)  # reduce-only: no new entry, exits still allowed
    with Journal.open(str(tmp_path / "j.sqlite")) as j:
        assert sum(1 for o in j.orders() if o.purpose == "entry") == n_entries
    assert main(["kill", "halt", "--file", kill]) == 0
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "kill switch: halt" in out
    with Journal.open(str(tmp_path / "j.sqlite")) as j:
        (run,) = j.runs()
        assert run.stop_reason == "kill switch: halt"
        summary = j.summary()
    assert summary["risk_events"] >= 2  # reduce_only and halt, each recorded


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_stop_while_an_order_is_on_the_wire_waits_for_its_answer(tmp_path):
    """A stop that arrives between an order's journaled intent and the exchange's answer (the REST
    request held 2 s by a proxy) must not cut the send: the answer is journaled, the fill booked, and
    the close-on-stop policy then flattens the position, with nothing left unresolved."""
    from orderflow.adapters.binance.common.config import TradingClientConfig
    from orderflow.adapters.binance.common.signing import Credentials
    from orderflow.adapters.binance.trading.client import BinanceTradingClient
    from orderflow.config import load_config
    from orderflow.core.instruments import KNOWN
    from orderflow.engine.paper import PaperEngine
    from orderflow.execution.local.testing import running_local_exchange
    from orderflow.journal import Journal
    from support.httpfault import RestFaultProxy

    cfg = load_config(OFI_ONLY)
    inst = KNOWN[("binance-usdm", "BTCUSDT")]
    with running_local_exchange(source="sim", seed=0, clock="realtime", speed=20.0, market="usdm",
                                sim_hours=0.5, symbol="BTCUSDT") as ex:  # fmt: skip
        creds = Credentials.hmac(ex.api_key, ex.api_secret)
        direct = TradingClientConfig(market="usdm", rest_base_url=ex.rest_url, ws_base_url=ex.ws_url,
                                     client_id_prefix="check")  # fmt: skip
        async with RestFaultProxy(ex.rest_url) as proxy, BinanceTradingClient(direct, creds) as client:
            with Journal.open(str(tmp_path / "j.sqlite")) as journal:
                engine = PaperEngine(cfg, "usdm", "BTCUSDT", proxy.url, ex.ws_url, creds, inst,
                                     journal=journal)  # fmt: skip
                proxy.hold_order_s = 2.0
                run = asyncio.create_task(engine.run(minutes=3.0))
                deadline = time.monotonic() + 120
                while not proxy.holding.is_set():
                    assert not run.done(), run.result()
                    assert time.monotonic() < deadline, "no order within 120 s"
                    await asyncio.sleep(0.01)
                (held,) = journal.unresolved_intents()  # journaled, sent, not answered yet
                engine.request_stop("test stop")
                stats = await asyncio.wait_for(run, 60)
                assert stats.stop_reason == "test stop" and stats.order_errors == []
                assert not journal.unresolved_intents() and not journal.open_orders()
                states = {o.client_order_id: o.state for o in journal.orders()}
                assert states[held.client_order_id] == "filled", states
                assert len(states) == 2 and all(s == "filled" for s in states.values()), states
                assert all(float(p.qty) == 0.0 for p in journal.positions())
            pos = (await client.positions()).get("BTCUSDT")
            assert pos is None or pos.quantity == 0.0
            assert proxy.order_posts == 2  # the held entry and the closing order, each once
