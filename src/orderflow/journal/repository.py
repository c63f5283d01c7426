"""The journal's repository: :class:`Journal` records what the engine does and answers queries.

One writer per engine; every write is its own short transaction, committed before the method returns
(``record_intent`` in particular is durable before the order is sent). On SQLite the file is in WAL
mode (readers never block the writer) and writes take the lock up front (``BEGIN IMMEDIATE``), so two
engines on one file queue instead of failing; on PostgreSQL the order row is locked while a report
is applied. The schema is upgraded to the newest alembic revision whenever a journal opens.

Timestamps are given by the caller (int ns since the epoch, from the engine's clock); the journal
never reads the wall clock. Free text (reasons, report fields, messages) goes through
:func:`orderflow.secrets.redact` before it is stored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from orderflow.core.orders import OrderIntent
from orderflow.journal.db import (
    JournalDatabaseError,
    check_url,
    describe_error,
    make_engine,
    resolve_url,
    upgrade_schema,
)

if TYPE_CHECKING:
    from orderflow.journal.ledger import Ledger

from orderflow.journal.models import (
    FUNDING_SOURCES,
    MODEL_EVENTS,
    OPEN_STATES,
    ORDER_STATES,
    ORDER_TYPES,
    PURPOSES,
    RUN_MODES,
    TIME_IN_FORCE,
    UNRESOLVED_STATES,
    DuplicateOrderError,
    EquitySnapshot,
    FillRow,
    FundingEvent,
    InconsistentReportError,
    JournalError,
    ModelInputs,
    ModelVersion,
    Order,
    OrderEvent,
    Position,
    Prediction,
    RiskEvent,
    Run,
    Signal,
    UnknownOrderError,
    check_transition,
    normalize_state,
    to_decimal,
)
from orderflow.secrets import redact

Num = Decimal | float | int | str
_FILL_TOLERANCE = Decimal("1e-9")  # relative: engine floats summed to the order quantity


def _side(side: str | int) -> str:
    if isinstance(side, int) and not isinstance(side, bool):
        if side in (1, -1):
            return "buy" if side > 0 else "sell"
    elif str(side).lower() in ("buy", "sell"):
        return str(side).lower()
    raise ValueError(f"side {side!r}: use buy/sell (or +1/-1)")


def _choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    v = str(value).lower()
    if v not in allowed:
        raise ValueError(f"{what} {value!r}: use one of {', '.join(allowed)}")
    return v


def _float(x: float | None) -> float | None:
    return None if x is None or math.isnan(float(x)) else float(x)


def _text(x: str | None) -> str | None:
    return None if x is None else redact(str(x))


def _version(v: object) -> str:
    """A model version as stored (at most 128 characters: a long source path keeps its tail)."""
    s = str(v)
    return s if len(s) <= 128 else "..." + s[-125:]


def _label(y: object) -> int:
    v = int(y)  # type: ignore[call-overload]
    if v not in (-1, 0, 1):
        raise ValueError(f"outcome label {y!r}: use -1, 0 or 1")
    return v


class Journal:
    """Trading journal over SQLAlchemy. Open with :meth:`open`; use as a context manager or
    :meth:`close`. Query methods return detached ORM rows (snapshots: changing them changes nothing)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._write_engine = engine.execution_options(journal_write=True)
        self._ledgers: dict[tuple, tuple[Ledger, int]] = {}  # sync_position's, with the last fill id read

    # -- life cycle ------------------------------------------------------------------------------
    @classmethod
    def open(cls, url: str | None = None, *, synchronous: str = "NORMAL") -> Journal:
        """Connect to ``url`` (see :func:`resolve_url`) and upgrade its schema to head.

        Raises :class:`JournalDatabaseError` (the URL and the driver's message) when the database
        cannot be reached, is not a journal's, or its back end is not SQLite or PostgreSQL."""
        url = resolve_url(url)
        check_url(url)
        try:
            engine = make_engine(url, synchronous=synchronous)
        except (SQLAlchemyError, ImportError, OSError) as e:  # ImportError: the driver is not installed
            raise JournalDatabaseError(url, describe_error(e)) from e
        try:
            upgrade_schema(engine)
        except (SQLAlchemyError, OSError) as e:
            engine.dispose()
            raise JournalDatabaseError(url, describe_error(e)) from e
        except Exception:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({self.url})"

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with Session(self._write_engine, expire_on_commit=False) as s, s.begin():
            yield s

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            yield s

    def session(self, write: bool = False) -> Any:
        """One transaction on the journal's database (a write one takes the lock up front), for the
        services that keep tables of their own in it (the alerter)."""
        return self._write() if write else self._read()

    def _insert(self, session: Session, table: Any) -> Any:
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            return postgresql.insert(table)
        if dialect == "sqlite":
            return sqlite.insert(table)
        raise JournalError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")

    # -- runs ------------------------------------------------------------------------------------
    def start_run(
        self,
        mode: str,
        venue: str,
        symbols: list[str] | tuple[str, ...] | str,
        ts_ns: int,
        *,
        config_hash: str = "",
        code_version: str | None = None,
    ) -> int:
        """Record a run starting at ``ts_ns``; returns its id."""
        if code_version is None:
            from orderflow import __version__ as code_version
        syms = symbols.split(",") if isinstance(symbols, str) else list(symbols)
        run = Run(
            mode=_choice(mode, RUN_MODES, "mode"),
            venue=venue,
            symbols=",".join(s.strip().upper() for s in syms if s.strip()),
            started_ns=int(ts_ns),
            config_hash=config_hash,
            code_version=str(code_version),
        )
        with self._write() as s:
            s.add(run)
            s.flush()
            return int(run.id)

    def stop_run(self, run_id: int, ts_ns: int, reason: str) -> None:
        """Record that run ``run_id`` stopped at ``ts_ns`` and why."""
        with self._write() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise JournalError(f"run {run_id}: not in the journal")
            run.stopped_ns, run.stop_reason = int(ts_ns), _text(reason)

    # -- orders ----------------------------------------------------------------------------------
    def record_intent(self, order: OrderIntent, run_id: int) -> None:
        """Journal ``order`` of run ``run_id`` in state ``intent`` and commit (call before sending it).
        NaN prices are stored as none; ``parent_id`` and ``reason`` "" as none. ``order.ref_price`` (the
        mid at the decision) is kept as the reference its fills' slippage is measured against."""
        otype = _choice(order.order_type, ORDER_TYPES, "order_type")
        qty = to_decimal(order.quantity, "qty")
        price, stop = to_decimal(order.price), to_decimal(order.stop_price)
        if qty is None or qty <= 0:
            raise ValueError(f"order {order.client_order_id}: qty {order.quantity} must be > 0")
        if otype in ("limit", "stop_limit") and (price is None or price <= 0):
            raise ValueError(f"order {order.client_order_id}: a {otype} order needs a price > 0")
        if otype.startswith("stop") and (stop is None or stop <= 0):
            raise ValueError(f"order {order.client_order_id}: a {otype} order needs a stop price > 0")
        row = Order(
            client_order_id=order.client_order_id,
            run_id=run_id,
            symbol=order.symbol.upper(),
            side=_side(order.side),
            order_type=otype,
            tif=None if order.time_in_force is None else _choice(order.time_in_force, TIME_IN_FORCE, "tif"),
            price=price,
            stop_price=stop,
            qty=qty,
            reduce_only=bool(order.reduce_only),
            post_only=bool(order.post_only),
            parent_id=order.parent_id or None,
            purpose=_choice(order.purpose, PURPOSES, "purpose"),
            state="intent",
            filled_qty=Decimal(0),
            created_ns=int(order.ts_created),
            updated_ns=int(order.ts_created),
            reason=_text(order.reason or None),
            ref_price=to_decimal(order.ref_price, "ref_price"),
        )
        try:
            with self._write() as s:
                if s.get(Run, run_id) is None:
                    raise JournalError(f"order {order.client_order_id}: run {run_id} not in the journal")
                s.add(row)
                s.flush()
                s.add(
                    OrderEvent(
                        client_order_id=row.client_order_id,
                        ts_ns=row.created_ns,
                        old_state=None,
                        new_state="intent",
                        filled_qty=Decimal(0),
                        reason=row.reason,
                    )
                )
        except IntegrityError:
            if self.order(order.client_order_id) is not None:
                raise DuplicateOrderError(order.client_order_id) from None
            raise

    def _locked_order(self, s: Session, client_order_id: str) -> Order:
        o = s.scalars(
            sa.select(Order).where(Order.client_order_id == client_order_id).with_for_update()
        ).one_or_none()
        if o is None:
            raise UnknownOrderError(client_order_id)
        return o

    def mark_sent(self, client_order_id: str, ts_ns: int) -> None:
        """The order was handed to the exchange at ``ts_ns``: ``intent -> sent``. If a report already
        moved it on, only ``sent_ns`` is filled in; a repeat is a no-op."""
        with self._write() as s:
            o = self._locked_order(s, client_order_id)
            if o.sent_ns is None:
                o.sent_ns = int(ts_ns)
            if o.state == "intent":
                o.state, o.updated_ns = "sent", int(ts_ns)
                s.add(
                    OrderEvent(
                        client_order_id=client_order_id,
                        ts_ns=int(ts_ns),
                        old_state="intent",
                        new_state="sent",
                        filled_qty=o.filled_qty,
                    )
                )

    def apply_report(
        self,
        client_order_id: str,
        state: str,
        filled: Num | None,
        avg: Num | None,
        exchange_id: str | int | None,
        ts_ns: int,
        reason: str | None = None,
        *,
        report: Mapping[str, Any] | None = None,
    ) -> bool:
        """Apply an exchange report: new ``state``, cumulative ``filled`` (base units; ``None`` keeps it,
        or the order quantity for ``filled``), average fill price ``avg``, the exchange's order id.
        ``report`` holds further report fields, stored as JSON on the event.

        Returns False for a repeat (same state, no more filled) and changes nothing then. Raises
        :class:`IllegalTransitionError` for an edge the state machine lacks, and
        :class:`InconsistentReportError` when the filled quantity falls or exceeds the order's."""
        new = normalize_state(state)
        with self._write() as s:
            o = self._locked_order(s, client_order_id)
            f = to_decimal(filled, "filled")
            if f is None:
                f = o.qty if new == "filled" else o.filled_qty
            if new == o.state and f <= o.filled_qty:
                return False
            check_transition(client_order_id, o.state, new)
            if f < o.filled_qty:
                raise InconsistentReportError(client_order_id, "filled qty falls:", f, o.filled_qty)
            if f > o.qty * (1 + _FILL_TOLERANCE):
                raise InconsistentReportError(client_order_id, "filled qty above the order's:", f, o.qty)
            a = to_decimal(avg, "avg")
            ex = None if exchange_id is None else str(exchange_id)
            old = o.state
            o.state, o.filled_qty, o.updated_ns = new, f, int(ts_ns)
            o.avg_price = a if a is not None else o.avg_price
            o.exchange_order_id = ex or o.exchange_order_id
            o.reason = _text(reason) or o.reason
            s.add(
                OrderEvent(
                    client_order_id=client_order_id,
                    ts_ns=int(ts_ns),
                    old_state=old,
                    new_state=new,
                    filled_qty=f,
                    avg_price=a,
                    exchange_order_id=ex,
                    reason=_text(reason),
                    report=None if report is None else _text(json.dumps(dict(report), default=str)),
                )
            )
            return True

    # -- fills, positions, equity ----------------------------------------------------------------
    def record_fill(
        self,
        client_order_id: str,
        trade_id: str | int,
        price: Num,
        qty: Num,
        ts_ns: int,
        *,
        fee: Num = 0,
        fee_asset: str | None = None,
        liquidity: str | None = None,
        realized_pnl: Num | None = None,
    ) -> bool:
        """Record one trade of an order (price in quote currency, qty in base units, fee paid in
        ``fee_asset``), with the order's reference price (its decision mid, when the intent gave one).
        Idempotent: True if stored, False if (client order id, trade id) was already."""
        p, q = to_decimal(price, "price"), to_decimal(qty, "qty")
        if p is None or q is None or p <= 0 or q <= 0:
            raise ValueError(f"fill {client_order_id}/{trade_id}: price {price} and qty {qty} must be > 0")
        with self._write() as s:
            o = s.scalars(sa.select(Order).where(Order.client_order_id == client_order_id)).one_or_none()
            if o is None:
                raise UnknownOrderError(client_order_id)
            stmt = (
                self._insert(s, FillRow.__table__)
                .values(
                    client_order_id=client_order_id,
                    trade_id=str(trade_id),
                    run_id=o.run_id,
                    symbol=o.symbol,
                    side=o.side,
                    price=p,
                    qty=q,
                    fee=to_decimal(fee, "fee") or Decimal(0),
                    fee_asset=fee_asset,
                    liquidity=None if liquidity is None else liquidity.lower(),
                    realized_pnl=to_decimal(realized_pnl, "realized_pnl"),
                    ts_ns=int(ts_ns),
                    ref_price=o.ref_price,
                )
                .on_conflict_do_nothing(index_elements=["client_order_id", "trade_id"])
                .returning(FillRow.__table__.c.id)
            )
            return s.execute(stmt).scalar_one_or_none() is not None

    def upsert_position(
        self,
        run_id: int,
        symbol: str,
        qty: Num,
        avg_price: Num | None,
        realized_pnl: Num,
        fees: Num,
        funding: Num,
        ts_ns: int,
        *,
        mark_price: Num | None = None,
        unrealized_pnl: Num | None = None,
    ) -> None:
        """Set run ``run_id``'s position in ``symbol``: signed ``qty`` (base units), average entry price,
        realized PnL (gross), fees paid and funding received so far (quote currency)."""
        values = {
            "qty": to_decimal(qty, "qty") or Decimal(0),
            "avg_price": to_decimal(avg_price),
            "realized_pnl": to_decimal(realized_pnl, "realized_pnl") or Decimal(0),
            "fees": to_decimal(fees, "fees") or Decimal(0),
            "funding": to_decimal(funding, "funding") or Decimal(0),
            "mark_price": to_decimal(mark_price),
            "unrealized_pnl": to_decimal(unrealized_pnl),
            "updated_ns": int(ts_ns),
        }
        with self._write() as s:
            stmt = self._insert(s, Position.__table__).values(run_id=run_id, symbol=symbol.upper(), **values)
            s.execute(stmt.on_conflict_do_update(index_elements=["run_id", "symbol"], set_=values))

    def sync_position(
        self,
        run_id: int,
        symbol: str,
        ts_ns: int,
        *,
        funding: Num = 0,
        quote_asset: str | None = None,
        opening: tuple[Num, Num] | None = None,
    ) -> Ledger:
        """Set run ``run_id``'s position in ``symbol`` from its journaled fills, in exact decimals (see
        :mod:`orderflow.journal.ledger`): quantity, average price, realized PnL (FIFO, gross), fees
        (those paid in ``quote_asset`` or with no asset named; all of them when ``quote_asset`` is
        None). ``funding`` (received, positive) is the engine's figure at the configured rate, a float
        estimate: it is rounded to 1e-8 quote (Binance's balance precision) so that no float tail is
        stored as exact. ``opening`` is (signed qty, entry price) of a position the run adopted from
        the exchange at start (opened by an earlier run), booked before the run's fills. Returns the
        ledger."""
        from orderflow.journal.ledger import Ledger

        # the ledger is kept between calls and reads only the fills journaled since (fills of a run are
        # appended in time order), so a long run does not re-read its history on every fill
        key = (run_id, symbol.upper(), quote_asset, opening)
        ledger, last_id = self._ledgers.get(key, (None, 0))
        if ledger is None:
            ledger = Ledger()
            if opening is not None and (oq := to_decimal(opening[0], "qty")):
                price = to_decimal(opening[1], "price") or Decimal(0)
                ledger.apply("buy" if oq > 0 else "sell", abs(oq), price)
        q = (
            sa.select(FillRow)
            .where(FillRow.run_id == run_id, FillRow.symbol == symbol.upper(), FillRow.id > last_id)
            .order_by(FillRow.id)
        )
        with self._read() as s:
            for f in s.scalars(q):
                own = quote_asset is None or f.fee_asset is None or f.fee_asset.upper() == quote_asset.upper()
                ledger.apply(f.side, f.qty, f.price, f.fee if own else Decimal(0))
                last_id = f.id
        self._ledgers[key] = (ledger, last_id)
        fund = (to_decimal(funding, "funding") or Decimal(0)).quantize(Decimal("1e-8"))
        self.upsert_position(run_id, symbol, ledger.qty, ledger.avg_price, ledger.realized, ledger.fees,
                             fund.normalize(), ts_ns)  # fmt: skip
        return ledger

    def record_equity(
        self,
        run_id: int,
        ts_ns: int,
        equity: Num,
        *,
        balance: Num | None = None,
        unrealized_pnl: Num | None = None,
        exposure: Num | None = None,
    ) -> None:
        """An equity snapshot (quote currency): total equity, cash balance, unrealized PnL, gross exposure."""
        eq = to_decimal(equity, "equity")
        if eq is None:
            raise ValueError("record_equity: equity is NaN")
        with self._write() as s:
            s.add(
                EquitySnapshot(
                    run_id=run_id,
                    ts_ns=int(ts_ns),
                    equity=eq,
                    balance=to_decimal(balance),
                    unrealized_pnl=to_decimal(unrealized_pnl),
                    exposure=to_decimal(exposure),
                )
            )

    # -- decisions -------------------------------------------------------------------------------
    def record_signal(
        self,
        run_id: int,
        ts_ns: int,
        symbol: str,
        *,
        fused: float,
        ofi_score: float,
        ai_score: float,
        confidence: float,
        quality: float,
        ev: float,
        cost: float,
        action: str | int,
        gate: str | int,
    ) -> None:
        """A fused signal and its gate decision. ``action``/``gate`` are names, or the strategy's codes
        (indices into ``orderflow.strategy.layout.ACTIONS`` / ``GATES``). ``ev`` and ``cost`` are
        fractions of notional."""
        self.record_signals(run_id, symbol, [dict(ts_ns=ts_ns, fused=fused, ofi_score=ofi_score,
                                                  ai_score=ai_score, confidence=confidence, quality=quality,
                                                  ev=ev, cost=cost, action=action, gate=gate)])  # fmt: skip

    def record_signals(self, run_id: int, symbol: str, rows: list[dict[str, Any]]) -> int:
        """Several signals of one symbol in one transaction (keys as :meth:`record_signal`'s
        arguments); returns how many were written."""
        from orderflow.strategy.layout import ACTIONS, GATES

        out = []
        for r in rows:
            action, gate = r["action"], r["gate"]
            out.append(
                Signal(
                    run_id=run_id,
                    ts_ns=int(r["ts_ns"]),
                    symbol=symbol.upper(),
                    fused=_float(r["fused"]),
                    ofi_score=_float(r["ofi_score"]),
                    ai_score=_float(r["ai_score"]),
                    confidence=_float(r["confidence"]),
                    quality=_float(r["quality"]),
                    ev=_float(r["ev"]),
                    cost=_float(r["cost"]),
                    action=ACTIONS[action] if isinstance(action, int) else str(action),
                    gate=GATES[gate] if isinstance(gate, int) else str(gate),
                )
            )
        if out:
            with self._write() as s:
                s.add_all(out)
        return len(out)

    def record_risk_event(
        self,
        ts_ns: int,
        rule: str,
        value: float | None,
        limit: float | None,
        message: str,
        *,
        run_id: int | None = None,
        symbol: str | None = None,
        approved_qty: Num | None = None,
        client_order_id: str | None = None,
    ) -> None:
        """A risk decision: ``rule`` with its ``value`` against ``limit`` (the rule's units) and the
        quantity approved (base units; 0 for a refusal, ``None`` when not about an order)."""
        row = RiskEvent(
            run_id=run_id,
            ts_ns=int(ts_ns),
            symbol=None if symbol is None else symbol.upper(),
            rule=rule,
            value=_float(value),
            limit=_float(limit),
            message=_text(message) or "",
            approved_qty=to_decimal(approved_qty),
            client_order_id=client_order_id,
        )
        with self._write() as s:
            s.add(row)

    def record_model_version(
        self,
        ts_ns: int,
        version: str | int,
        event: str,
        schema_hash: str,
        *,
        run_id: int | None = None,
        message: str | None = None,
    ) -> None:
        """A model version ``loaded`` or ``refused`` (with the feature schema hash it declares)."""
        row = ModelVersion(
            run_id=run_id,
            ts_ns=int(ts_ns),
            version=str(version),
            event=_choice(event, MODEL_EVENTS, "event"),
            schema_hash=schema_hash,
            message=_text(message),
        )
        with self._write() as s:
            s.add(row)

    # -- model evaluation, funding ---------------------------------------------------------------
    def record_predictions(
        self,
        run_id: int,
        symbol: str,
        rows: list[dict[str, Any]],
        outcomes: list[tuple[int, int, float, int]] | None = None,
    ) -> int:
        """New predictions of run ``run_id`` in ``symbol`` (keys: the :class:`Prediction` columns but
        ``id``, ``run_id`` and ``symbol``; ``ev``, ``cost``, ``side``, ``client_order_id``, ``label``,
        ``ret``, ``outcome_ns`` and ``inputs`` may be left out) and the outcomes of earlier ones as
        ``(seq, label, ret, outcome_ns)``, in one transaction. Returns the rows inserted."""
        table = Prediction.__table__
        sym = symbol.upper()
        new = []
        for r in rows:
            label = r.get("label")
            new.append(
                {
                    "run_id": run_id,
                    "seq": int(r["seq"]),
                    "ts_ns": int(r["ts_ns"]),
                    "event_ns": int(r["event_ns"]),
                    "symbol": sym,
                    "version": _version(r["version"]),
                    "p_down": float(r["p_down"]),
                    "p_flat": float(r["p_flat"]),
                    "p_up": float(r["p_up"]),
                    "horizon_ns": int(r["horizon_ns"]),
                    "mid": float(r["mid"]),
                    "ev": _float(r.get("ev")),
                    "cost": _float(r.get("cost")),
                    "side": None if r.get("side") is None else int(r["side"]),
                    "client_order_id": r.get("client_order_id"),
                    "label": None if label is None else _label(label),
                    "ret": _float(r.get("ret")),
                    "outcome_ns": None if r.get("outcome_ns") is None else int(r["outcome_ns"]),
                    "inputs": r.get("inputs"),
                }
            )
        upd = [
            {"k_run": run_id, "k_seq": int(q), "label": _label(y), "ret": _float(ret), "outcome_ns": int(t)}
            for q, y, ret, t in outcomes or ()
        ]
        if not new and not upd:
            return 0
        with self._write() as s:
            c = s.connection()
            if new:
                c.execute(sa.insert(table), new)
            if upd:
                stmt = (
                    sa.update(table)
                    .where(table.c.run_id == sa.bindparam("k_run"), table.c.seq == sa.bindparam("k_seq"))
                    .values(label=sa.bindparam("label"), ret=sa.bindparam("ret"),
                            outcome_ns=sa.bindparam("outcome_ns"))
                )  # fmt: skip
                c.execute(stmt, upd)
        return len(new)

    def record_model_inputs(self, run_id: int, version: str, names: list[str], ts_ns: int) -> None:
        """The names of the values run ``run_id`` feeds model ``version`` (the order of a prediction's
        ``inputs``); a repeat for the same (run, version) keeps the first."""
        with self._write() as s:
            stmt = self._insert(s, ModelInputs.__table__).values(
                run_id=run_id, version=_version(version), ts_ns=int(ts_ns), names=json.dumps(list(names))
            )
            s.execute(stmt.on_conflict_do_nothing(index_elements=["run_id", "version"]))

    def record_funding(
        self,
        run_id: int,
        ts_ns: int,
        symbol: str,
        amount: Num,
        source: str,
        *,
        position: Num | None = None,
        mark: Num | None = None,
        rate: float | None = None,
    ) -> None:
        """One funding payment (quote currency, received positive) booked by the engine (``model``) or
        charged by the venue (``exchange``). A float amount is rounded to 1e-8 quote (Binance's balance
        precision) as :meth:`sync_position` rounds the run's total, so no float tail is stored as
        exact."""
        amt = to_decimal(amount, "funding amount")
        if amt is None:
            raise ValueError(f"funding of run {run_id} at {ts_ns}: amount is NaN")
        if isinstance(amount, float):
            amt = amt.quantize(Decimal("1e-8")).normalize()
        row = FundingEvent(
            run_id=run_id,
            ts_ns=int(ts_ns),
            symbol=symbol.upper(),
            source=_choice(source, FUNDING_SOURCES, "funding source"),
            amount=amt,
            position=to_decimal(position, "position"),
            mark=to_decimal(mark, "mark"),
            rate=_float(rate),
        )
        with self._write() as s:
            s.add(row)

    def predictions(self, run: int | None = None) -> list[Prediction]:
        """Journaled predictions in time order (optionally of one run)."""
        q = sa.select(Prediction).order_by(Prediction.ts_ns, Prediction.id)
        if run is not None:
            q = q.where(Prediction.run_id == run)
        with self._read() as s:
            return list(s.scalars(q))

    def funding_events(self, run: int | None = None) -> list[FundingEvent]:
        """Journaled funding payments in time order (optionally of one run)."""
        q = sa.select(FundingEvent).order_by(FundingEvent.ts_ns, FundingEvent.id)
        if run is not None:
            q = q.where(FundingEvent.run_id == run)
        with self._read() as s:
            return list(s.scalars(q))

    # -- queries ---------------------------------------------------------------------------------
    def _orders(self, states: frozenset[str] | None, run: int | None) -> list[Order]:
        q = sa.select(Order).order_by(Order.id)
        if states is not None:
            q = q.where(Order.state.in_(sorted(states)))
        if run is not None:
            q = q.where(Order.run_id == run)
        with self._read() as s:
            return list(s.scalars(q))

    def order(self, client_order_id: str) -> Order | None:
        with self._read() as s:
            return s.scalars(sa.select(Order).where(Order.client_order_id == client_order_id)).one_or_none()

    def order_events(self, client_order_id: str) -> list[OrderEvent]:
        """The order's state changes, oldest first."""
        q = sa.select(OrderEvent).where(OrderEvent.client_order_id == client_order_id).order_by(OrderEvent.id)
        with self._read() as s:
            return list(s.scalars(q))

    def orders(self, run: int | None = None) -> list[Order]:
        """Every order, in the order they were journaled (optionally of one run)."""
        return self._orders(None, run)

    def open_orders(self, run: int | None = None) -> list[Order]:
        """Orders not in a terminal state (including unresolved ones: they may be resting)."""
        return self._orders(OPEN_STATES, run)

    def unresolved_intents(self, run: int | None = None) -> list[Order]:
        """Orders journaled but never acknowledged (``intent``, ``sent``) or in state ``unknown``: to be
        resolved by client order id with the exchange, never re-sent blindly."""
        return self._orders(UNRESOLVED_STATES, run)

    def orders_by_state(self, run: int | None = None) -> dict[str, int]:
        """Number of orders in each state (states with none are left out), in state-machine order."""
        q = sa.select(Order.state, sa.func.count()).group_by(Order.state)
        if run is not None:
            q = q.where(Order.run_id == run)
        with self._read() as s:
            counts = {st: n for st, n in s.execute(q)}
        return {st: int(counts[st]) for st in ORDER_STATES if st in counts}

    def fills(
        self, run: int | None = None, *, client_order_id: str | None = None, symbol: str | None = None
    ) -> list[FillRow]:
        """Fills in the order they were stored, optionally of one run, order or symbol."""
        q = sa.select(FillRow).order_by(FillRow.id)
        if run is not None:
            q = q.where(FillRow.run_id == run)
        if client_order_id is not None:
            q = q.where(FillRow.client_order_id == client_order_id)
        if symbol is not None:
            q = q.where(FillRow.symbol == symbol.upper())
        with self._read() as s:
            return list(s.scalars(q))

    def positions(self, run: int | None = None) -> list[Position]:
        """Positions by (run, symbol)."""
        q = sa.select(Position).order_by(Position.run_id, Position.symbol)
        if run is not None:
            q = q.where(Position.run_id == run)
        with self._read() as s:
            return list(s.scalars(q))

    def signals(self, run: int | None = None) -> list[Signal]:
        """Journaled signals and their gate decisions, in time order."""
        q = sa.select(Signal).order_by(Signal.ts_ns, Signal.id)
        if run is not None:
            q = q.where(Signal.run_id == run)
        with self._read() as s:
            return list(s.scalars(q))

    def runs(self) -> list[Run]:
        with self._read() as s:
            return list(s.scalars(sa.select(Run).order_by(Run.id)))

    def summary(self, run: int | None = None) -> dict[str, Any]:
        """What is recorded (see :func:`orderflow.journal.summary.build_summary`)."""
        from orderflow.journal.summary import build_summary

        with self._read() as s:
            out = build_summary(s, run)
        out["url"] = self.url
        return out
