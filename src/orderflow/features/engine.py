"""The streaming feature engine.

The per-event math is in ``kernels`` (numba); ``state.KernelState`` sizes its arrays from a
``FeatureConfig`` (``config``) and this module drives it event by event (``StreamingFeatureEngine``,
for live). ``batch.batch_features`` drives the same kernels over whole arrays. Feature names and
docs: ``registry.default_specs``.

Event order: trades, then gaps, then the book event at equal ``ts_event``; vectors are emitted at book
events. Validity of a vector (``valid`` / ``reason``):

- ``bad_book``: this book is crossed, has a NaN / non-positive size or NaN price at level 1, or a
  negative size at any level. The engine resets (the book cannot be trusted) and re-warms.
- ``gap``: the data layer flagged a gap (``on_gap``); every window is reset and the engine re-warms.
- ``warmup``: less than ``warmup_s`` of event time or fewer than ``zscore_window`` book events since
  the start or the last reset (reported as ``gap`` / ``bad_book`` when that reset was the cause), or,
  with ``require_technical_warm``, a technical value still NaN.
Technical bars are built from every trade and are not reset by gaps. The market context group
(``cfg.context``, ``features/context.py``) is fed by ``on_context`` in ``ts_recv`` order (before the
book event at equal time), is not reset by gaps and never invalidates a vector.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import numpy as np

from orderflow.features import kernels as FK
from orderflow.features.config import FeatureConfig
from orderflow.features.context import ContextStream
from orderflow.features.registry import default_specs
from orderflow.features.spec import FeatureSpec
from orderflow.features.state import KernelState
from orderflow.features.technical import TechnicalStream
from orderflow.kernel_cache import Direct

log = logging.getLogger(__name__)


# the per-event kernels, called without the dispatcher's per-call type resolution (their state is a
# tuple of arrays, which the dispatcher types in Python at every call)
_STEP_BOOK = Direct(FK.step_book)
_STEP_TRADE = Direct(FK.step_trade)


class StreamingFeatureEngine:
    """Per-event features for live trading: O(1) (amortised) work per event in the numba kernels.

    ``on_book`` returns the engine's vector buffer (``values``), overwritten by the next book event:
    copy it to keep it. ``valid`` / ``reason`` describe the last vector."""

    def __init__(self, cfg: FeatureConfig, context_kinds: Iterable[str] | None = None) -> None:
        """``context_kinds``: the context kinds this source delivers (``ContextStream``; default all)."""
        self.cfg = cfg
        self.specs: list[FeatureSpec] = default_specs(cfg)
        self._k = KernelState(cfg)
        self.n_core = self._k.n_core
        self.values = np.full(len(self.specs), np.nan)
        self._core = self.values[: self.n_core]
        self._tech = None
        if cfg.technical is not None:
            self._tech = TechnicalStream(cfg.technical)
        self._ctx = None
        self._n_tech = len(self.specs) - self.n_core
        if cfg.context is not None:
            self._ctx = ContextStream(cfg.context, context_kinds)
            self._n_tech -= self._ctx.values.size
        self.valid = False
        self.reason = "warmup"
        self.status = FK.WARMUP
        self._L = cfg.levels
        self._overflow_logged = 0

    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    def on_trade(self, ts_ns: int, price: float, size: float, side: int) -> None:
        """A trade: aggressor ``side`` +1 buyer, -1 seller, 0 unknown (tick rule)."""
        _STEP_TRADE(self._k.trade_args, ts_ns, price, size, side)
        if self._tech is not None:
            self._tech.on_trade(ts_ns, price, size, side)
        if self._ctx is not None:
            self._ctx.on_trade(ts_ns, price, size, side)

    def on_context(self, kind: str, row: Mapping) -> None:
        """A market context row (kind of ``orderflow.data.context_schema``, a mapping with ts_event,
        ts_recv and the kind's columns), delivered once available (its ts_recv has passed)."""
        if self._ctx is not None:
            self._ctx.on_context(kind, row)

    def on_gap(self, ts_ns: int, reason: str = "gap") -> None:
        """The data layer lost events (``reason`` is logged): reset every window; invalid until warm."""
        log.info("feature engine reset at %d: %s", ts_ns, reason)
        self._k.reset(FK.GAP)
        self.valid = False
        self.reason = "gap"
        self.status = FK.GAP

    def on_book(
        self, ts_ns: int, bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray, ask_sz: np.ndarray
    ) -> np.ndarray:
        """A book event: the top levels after it (arrays of at least ``levels`` values, NaN = absent)."""
        L = self._L
        st = _STEP_BOOK(self._k.book_args, ts_ns, bid_px[:L], bid_sz[:L], ask_px[:L], ask_sz[:L], self._core)
        if self._tech is not None:
            self._tech.advance(ts_ns)
            tv = self._tech.values
            self.values[self.n_core : self.n_core + self._n_tech] = tv
            if st == FK.OK and self.cfg.require_technical_warm and not np.isfinite(tv).all():
                st = FK.WARMUP
        if self._ctx is not None:
            self._ctx.advance(ts_ns)
            self.values[self.n_core + self._n_tech :] = self._ctx.values
        self.status = st
        self.valid = st == FK.OK
        self.reason = FK.REASONS[st]
        if self._k.I[FK.I_OVERFLOW] != self._overflow_logged:
            self._overflow_logged = int(self._k.I[FK.I_OVERFLOW])
            log.warning(
                "feature ring full: %d events dropped from windows (raise *_capacity)", self._overflow_logged
            )
        return self.values

    @property
    def bad_trades(self) -> int:
        """Trades ignored because of a NaN/negative size or a non-positive price."""
        return int(self._k.I[FK.I_BAD_TRADES])
