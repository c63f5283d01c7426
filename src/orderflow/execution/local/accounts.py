"""Account state of the local exchange: spot balances (free / locked per asset) and the USD-M futures
account (USDT wallet, one-way positions, realized PnL, commissions), with their REST and user data
stream payloads in Binance's formats.

Amounts in the asset's units (quote currency for USDT), prices in quote currency, times in ms.
Fees (Binance defaults): spot 0.1% maker and taker, the buyer paying in the base asset and the seller in
the quote asset; USD-M 0.02% maker / 0.05% taker in USDT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orderflow.execution.local.streams import fmt


class SpotAccount:
    """Spot balances: ``free`` and ``locked`` per asset."""

    def __init__(self, balances: dict[str, float]) -> None:
        self.free: dict[str, float] = {a: float(v) for a, v in balances.items()}
        self.locked: dict[str, float] = dict.fromkeys(balances, 0.0)
        self.update_ms = 0

    def ensure(self, asset: str) -> None:
        self.free.setdefault(asset, 0.0)
        self.locked.setdefault(asset, 0.0)

    def lock(self, asset: str, amount: float) -> None:
        self.ensure(asset)
        self.free[asset] -= amount
        self.locked[asset] += amount

    def unlock(self, asset: str, amount: float) -> None:
        self.ensure(asset)
        self.locked[asset] = max(0.0, self.locked[asset] - amount)
        self.free[asset] += amount

    def position_event(self, event_ms: int, assets: list[str]) -> dict[str, Any]:
        """``outboundAccountPosition`` with the balances of ``assets``."""
        return {
            "e": "outboundAccountPosition",
            "E": event_ms,
            "u": event_ms,
            "B": [{"a": a, "f": fmt(self.free[a], 8), "l": fmt(self.locked[a], 8)} for a in assets],
        }

    def account_json(self, maker: float, taker: float) -> dict[str, Any]:
        """GET /api/v3/account."""
        return {
            "makerCommission": round(maker * 10_000),
            "takerCommission": round(taker * 10_000),
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": fmt(maker, 8),
                "taker": fmt(taker, 8),
                "buyer": fmt(0, 8),
                "seller": fmt(0, 8),
            },
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self.update_ms,
            "accountType": "SPOT",
            "balances": [
                {"asset": a, "free": fmt(self.free[a], 8), "locked": fmt(self.locked[a], 8)}
                for a in sorted(self.free)
            ],
            "permissions": ["SPOT"],
            "uid": 1,
        }


@dataclass
class Position:
    amount: float = 0.0  # signed base units
    entry: float = 0.0  # average entry price
    realized: float = 0.0  # cumulative realized PnL (USDT)
    leverage: int = 20
    update_ms: int = 0


class FuturesAccount:
    """USD-M account in one-way mode, cross margin, one margin asset (USDT)."""

    def __init__(self, wallet: float, asset: str = "USDT", leverage: int = 20) -> None:
        self.asset = asset
        self.wallet = float(wallet)
        self.default_leverage = leverage
        self.positions: dict[str, Position] = {}
        self.open_order_margin: dict[int, float] = {}  # order id -> initial margin of its remainder
        self.update_ms = 0

    def position(self, symbol: str) -> Position:
        if symbol not in self.positions:
            self.positions[symbol] = Position(leverage=self.default_leverage)
        return self.positions[symbol]

    def fill(self, symbol: str, sign: int, qty: float, px: float, fee: float, ms: int) -> float:
        """Apply a fill; returns the realized PnL of it (before the fee)."""
        pos = self.position(symbol)
        realized = 0.0
        amt = pos.amount
        if amt == 0 or (amt > 0) == (sign > 0):
            new = abs(amt) + qty
            pos.entry = (abs(amt) * pos.entry + qty * px) / new
            pos.amount = amt + sign * qty
        else:
            closed = min(qty, abs(amt))
            realized = closed * (px - pos.entry) * (1 if amt > 0 else -1)
            left = qty - closed
            pos.amount = amt + sign * qty
            if abs(pos.amount) < 1e-12:
                pos.amount, pos.entry = 0.0, 0.0
            elif left > 0:
                pos.entry = px
        pos.realized += realized
        self.wallet += realized - fee
        pos.update_ms = self.update_ms = ms
        return realized

    def unrealized(self, marks: dict[str, float]) -> float:
        return sum(p.amount * (marks.get(s, p.entry) - p.entry) for s, p in self.positions.items())

    def position_margin(self, marks: dict[str, float]) -> float:
        return sum(abs(p.amount) * marks.get(s, p.entry) / p.leverage for s, p in self.positions.items())

    def available(self, marks: dict[str, float]) -> float:
        """Wallet + unrealized PnL - position and open-order initial margin (USDT)."""
        return (
            self.wallet
            + self.unrealized(marks)
            - self.position_margin(marks)
            - sum(self.open_order_margin.values())
        )

    # ------------------------------------------------------------------------------------ JSON
    def account_update(self, event_ms: int, symbol: str, marks: dict[str, float]) -> dict[str, Any]:
        """``ACCOUNT_UPDATE`` (reason ORDER) with the wallet and the position of ``symbol``."""
        p = self.position(symbol)
        up = p.amount * (marks.get(symbol, p.entry) - p.entry)
        return {
            "e": "ACCOUNT_UPDATE",
            "E": event_ms,
            "T": event_ms,
            "a": {
                "m": "ORDER",
                "B": [{"a": self.asset, "wb": fmt(self.wallet, 8), "cw": fmt(self.wallet, 8), "bc": "0"}],
                "P": [
                    {
                        "s": symbol,
                        "pa": fmt(p.amount, 8),
                        "ep": fmt(p.entry, 8),
                        "bep": fmt(p.entry, 8),
                        "cr": fmt(p.realized, 8),
                        "up": fmt(up, 8),
                        "mt": "cross",
                        "iw": "0",
                        "ps": "BOTH",
                    }
                ],
            },
        }

    def funding_update(self, event_ms: int, change: float) -> dict[str, Any]:
        """``ACCOUNT_UPDATE`` with reason ``FUNDING_FEE``: in cross margin Binance sends the balance only
        (``bc`` the balance change), no position."""
        bal = {"a": self.asset, "wb": fmt(self.wallet, 8), "cw": fmt(self.wallet, 8), "bc": fmt(change, 8)}
        return {"e": "ACCOUNT_UPDATE", "E": event_ms, "T": event_ms, "a": {"m": "FUNDING_FEE", "B": [bal]}}

    def positions_json(self, symbols: list[str], marks: dict[str, float]) -> list[dict[str, Any]]:
        """GET /fapi/v2|v3/positionRisk."""
        out = []
        for s in symbols:
            p = self.position(s)
            mark = marks.get(s, p.entry)
            out.append(
                {
                    "symbol": s,
                    "positionAmt": fmt(p.amount, 8),
                    "entryPrice": fmt(p.entry, 8),
                    "breakEvenPrice": fmt(p.entry, 8),
                    "markPrice": fmt(mark, 8),
                    "unRealizedProfit": fmt(p.amount * (mark - p.entry), 8),
                    "liquidationPrice": "0",
                    "leverage": str(p.leverage),
                    "maxNotionalValue": "1000000",
                    "marginType": "cross",
                    "isolatedMargin": fmt(0, 8),
                    "isAutoAddMargin": "false",
                    "positionSide": "BOTH",
                    "notional": fmt(p.amount * mark, 8),
                    "isolatedWallet": "0",
                    "updateTime": p.update_ms,
                }
            )
        return out

    def balance_json(self, marks: dict[str, float]) -> list[dict[str, Any]]:
        """GET /fapi/v2|v3/balance."""
        avail = self.available(marks)
        return [
            {
                "accountAlias": "local",
                "asset": self.asset,
                "balance": fmt(self.wallet, 8),
                "crossWalletBalance": fmt(self.wallet, 8),
                "crossUnPnl": fmt(self.unrealized(marks), 8),
                "availableBalance": fmt(avail, 8),
                "maxWithdrawAmount": fmt(max(0.0, avail), 8),
                "marginAvailable": True,
                "updateTime": self.update_ms,
            }
        ]

    def account_json(self, symbols: list[str], marks: dict[str, float]) -> dict[str, Any]:
        """GET /fapi/v2|v3/account (single-asset mode)."""
        up = self.unrealized(marks)
        pim = self.position_margin(marks)
        oim = sum(self.open_order_margin.values())
        avail = self.available(marks)
        f = lambda x: fmt(x, 8)  # noqa: E731
        asset = {
            "asset": self.asset,
            "walletBalance": f(self.wallet),
            "unrealizedProfit": f(up),
            "marginBalance": f(self.wallet + up),
            "maintMargin": f(0),
            "initialMargin": f(pim + oim),
            "positionInitialMargin": f(pim),
            "openOrderInitialMargin": f(oim),
            "crossWalletBalance": f(self.wallet),
            "crossUnPnl": f(up),
            "availableBalance": f(avail),
            "maxWithdrawAmount": f(max(0.0, avail)),
            "marginAvailable": True,
            "updateTime": self.update_ms,
        }
        positions = []
        for s in symbols:
            p = self.position(s)
            mark = marks.get(s, p.entry)
            positions.append(
                {
                    "symbol": s,
                    "positionSide": "BOTH",
                    "positionAmt": f(p.amount),
                    "unrealizedProfit": f(p.amount * (mark - p.entry)),
                    "isolatedMargin": f(0),
                    "notional": f(p.amount * mark),
                    "isolatedWallet": f(0),
                    "initialMargin": f(abs(p.amount) * mark / p.leverage),
                    "maintMargin": f(0),
                    "entryPrice": f(p.entry),
                    "leverage": str(p.leverage),
                    "isolated": False,
                    "updateTime": p.update_ms,
                }
            )
        return {
            "feeTier": 0,
            "canTrade": True,
            "canDeposit": True,
            "canWithdraw": True,
            "updateTime": self.update_ms,
            "multiAssetsMargin": False,
            "totalInitialMargin": f(pim + oim),
            "totalMaintMargin": f(0),
            "totalWalletBalance": f(self.wallet),
            "totalUnrealizedProfit": f(up),
            "totalMarginBalance": f(self.wallet + up),
            "totalPositionInitialMargin": f(pim),
            "totalOpenOrderInitialMargin": f(oim),
            "totalCrossWalletBalance": f(self.wallet),
            "totalCrossUnPnl": f(up),
            "availableBalance": f(avail),
            "maxWithdrawAmount": f(max(0.0, avail)),
            "assets": [asset],
            "positions": positions,
        }
