"""A local Binance-compatible exchange (spot and USD-M futures) over a simulated or replayed market,
matching orders with the backtester's simulated exchange. See :mod:`.server` for the protocol served,
:mod:`.testing` for ``running_local_exchange`` and :mod:`.cli` for ``orderflow exchange serve``."""

from orderflow.execution.local.config import LocalExchangeConfig
from orderflow.execution.local.server import LocalExchange
from orderflow.execution.local.testing import RunningExchange, running_local_exchange

__all__ = ["LocalExchange", "LocalExchangeConfig", "RunningExchange", "running_local_exchange"]
