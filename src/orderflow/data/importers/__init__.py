"""Importers of recorded market data into the :class:`~orderflow.data.store.Store`.

``import_paths(store, paths, fmt)`` dispatches on the format name:

- ``binance-raw``: ``<local_ts> <raw combined-stream JSON>`` lines (hftbacktest, ``orderflow data record``)
- ``tardis``: tardis.dev CSVs (incremental_book_L2, book_snapshot_5/25, trades, quotes)
- ``binance-vision``: Binance Vision kline CSV/zip files, ``SYMBOL-INTERVAL-DATE.csv``
- ``ohlcv``: generic OHLCV CSV or feather files with a header row
- ``funding``: funding-rate histories (freqtrade feather/CSV, Binance's fundingRate JSON, Binance
  Vision's monthly fundingRate CSV/zip), point in time; ``binance-funding`` the same (a name for the
  Binance Vision files)
- ``binance-metrics``: Binance Vision's USD-M daily metrics CSV/zip (open interest, long/short ratios,
  taker buy/sell ratio, 5-minute periods), point in time
- ``fear-greed``: the alternative.me fear & greed index (CSV or its API's JSON), point in time
  (:mod:`orderflow.data.importers.context`)

Venue, symbol and interval are taken from file names and contents where they can be (tardis rows name
the exchange and symbol; Binance Vision and freqtrade names carry symbol and interval; a Binance Vision
``spot``/``um``/``cm`` folder names the venue) and must otherwise be given; a missing one is an
:class:`ImportError_` naming the option. One call is one store transaction: all its kinds and dates are
committed together or not at all. Events already stored (under any file name) are left out, so an import
can be repeated; re-importing a file also replaces the rows it wrote before (each file is written under
its own ``source`` tag). A file that cannot be imported at all raises before anything is written; a bad
line is recorded in :attr:`ImportReport.problems` as ``file:line`` and skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from orderflow.data.importers.base import ImportError_, ImportReport
from orderflow.data.store import Store

FORMATS = (
    "binance-raw",
    "tardis",
    "binance-vision",
    "ohlcv",
    "funding",
    "binance-funding",
    "binance-metrics",
    "fear-greed",
)

__all__ = ["FORMATS", "ImportError_", "ImportReport", "import_paths"]


def import_paths(
    store: Store,
    paths: Sequence[Path],
    fmt: str,
    venue: str | None = None,
    symbol: str | None = None,
    interval: str | None = None,
) -> ImportReport:
    """Import ``paths`` (in time order) of format ``fmt`` into ``store``; see the module docstring."""
    if fmt not in FORMATS:
        raise ImportError_(f"unknown import format {fmt!r}; known: {', '.join(FORMATS)}")
    paths = [Path(p) for p in paths]
    if not paths:
        raise ImportError_("no files to import")
    for p in paths:
        if p.is_dir():
            raise ImportError_(f"{p}: is a directory, not a file")
        if not p.is_file():
            raise ImportError_(f"{p}: no such file")
    with store.transaction():
        return _dispatch(store, paths, fmt, venue, symbol, interval)


def _dispatch(
    store: Store,
    paths: list[Path],
    fmt: str,
    venue: str | None,
    symbol: str | None,
    interval: str | None,
) -> ImportReport:
    if fmt == "binance-raw":
        from orderflow.data.importers.binance_raw import import_binance_raw

        if symbol is not None or interval is not None:
            raise ImportError_("binance-raw files name their symbols; --symbol/--interval do not apply")
        return import_binance_raw(store, paths, venue=venue)
    if fmt == "tardis":
        from orderflow.data.importers.tardis import import_tardis

        if interval is not None:
            raise ImportError_("tardis files hold no bars; --interval does not apply")
        return import_tardis(store, paths, venue=venue, symbol=symbol)
    if fmt in ("funding", "binance-funding", "binance-metrics", "fear-greed"):
        from orderflow.data.importers.context import import_binance_metrics, import_fear_greed, import_funding

        if interval is not None:
            raise ImportError_(f"{fmt} files are not bars; --interval does not apply")
        if fmt in ("funding", "binance-funding"):
            return import_funding(store, paths, venue=venue, symbol=symbol)
        if fmt == "binance-metrics":
            return import_binance_metrics(store, paths, venue=venue, symbol=symbol)
        if venue is not None or symbol is not None:
            raise ImportError_(
                "the fear & greed index is stored as alternative.me/FNG; --venue/--symbol do not apply"
            )
        return import_fear_greed(store, paths)
    from orderflow.data.importers.klines import import_binance_vision, import_ohlcv

    fn = import_binance_vision if fmt == "binance-vision" else import_ohlcv
    return fn(store, paths, venue=venue, symbol=symbol, interval=interval)
