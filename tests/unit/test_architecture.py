"""The code's shape, measured by tools/check_architecture.py (the rules in docs/architecture.md).

Each rule's findings must be a subset of its ``KNOWN`` list: a new cycle, upward import, ``Any`` field in
engine/, over-long parameter list or Binance wire name outside the adapter fails the test. A known
violation that has been fixed must also leave its list, so the lists only shrink; when one is empty the
rule holds without exception.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("check_architecture", ROOT / "tools" / "check_architecture.py")
assert _spec and _spec.loader
CA = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = CA  # dataclasses look their module up
_spec.loader.exec_module(CA)

KNOWN: dict[str, set[str]] = {
    "cycles": set(),
    "layers": set(),
    "any-fields": set(),
    "params": set(),
    # Binance field names outside orderflow.adapters and orderflow.execution.local (the local exchange
    # speaks the wire format); the raw importer's snap.lastUpdateId was the last, now delta.last_update_id
    "wire-names": set(),
}


def _key(finding: str) -> str:
    """A finding without its line number (lines move; the violation is the same)."""
    return re.sub(r":\d+:", ":", finding, count=1)


@pytest.fixture(scope="module")
def found() -> dict[str, set[str]]:
    return {rule: {_key(f) for f in items} for rule, items in CA.check().items()}


@pytest.mark.parametrize("rule", sorted(KNOWN))
def test_no_new_violation(found, rule):
    new = sorted(found[rule] - KNOWN[rule])
    assert not new, f"{rule}: {len(new)} new violation(s):\n" + "\n".join(new)


@pytest.mark.parametrize("rule", sorted(KNOWN))
def test_fixed_violations_leave_the_known_list(found, rule):
    gone = sorted(KNOWN[rule] - found[rule])
    assert not gone, f"{rule}: fixed, remove from KNOWN:\n" + "\n".join(gone)


def test_the_checker_sees_a_long_parameter_list_and_an_upward_import(tmp_path):
    """The rules themselves: a function of 17 parameters and an import from a lower layer to a higher one
    are found (a checker that finds nothing would make the tests above pass vacuously)."""
    import ast

    args = ", ".join(f"a{i}" for i in range(17))
    tree = ast.parse(f"def f({args}):\n    pass\n\nfrom orderflow.engine import paper\n")
    mod = CA.Module("orderflow.core.fake", tmp_path / "fake.py", tree, False)
    mods = CA.load()
    mod.path = CA.SRC / "orderflow" / "core" / "fake.py"
    for node in ast.walk(tree):
        for target in CA._targets(mod, node, mods):
            mod.imports.setdefault(target, node.lineno)
    mods[mod.name] = mod
    assert any("f takes 17 parameters" in f for f in CA.param_counts(mods))
    assert any(
        "orderflow.core.fake (core) imports orderflow.engine.paper" in f for f in CA.upward_imports(mods)
    )


def test_the_checker_sees_a_wire_name_outside_the_adapter(tmp_path):
    """A Binance field name as a string, an attribute or a keyword is found outside the adapter and the
    local exchange, not inside them, and not in a docstring that quotes a raw message."""
    import ast

    code = (
        '"""Quotes {"lastUpdateId": 1} as a raw message."""\n'
        'p = {"recvWindow": 5000}\n'
        "n = snap.lastUpdateId\n"
        "f(timeInForce=1)\n"
    )
    mods = {}
    for name in (
        "orderflow.engine.fake",
        "orderflow.adapters.binance.fake",
        "orderflow.execution.local.fake",
    ):
        path = CA.SRC / Path(*name.split(".")).with_suffix(".py")
        mods[name] = CA.Module(name, path, ast.parse(code), False)
    found = CA.wire_names(mods)
    assert [f.split(": ", 1)[1] for f in found] == [
        "string 'recvWindow' is a Binance wire name",
        "attribute 'lastUpdateId' is a Binance wire name",
        "keyword 'timeInForce' is a Binance wire name",
    ]
    assert all(f.startswith("src/orderflow/engine/fake.py:") for f in found)
