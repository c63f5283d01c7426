"""Measure the code's shape against the rules in docs/architecture.md.

    python tools/check_architecture.py [--json]

Checks, over every module of ``src/orderflow`` (imports inside functions count, ``TYPE_CHECKING``
imports do not):

- **cycles**: no import cycle between modules;
- **layers**: no import from a lower layer to a higher one (``LAYERS`` below is the order the
  architecture document writes down);
- **any-fields**: no class attribute annotated ``Any`` in ``orderflow.engine``;
- **params**: no function takes more than ``MAX_PARAMS`` parameters;
- **wire-names**: no Binance wire name (``WIRE_NAMES``: request and response fields such as
  ``recvWindow`` or ``lastUpdateId``, headers, event and filter type names) outside the modules of
  ``WIRE_MODULES`` (the adapter, and the local exchange, which speaks Binance's wire format), as a string
  literal (docstrings aside), an attribute (``snap.lastUpdateId``) or a keyword argument.

Prints one line per violation and a summary; exit status 1 when any rule is broken.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "orderflow"
MAX_PARAMS = 16

# Lowest first. A module may import from its own layer and from any layer below it. The first pattern
# that matches a module's dotted name decides its layer, so specific patterns come before general ones.
LAYERS: list[tuple[str, list[str]]] = [
    (
        "core",
        [
            "orderflow",
            "orderflow.core",
            "orderflow.core.*",
            "orderflow.logutil",
            "orderflow.secrets",
            "orderflow.kernel_cache",
            # the telemetry schema and its transports know only msgspec (engines publish, services read)
            "orderflow.telemetry",
            "orderflow.telemetry.*",
            # the table of the context kinds (numpy and pandas only): the adapter builds their frames
            "orderflow.data.context_schema",
        ],
    ),
    # The Binance adapter sits right above core: it decodes wire payloads into core's domain types and
    # needs nothing else, while the data layer (recorder, backfill, raw importer), execution (order
    # state, the local exchange) and the app config all use it. Its replay server is the exception: it
    # reads recordings through the data importers' helpers, so it has a layer of its own above data.
    (
        "adapter",
        [
            "orderflow.adapters",
            "orderflow.adapters.binance",
            "orderflow.adapters.binance.common",
            "orderflow.adapters.binance.common.*",
            "orderflow.adapters.binance.http",
            "orderflow.adapters.binance.http.*",
            "orderflow.adapters.binance.trading",
            "orderflow.adapters.binance.trading.*",
            "orderflow.adapters.binance.decode",
            "orderflow.adapters.binance.sync",
            "orderflow.adapters.binance.market",
            "orderflow.adapters.binance.feed",
            "orderflow.adapters.binance.userstream",
            "orderflow.adapters.binance.context",
        ],
    ),
    ("data", ["orderflow.data", "orderflow.data.*"]),
    ("adapter replay", ["orderflow.adapters.binance.replay", "orderflow.adapters.binance.replay.*"]),
    ("features", ["orderflow.features", "orderflow.features.*"]),
    ("models", ["orderflow.models", "orderflow.models.*", "orderflow.research", "orderflow.research.*"]),
    ("strategy", ["orderflow.strategy", "orderflow.strategy.*", "orderflow.risk", "orderflow.risk.*"]),
    ("execution", ["orderflow.execution", "orderflow.execution.*"]),
    ("journal", ["orderflow.journal", "orderflow.journal.*"]),
    # the per-event core shared by the backtest loop and the live drivers, and its result types
    ("trading core", ["orderflow.engine.core", "orderflow.engine.results", "orderflow.engine.funding"]),
    ("backtest", ["orderflow.backtest", "orderflow.backtest.*"]),
    ("engine", ["orderflow.engine", "orderflow.engine.*"]),
    # the alerter's section: models only, so that the app config can hold it
    ("alerts config", ["orderflow.alerts.config"]),
    # the aggregate Config of every section; each section's config module sits in its package's layer
    ("app", ["orderflow.config"]),
    # the parameter search: it validates its space against the app's Config and drives the backtest
    ("optimize", ["orderflow.optimize", "orderflow.optimize.*"]),
    # period reports read the journal only
    ("reports", ["orderflow.reports", "orderflow.reports.*"]),
    # services in their own processes that read what the engines publish (telemetry, journal)
    ("services", ["orderflow.dashboard", "orderflow.dashboard.*", "orderflow.alerts", "orderflow.alerts.*"]),
]
# Names that only Binance's wire format uses. Generic words that other formats share ("symbol",
# "timestamp", "price") and the one-letter stream fields ("s", "E", "U") are left out: a literal of
# those says nothing about who knows the venue.
WIRE_NAMES = frozenset(
    # request parameters
    "recvWindow signature newClientOrderId origClientOrderId clientOrderId timeInForce newOrderRespType "
    "stopPrice reduceOnly closePosition positionSide workingType priceProtect quoteOrderQty "
    "selfTradePreventionMode goodTillDate orderId orderListId listenKey "
    # response fields
    "lastUpdateId executedQty origQty cummulativeQuoteQty cumQuote cumQty avgPrice updateTime "
    "transactTime workingTime serverTime isBuyerMaker isBestMatch positionAmt entryPrice "
    "unRealizedProfit marginAsset walletBalance availableBalance crossWalletBalance filterType tickSize "
    "stepSize minQty maxQty minNotional rateLimits rateLimitType intervalNum "
    # headers
    "X-MBX-APIKEY X-MBX-USED-WEIGHT-1M X-MBX-ORDER-COUNT-10S X-MBX-ORDER-COUNT-1D X-MBX-ORDER-COUNT-1M "
    # stream event types
    "depthUpdate aggTrade bookTicker executionReport outboundAccountPosition balanceUpdate "
    "listenKeyExpired ORDER_TRADE_UPDATE ACCOUNT_UPDATE TRADE_LITE "
    # filter types and Binance-only order types / time in force
    "PRICE_FILTER LOT_SIZE MARKET_LOT_SIZE MIN_NOTIONAL PERCENT_PRICE PERCENT_PRICE_BY_SIDE "
    "MAX_NUM_ORDERS MAX_NUM_ALGO_ORDERS LIMIT_MAKER STOP_LOSS_LIMIT GTX".split()
)
# Modules allowed to know them: the adapter, and the local exchange (it serves Binance's wire format).
WIRE_MODULES = [
    "orderflow.adapters",
    "orderflow.adapters.*",
    "orderflow.execution.local",
    "orderflow.execution.local.*",
]

# The command line sits above everything: these modules are matched before the layers above.
TOP = ("cli", ["orderflow.cli", "orderflow.cli.*"])


def layer_of(module: str) -> tuple[int, str]:
    if any(fnmatch.fnmatchcase(module, p) for p in TOP[1]):
        return len(LAYERS), TOP[0]
    for i, (name, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(module, p) for p in patterns):
            return i, name
    raise SystemExit(f"check_architecture: module {module} is in no layer; add it to LAYERS")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    is_package: bool
    imports: dict[str, int] = field(default_factory=dict)  # imported module -> first line


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                for n in ast.walk(sub):
                    if hasattr(n, "lineno"):
                        lines.add(n.lineno)
    return lines


def load() -> dict[str, Module]:
    mods: dict[str, Module] = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        name = module_name(path)
        mods[name] = Module(name, path, ast.parse(path.read_text(), str(path)), path.name == "__init__.py")
    for m in mods.values():
        skip = _type_checking_lines(m.tree)
        for node in ast.walk(m.tree):
            if getattr(node, "lineno", None) in skip:
                continue
            for target in _targets(m, node, mods):
                m.imports.setdefault(target, node.lineno)  # type: ignore[attr-defined]
    return mods


def _targets(m: Module, node: ast.AST, mods: dict[str, Module]) -> Iterator[str]:
    """Modules of this package that ``node`` imports (a name imported from a package that is itself a
    module, ``from orderflow.data import store``, counts as that module)."""
    if isinstance(node, ast.Import):
        for a in node.names:
            if a.name.split(".")[0] == PACKAGE:
                yield _existing(a.name, mods)
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = m.name.split(".") if m.is_package else m.name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if target.split(".")[0] != PACKAGE:
            return
        for a in node.names:
            sub = f"{target}.{a.name}"
            yield sub if sub in mods else _existing(target, mods)


def _existing(name: str, mods: dict[str, Module]) -> str:
    while name not in mods and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def cycles(mods: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def edges(v: str) -> list[str]:
        # a module importing its own package's __init__ (or the root package) is not a cycle through it
        return [w for w in mods[v].imports if w != v and not v.startswith(w + ".")]

    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on.add(v)
        for w in edges(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(mods):
        if v not in index:
            visit(v)
    return out


def upward_imports(mods: dict[str, Module]) -> list[str]:
    found = []
    for m in mods.values():
        li, ln = layer_of(m.name)
        for target, line in sorted(m.imports.items()):
            if target == PACKAGE or m.name.startswith(target + "."):
                continue
            ti, tn = layer_of(target)
            if ti > li:
                rel = m.path.relative_to(SRC.parent)
                found.append(f"{rel}:{line}: {m.name} ({ln}) imports {target} ({tn}), a higher layer")
    return found


def any_fields(mods: dict[str, Module]) -> list[str]:
    found = []
    for m in mods.values():
        if not m.name.startswith(f"{PACKAGE}.engine"):
            continue
        for cls in [n for n in ast.walk(m.tree) if isinstance(n, ast.ClassDef)]:
            for node in ast.walk(cls):
                if isinstance(node, ast.AnnAssign) and _is_any(node.annotation):
                    rel = m.path.relative_to(SRC.parent)
                    found.append(f"{rel}:{node.lineno}: {cls.name}.{ast.unparse(node.target)}: Any")
    return found


def _is_any(ann: ast.expr) -> bool:
    return any(
        (isinstance(n, ast.Name) and n.id == "Any") or (isinstance(n, ast.Attribute) and n.attr == "Any")
        for n in ast.walk(ann)
    )


def param_counts(mods: dict[str, Module], limit: int = MAX_PARAMS) -> list[str]:
    found = []
    for m in mods.values():
        for fn in [n for n in ast.walk(m.tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]:
            a = fn.args
            names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
            n = len([x for x in names if x not in ("self", "cls")]) + bool(a.vararg) + bool(a.kwarg)
            if n > limit:
                rel = m.path.relative_to(SRC.parent)
                found.append(f"{rel}:{fn.lineno}: {fn.name} takes {n} parameters (at most {limit})")
    return found


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring constants of a module, its classes and functions."""
    out: set[int] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and n.body:
            first = n.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def wire_names(mods: dict[str, Module], names: frozenset[str] = WIRE_NAMES) -> list[str]:
    """Binance wire names used outside ``WIRE_MODULES``, one finding per use."""
    found = []
    for m in mods.values():
        if any(fnmatch.fnmatchcase(m.name, p) for p in WIRE_MODULES):
            continue
        docs = _docstrings(m.tree)
        rel = m.path.relative_to(SRC.parent)
        hits: list[tuple[int, str, str]] = []
        for node in ast.walk(m.tree):
            what, name = "", ""
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                what, name = "string", node.value
            elif isinstance(node, ast.Attribute):
                what, name = "attribute", node.attr
            elif isinstance(node, ast.keyword) and node.arg:
                what, name = "keyword", node.arg
            if name in names:
                hits.append((getattr(node, "lineno", 0), what, name))
        found += [
            f"{rel}:{line}: {what} {name!r} is a Binance wire name" for line, what, name in sorted(hits)
        ]
    return found


def check() -> dict[str, list[str]]:
    mods = load()
    return {
        "cycles": [" -> ".join(c) for c in cycles(mods)],
        "layers": upward_imports(mods),
        "any-fields": any_fields(mods),
        "params": param_counts(mods),
        "wire-names": wire_names(mods),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the findings as JSON")
    ap.add_argument(
        "--only", choices=("cycles", "layers", "any-fields", "params", "wire-names"), help="one rule only"
    )
    args = ap.parse_args(argv)
    found = check()
    if args.only:
        found = {args.only: found[args.only]}
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        for rule, items in found.items():
            for item in items:
                print(f"[{rule}] {item}")
        print(", ".join(f"{rule}: {len(items)}" for rule, items in found.items()))
    return 1 if any(found.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
