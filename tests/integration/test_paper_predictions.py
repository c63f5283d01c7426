"""A paper run journals what the period report's model evaluation and cost attribution need: the engine
against the local exchange in lockstep on the simulator (seed 21, 12 minutes across a funding hour;
real WebSocket streams, signed REST orders, the user data stream) with a fixed three-input model and a
SQLite journal. The journal then holds sampled predictions with their triple-barrier outcomes and
input vectors, the decision mid on every fill, and the funding payment as the engine booked it and as
the exchange charged it; the report's figures equal a recomputation from those rows, and its HTML
renders in Chromium (screenshot in test-artifacts/)."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import shutil
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import msgspec
import numpy as np
import pytest
import sqlalchemy as sa
from scipy import stats

from orderflow.adapters.binance.common.signing import Credentials
from orderflow.config import Config
from orderflow.engine import core as CO
from orderflow.engine.lockstep import ManualClock, run_lockstep
from orderflow.engine.paper import PaperEngine
from orderflow.execution import portfolio as PF
from orderflow.execution.local.config import LocalExchangeConfig
from orderflow.execution.local.server import LocalExchange
from orderflow.journal import Journal
from orderflow.reports.build import build_report, plain
from orderflow.reports.periods import period_of
from orderflow.reports.render import write_report

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
D = Decimal
HOUR_MS = 3_600_000
START_MS = 472_223 * HOUR_MS - 9 * 60_000  # 2023-11-14 22:51 UTC: the run crosses a funding hour
DAY = dt.date(2023, 11, 14)
PSI_REF = 100
FEATURES = ["ofi_int_z_1s", "spread_bps", "ofi_e1"]


class RuleModel:
    """A fixed model with the serving interface: p(up) rises with the OFI z-score (the first input);
    the other two inputs are read (and journaled) but do not move it."""

    def __init__(self) -> None:
        self.manifest = SimpleNamespace(feature_names=FEATURES)
        self.source = "rule on ofi_int_z_1s"
        self.schema_hash = "rule"

    def new_state(self) -> None:
        return None

    def predict(self, rows: np.ndarray, state: object = None) -> np.ndarray:
        z = np.nan_to_num(np.atleast_2d(np.asarray(rows, np.float64))[:, 0], nan=0.0)
        up = 0.5 + 0.5 * z / (1.0 + np.abs(z))
        return np.stack([0.8 * (1.0 - up), np.full_like(up, 0.2), 0.8 * up], axis=1)


def _config() -> Config:
    base = Config()
    strategy = base.strategy.model_copy(update={"confidence_gate": 0.55, "ev_cost_mult": 0.0,
                                                "quality_gate": 0.5})  # fmt: skip
    ex = base.backtest.exchange.model_copy(update={"venue": "binance-usdm", "funding_rate": 0.0005,
                                                   "funding_interval_h": 1})  # fmt: skip
    bt = base.backtest.model_copy(update={"exchange": ex, "close_at_end": False})
    labels = base.labels.model_copy(update={"vol_window_s": 60.0, "horizon_s": 30.0})
    return base.model_copy(update={"strategy": strategy, "backtest": bt, "labels": labels})


@pytest.fixture(scope="module")
def paper(tmp_path_factory) -> SimpleNamespace:
    tmp = tmp_path_factory.mktemp("paper-predictions")
    db = tmp / "journal.sqlite"
    cfg = _config()
    cfg = cfg.model_copy(
        update={"monitor": cfg.monitor.model_copy(update={"telemetry": str(tmp / "telemetry")})}
    )

    async def go() -> SimpleNamespace:
        xcfg = LocalExchangeConfig(source="sim", seed=21, sim_hours=0.2, clock="lockstep", market="usdm",
                                   start_ms=START_MS, levels=cfg.features.levels,
                                   matching=cfg.backtest.exchange,
                                   decision_latency_us=cfg.backtest.decision_latency_us)  # fmt: skip
        clock = ManualClock()
        with Journal.open(f"sqlite:///{db}") as j:
            async with LocalExchange(xcfg) as ex:
                inst = ex.venue.markets["BTCUSDT"].inst
                keys = Credentials.hmac(xcfg.api_key, xcfg.secret or "")
                engine = PaperEngine(cfg, "usdm", "BTCUSDT", ex.rest_url, ex.ws_url, keys, inst,
                                     model=RuleModel(), on_stop="keep", clock=clock, snapshot_on_connect=True,
                                     journal=j)  # fmt: skip
                engine.prediction_inputs_every = 2
                await run_lockstep(engine, ex, clock, timeout_s=120.0)
                charged = (ex.venue.fundings, ex.venue.funding_paid)
        return SimpleNamespace(engine=engine, db=db, tmp=tmp, charged=charged)

    return asyncio.run(go())


def _rows(db: Path, sql: str) -> list:
    eng = sa.create_engine(f"sqlite:///{db}")
    with eng.connect() as c:
        out = list(c.execute(sa.text(sql)))
    eng.dispose()
    return out


def _report(db: Path) -> dict:
    eng = sa.create_engine(f"sqlite:///{db}")
    with eng.connect() as c:
        rep = build_report(c, period_of("daily", DAY), psi_reference=PSI_REF)
    eng.dispose()
    return rep


def test_predictions_and_outcomes_are_journaled(paper):
    e = paper.engine
    assert e.stats.order_errors == [] and e.stats.orders_sent > 20
    preds = _rows(paper.db, "select * from predictions order by seq")
    assert len(preds) > 300 and [p.seq for p in preds] == list(range(len(preds)))
    assert {p.version for p in preds} == {"rule on ofi_int_z_1s"}
    assert {p.horizon_ns for p in preds} == {30 * 1_000_000_000}
    # every prediction has its probabilities as the model gave them
    for p in preds:
        assert p.p_flat == pytest.approx(0.2) and p.p_down + p.p_flat + p.p_up == pytest.approx(1.0)
    # the outcomes: all but the last horizon's worth are resolved, by the triple-barrier rule's shape
    resolved = [p for p in preds if p.label is not None]
    assert len(resolved) >= len(preds) - 40 and {p.label for p in resolved} == {-1, 0, 1}
    for p in resolved:
        assert p.event_ns < p.outcome_ns <= p.event_ns + p.horizon_ns
        if p.label == 0:
            assert p.outcome_ns == p.event_ns + p.horizon_ns
        else:
            assert p.ret * p.label > 0
    # orders: each one decided on a valid row has its prediction; an entry's is priced, an exit's not
    orders = {o.client_order_id: o for o in _rows(paper.db, "select * from orders")}
    linked = [p for p in preds if p.client_order_id is not None]
    assert {p.client_order_id for p in linked} <= set(orders) and len(linked) >= len(orders) // 2
    exits = [p for p in linked if orders[p.client_order_id].purpose == "exit"]
    entries = [p for p in linked if orders[p.client_order_id].purpose == "entry"]
    assert exits and all(p.ev is None for p in exits)
    assert entries and all(p.ev is not None and p.side in (1, -1) for p in entries)
    assert all(orders[p.client_order_id].side == ("buy" if p.side > 0 else "sell") for p in entries)
    priced = [p for p in preds if p.ev is not None]
    assert all(math.isfinite(p.ev) and 0 < p.cost < 0.01 for p in priced)
    # the input vectors: every other row, in the order of model_inputs.names
    (names,) = _rows(paper.db, "select names from model_inputs")
    assert msgspec.json.decode(names.names) == FEATURES
    with_inputs = [p for p in preds if p.inputs is not None]
    assert [p.seq for p in with_inputs] == list(range(0, len(preds), 2))
    assert all(len(msgspec.msgpack.decode(p.inputs)) == 3 for p in with_inputs)


def test_every_fill_carries_the_core_s_decision_mid(paper):
    fills = _rows(paper.db, "select * from fills order by id")
    core = paper.engine.session.fo_f[: paper.engine.session.D[CO.D_NFO]]
    assert len(fills) == len(core) > 20
    for f, c in zip(fills, core, strict=True):
        assert f.ref_price is not None
        assert D(f.ref_price) == D(repr(round(float(c[CO.FO_MID]), 9)))  # the mid the core measured against
        assert float(f.price) == pytest.approx(c[CO.FO_PX], rel=1e-12)
    # the report's slippage is exactly sum side x (price - ref) x qty over the journaled fills
    want = sum((D(f.price) - D(f.ref_price)) * D(f.qty) * (1 if f.side == "buy" else -1) for f in fills)
    rep = _report(paper.db)
    assert rep["pnl"]["slippage"] == want and rep["pnl"]["slippage_fills"] == len(fills)


def test_funding_payments_are_journaled_as_booked_and_as_charged(paper):
    booked = -float(paper.engine.session.P[PF.P_FUNDING])  # received positive
    assert booked != 0.0
    ev = _rows(paper.db, "select * from funding_events order by id")
    model = [e for e in ev if e.source == "model"]
    venue = [e for e in ev if e.source == "exchange"]
    assert len(model) == 1 and len(venue) == paper.charged[0] == 1
    assert D(model[0].amount) == D(repr(booked)).quantize(D("1e-8"))
    assert float(venue[0].amount) == pytest.approx(-paper.charged[1], abs=1e-8)
    assert float(model[0].position) != 0 and model[0].rate == 0.0005
    rep = _report(paper.db)
    assert rep["pnl"]["funding"] == D(model[0].amount) and rep["pnl"]["funding_exchange"] == D(
        venue[0].amount
    )


def test_the_telemetry_carries_the_same_predictions_and_outcomes(paper):
    from orderflow.telemetry import schema as S
    from orderflow.telemetry.bus import FileReader

    run = paper.engine.run_id
    events = FileReader(paper.tmp / "telemetry").read(run, max_events=10_000_000)
    outputs = [e for e in events if isinstance(e, S.ModelOutput)]
    outcomes = [e for e in events if isinstance(e, S.Outcome)]
    preds = _rows(paper.db, "select * from predictions order by seq")
    # one tracker serves both: every journaled prediction was published, every outcome too
    assert [(o.p_down, o.p_up, o.ts_ns) for o in outputs] == [(p.p_down, p.p_up, p.ts_ns) for p in preds]
    by_event = {(p.event_ns, p.p_down): p for p in preds}
    resolved = [p for p in preds if p.label is not None]
    assert len(outcomes) == len(resolved)
    for o in outcomes:
        p = by_event[o.pred_ts_ns, o.p_down]
        assert (o.label, o.ret, o.p_down) == (p.label, p.ret, p.p_down)


def _ece(conf: np.ndarray, hit: np.ndarray) -> float:
    total = 0.0
    for b in range(10):
        m = np.array([min(int(c * 10), 9) == b for c in conf])
        if m.any():
            total += m.sum() / conf.size * abs(hit[m].mean() - conf[m].mean())
    return total


def test_the_model_figures_equal_a_recomputation_from_the_journal(paper):
    rep = _report(paper.db)
    m = rep["model"]
    preds = _rows(paper.db, "select * from predictions order by ts_ns, id")
    res = [p for p in preds if p.label is not None]
    assert (m["predictions"], m["resolved"]) == (len(preds), len(res))
    P = np.array([(p.p_down, p.p_flat, p.p_up) for p in res])
    onehot = np.array([[float(p.label == k) for k in (-1, 0, 1)] for p in res])
    assert m["brier"] == pytest.approx(np.mean(np.sum((P - onehot) ** 2, axis=1)), abs=1e-9)
    losses = [-math.log(r[p.label + 1]) for r, p in zip(P, res, strict=True)]
    assert m["log_loss"] == pytest.approx(np.mean(losses), abs=1e-9)
    # the baseline: for each sample, add-one frequencies of the labels known at its exchange time
    base_b, base_l = [], []
    for p in res:
        counts = [1.0, 1.0, 1.0]
        for q in res:
            if q.outcome_ns <= p.event_ns:
                counts[q.label + 1] += 1
        prob = [c / sum(counts) for c in counts]
        base_b.append(sum((prob[k] - (p.label == k - 1)) ** 2 for k in range(3)))
        base_l.append(-math.log(prob[p.label + 1]))
    assert m["baseline"]["brier"] == pytest.approx(np.mean(base_b), abs=1e-9)
    assert m["baseline"]["log_loss"] == pytest.approx(np.mean(base_l), abs=1e-9)
    # top label, hit rate, ECE and the deciles
    top = [max(range(3), key=lambda k, r=r: (r[k], -k)) for r in P]  # the first on a tie
    conf = np.array([r[k] for r, k in zip(P, top, strict=True)])
    hit = np.array([k - 1 == p.label for k, p in zip(top, res, strict=True)])
    assert m["hit_rate"] == pytest.approx(hit.mean(), abs=1e-9)
    assert m["reliability"]["ece"] == pytest.approx(_ece(conf, hit), abs=1e-9)
    order = sorted(range(len(conf)), key=lambda i: (conf[i], i))
    for d in range(10):
        members = [i for r, i in enumerate(order) if r * 10 // len(order) == d]
        got = m["hit_by_decile"][d]
        assert got["n"] == len(members) and got["hit_rate"] == pytest.approx(hit[members].mean(), abs=1e-9)
    # the rolling IC: scipy's Spearman on the same windows
    score = P[:, 2] - P[:, 0]
    ret = np.array([p.ret for p in res])
    ic = m["ic"]
    assert ic["window"] == 200 and ic["end"][-1] == len(res) - 1
    for end, v in zip(ic["end"], ic["ic"], strict=True):
        s = slice(end - ic["window"] + 1, end + 1)
        assert v == pytest.approx(stats.spearmanr(score[s], ret[s]).statistic, abs=1e-9)
    assert ic["overall"] == pytest.approx(stats.spearmanr(score, ret).statistic, abs=1e-9)
    # expected and realised EV: the priced predictions; the traded ones' cost from their fills
    fills: dict[str, list] = {}
    for f in _rows(paper.db, "select * from fills"):
        fills.setdefault(f.client_order_id, []).append(f)
    traded = []
    for p in res:
        if p.ev is not None and p.client_order_id in fills:
            fs = fills[p.client_order_id]
            paid = sum(float(f.fee) + (1 if f.side == "buy" else -1) * (float(f.price) - float(f.ref_price))
                       * float(f.qty) for f in fs)  # fmt: skip
            traded.append(
                (p.ev, p.side * math.expm1(p.ret), 2 * paid / sum(float(f.price) * float(f.qty) for f in fs))
            )
    t = m["ev"]["traded"]
    assert t["n"] == len(traded) > 5
    assert t["ev_expected"] == pytest.approx(np.mean([x[0] for x in traded]), abs=1e-12)
    assert t["ev_realised"] == pytest.approx(np.mean([x[1] for x in traded]), abs=1e-12)
    assert t["cost_realised"] == pytest.approx(np.mean([x[2] for x in traded]), rel=1e-9)
    # PSI per input: the reference is the first PSI_REF vectors, the rest of the day is compared
    vecs = [(p.id, msgspec.msgpack.decode(p.inputs)) for p in preds if p.inputs is not None]
    ref = np.array([v for _, v in vecs[:PSI_REF]])
    cur = np.array([v for _, v in vecs[PSI_REF:]])
    drift = m["drift"]["versions"]["rule on ofi_int_z_1s"]
    assert (drift["n_ref"], drift["n_cur"]) == (PSI_REF, len(cur))
    got = {f["name"]: f["psi"] for f in drift["features"]}
    for k, name in enumerate(FEATURES):
        edges = sorted(set(np.quantile(ref[:, k], [q / 10 for q in range(1, 10)]).tolist()))

        def share(v: np.ndarray, edges=edges) -> list[float]:
            idx = [sum(1 for e in edges if x > e) for x in v]
            return [max(idx.count(b) / len(v), 1e-4) for b in range(len(edges) + 1)]

        e, a = share(ref[:, k]), share(cur[:, k])
        assert got[name] == pytest.approx(sum((x - w) * math.log(x / w) for x, w in zip(a, e, strict=True)),
                                          abs=1e-9), name  # fmt: skip
    assert [t["name"] for t in m["drift"]["top"]] == sorted(got, key=lambda n: -got[n])


def test_the_report_renders(paper):
    rep = _report(paper.db)
    out = paper.tmp / "report"
    paths = write_report(rep, out, pdf=False)
    text = paths["html"].read_text()
    assert text.count("data:image/png;base64,") == 5  # equity, calibration, EV, IC, drift
    assert "not journaled" not in text
    figures = msgspec.json.decode(paths["json"].read_bytes())
    assert figures["model"]["brier"] == pytest.approx(rep["model"]["brier"])
    assert figures == msgspec.json.decode(msgspec.json.encode(plain(rep)))  # the JSON twin carries it all
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    import os

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    shot = ROOT / "test-artifacts" / "model_report.png"
    shot.parent.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(paths["html"].resolve().as_uri())
        sizes = page.eval_on_selector_all("img", "els => els.map(e => [e.naturalWidth, e.naturalHeight])")
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert len(sizes) == 5 and all(w >= 1000 and h >= 200 for w, h in sizes)  # every plot decoded
    assert shot.stat().st_size > 50_000
