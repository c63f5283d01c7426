"""Every command and subcommand of ``orderflow`` swept with bad values for each of its arguments.

The commands are found by walking the argparse tree of :func:`orderflow.cli.build_parser`, so a
command or option added later is swept too; one without a case below fails
(``test_bad_input[<command> <option>: no case]``) until it gets one. Each case asserts: a non-zero exit,
no traceback, the argument (or the bad value) named in the output, and nothing written to disk.

Cases run in-process through ``main([...])`` (parse errors are cheap); a few run the real CLI in a
subprocess to check what a user's shell sees.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderflow.cli import build_parser, main

# Placeholders: {file} an existing regular (empty) file, {dir} an existing directory, {missing} a path
# that does not exist, {busy} a port with a listener on 127.0.0.1, {empty} an empty .gz recording.
NUMBER_POS = ["nan", "inf", "-1", "0", "x"]
INT_POS = ["0", "-1", "1.5", "x"]
INT_NONNEG = ["-1", "1.5", "x"]
TIME = ["notadate", "2024-13-01"]
SYMBOL = ["BTC/USDT", "bad symbol", ""]
BAD: dict[str, list[str | tuple[str, str]]] = {
    "--hours": [*NUMBER_POS, "1e9"],
    "--sim-hours": ["nan", "0", "25"],
    "--minutes": NUMBER_POS,
    "--speed": NUMBER_POS,
    "data replay-server --speed": ["nan", "inf", "-1"],  # 0 = as fast as possible
    "--flush-s": NUMBER_POS,
    "--silent-s": NUMBER_POS,
    "--seed": INT_NONNEG,
    "--max-messages": INT_POS,
    "--close-after": INT_POS,
    "--silent-after": INT_POS,
    "--reject-depth": INT_NONNEG,
    "--retry-after-s": INT_NONNEG,
    "--n-keep": INT_POS,
    "--folds": INT_POS,
    "--levels": ["0", "21", "x"],
    "--run": INT_POS,
    "--port": ["-1", "65536", "x", ("{busy}", "port {busy} on 127.0.0.1 is in use")],
    "--host": ["", "nohost.invalid"],
    "--store": ["{file}", "{file}/sub"],
    "exchange serve --store": ["{file}", "{missing}"],
    "exchange serve --context-store": ["{file}", "{missing}"],
    "--config": ["{file}", "{missing}"],
    "--registry": ["{file}", "{file}/sub"],
    "--report": ["{file}"],
    "--out": ["{file}", "{file}/sub"],
    "features build --out": ["{dir}", "{dir}/x.csv", "{file}/x.parquet"],
    "features select --out": ["{dir}"],
    "--db": ["{dir}"],
    "journal --db": ["{dir}", "mysql://u@127.0.0.1:1/x"],
    "--file": ["{dir}", "{file}/sub"],
    "--start": TIME,
    "--end": TIME,
    "--fit-integrated-until": TIME,
    "--symbol": SYMBOL,
    "--kline-symbol": SYMBOL,
    "--symbols": ["BTC/USDT", ","],
    "--venue": ["foo bar", "a/b"],
    "--interval": ["1x", "0m"],
    "--klines": ["1x", ","],
    "--drop-diff": ["BTCUSDT", "BTCUSDT:x", "BTCUSDT:0"],
    "--kline-file": ["{missing}", "{dir}"],
    "--rest-url": ["notaurl", "ftp://x"],
    "--fear-greed-url": ["notaurl", "ftp://x"],
    "--kinds": ["nope", "open_interest_7m", "funding,bogus"],
    "--period": ["1x", "5", ""],
    "--ws-url": ["notaurl", "http://x"],
    "--members": [";", ""],
    "--intervals": ["1,x", "-1", "nan", ""],
    "--keys-prefix": ["BAD-PREFIX", ""],
    "--model": ["{file}", "{missing}", "-1"],
    "--format": ["bogus"],
    "--api-key": [""],
    "--api-secret": [""],
    "--ed25519-public-key": ["{missing}", "{dir}", "{file}"],  # {file} is empty: not a PEM key
    "--source": ["{dir}", "not a source", "{missing}"],
    "version": ["0", "-1", "1.5", "a b"],
    "paths": ["{missing}", "{dir}"],
    "data replay-server paths": ["{missing}", "{dir}", ("{empty}", "no recorded events in empty.gz")],
    "source": ["{dir}", "{missing}", "nota/sym bol"],
    "--space": ["{missing}", "{dir}"],
    "--trials": INT_POS,
    "--study": [""],
    "--storage": [""],
    "--holdout-hours": ["nan", "-1", "x"],
    "--cache": ["{file}", "{file}/sub"],
    "--export": ["{file}", "{file}/sub"],
    "--ray-cpus": INT_POS,
    # no cluster there: refused while parsing (a TCP look), before the data is prepared
    "--ray-address": ["", "127.0.0.1", "127.0.0.1:x", "127.0.0.1:70000", "127.0.0.1:1", "nohost.invalid:1"],
    "--telemetry": ["kafka://x", "{file}", "redis://", "file://{file}/sub"],
    "--metrics-port": ["-1", "65536", "x"],
    "--reports": ["{file}", "{file}/sub"],
    "--kill-file": ["{dir}", "{file}/sub"],
    "--password-file": ["{dir}", "{file}/sub"],
    "report --date": TIME,
}
# values for the other required arguments of a command, so that only the one under test is bad
GOOD = {
    "paths": "{file}",
    "data replay-server paths": "{file}",
    "source": "sim/BTCUSDT",
    "--format": "binance-raw",
    "--symbols": "btcusdt",
    "--minutes": "1",
    "--symbol": "BTCUSDT",
    "--start": "2024-01-01",
    "--out": "{ws}/out.parquet",
    "version": "1",
    "mode": "halt",
    "--space": "{file}",
    "--study": "s",
    "--storage": "sqlite:///{ws}/optuna.db",
}


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _leaves(sub, (*path, name))
            return
    yield path


def _parser_of(path: tuple[str, ...]) -> argparse.ArgumentParser:
    p = build_parser()
    for name in path:
        [sub] = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        p = sub.choices[name]
    return p


def _name(action: argparse.Action) -> str:
    return max(action.option_strings, key=len) if action.option_strings else action.dest


def _lookup(table: dict, cmd: str, name: str):
    return table.get(f"{cmd} {name}", table.get(name))


def _cases() -> Iterator:
    for path in _leaves(build_parser()):
        cmd = " ".join(path)
        for action in _parser_of(path)._actions:
            if action.nargs == 0 or isinstance(action, argparse._HelpAction):
                continue  # flags take no value
            name = _name(action)
            bad = list(_lookup(BAD, cmd, name) or [])
            if action.choices is not None:
                bad.append("bogus")
            if not bad:
                yield pytest.param(path, name, None, None, id=f"{cmd} {name}: no case")
            for b in bad:
                value, expect = b if isinstance(b, tuple) else (b, None)
                yield pytest.param(path, name, value, expect, id=f"{cmd} {name} {value!r}")


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Iterator[Path]:
    """A working directory with the placeholder files; every default location points inside it.
    Shared by the cases (each one checks that it wrote nothing into it)."""
    tmp_path = tmp_path_factory.mktemp("ws")
    (tmp_path / "a_file").write_text("")
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "empty.gz").write_bytes(b"")
    home = tmp_path / "home"
    mp = pytest.MonkeyPatch()
    for var, value in {
        "HOME": home,
        "XDG_DATA_HOME": home / "data",
        "ORDERFLOW_STORE": tmp_path / "store",
        "ORDERFLOW_REGISTRY": tmp_path / "registry",
        "ORDERFLOW_DB": tmp_path / "journal.db",
        "ORDERFLOW_KILL_FILE": tmp_path / "kill-switch",
    }.items():
        mp.setenv(var, str(value))
    mp.chdir(tmp_path)
    yield tmp_path
    mp.undo()


def _fill(text: str, ws: Path, port: int) -> str:
    return text.format(
        file=ws / "a_file", dir=ws / "a_dir", missing=ws / "missing", empty=ws / "empty.gz", busy=port, ws=ws
    )


def _argv(path: tuple[str, ...], name: str, value: str, ws: Path, port: int) -> list[str]:
    cmd = " ".join(path)
    argv = list(path)
    for action in _parser_of(path)._actions:
        other = _name(action)
        if other == name or not (action.required or not action.option_strings):
            continue
        good = _lookup(GOOD, cmd, other)
        assert good is not None, f"no good value for the required {other} of `orderflow {cmd}`"
        argv += [*action.option_strings[:1], _fill(good, ws, port)]
    flag = [name] if name.startswith("-") else []
    argv += [*flag, _fill(value, ws, port)]
    if name == "--host":
        argv += ["--port", "9"]  # the host is resolved before anything runs
    return argv


def _tree(ws: Path) -> set[Path]:
    return set(ws.rglob("*"))


@pytest.mark.slow
@pytest.mark.parametrize(("path", "name", "value", "expect"), list(_cases()))
def test_bad_input(path, name, value, expect, workspace, busy_port, capsys):
    if value is None:
        pytest.fail(f"`orderflow {' '.join(path)}` {name} has no bad-input case: add one to BAD")
    argv = _argv(path, name, value, workspace, busy_port)
    before = _tree(workspace)
    rc = main(argv)  # an uncaught exception (a traceback for the user) fails the test here
    out = capsys.readouterr()
    text = out.out + out.err
    assert rc != 0, f"{argv} exited 0:\n{text}"
    assert rc == 2, f"{argv} exited {rc}, not 2 (bad input):\n{text}"
    assert "Traceback" not in text
    shown = _fill(value, workspace, busy_port)
    wanted = _fill(expect, workspace, busy_port) if expect else name
    named = wanted in text or (shown and repr(shown) in text) or (len(shown) >= 4 and shown in text)
    assert named, f"{argv}: neither {wanted} nor {shown!r} named:\n{text}"
    assert len(out.err.strip().splitlines()) == 1, f"{argv}: want one line, got:\n{out.err}"
    assert _tree(workspace) == before, f"{argv} wrote {sorted(_tree(workspace) - before)} before refusing"


# -- the findings of issue 12, with their exact messages -----------------------------------------------------
FOUND = [
    (["run", "--hours", "nan"], "argument --hours: must be a finite number > 0 and <= 744, got 'nan'"),
    (["run", "--hours", "-1"], "argument --hours: must be a finite number > 0 and <= 744, got '-1'"),
    (["run", "--hours", "0"], "argument --hours: must be a finite number > 0 and <= 744, got '0'"),
    (
        ["data", "simulate", "--hours", "inf"],
        "argument --hours: must be a finite number > 0 and <= 744, got 'inf'",
    ),
    (["data", "simulate", "--start", "notadate"], "argument --start: must be an ISO date"),
    (
        ["data", "simulate", "--symbol", "BTC/USDT"],
        "argument --symbol: must be a symbol of letters and digits such as BTCUSDT (Binance writes BTCUSDT), "
        "got 'BTC/USDT'",
    ),
    (["data", "import", "{file}", "--format", "binance-raw", "--venue", "foo bar"], "argument --venue:"),
    (["data", "ls", "--store", "{file}"], "argument --store: must be a directory, not a file, got '{file}'"),
    (
        ["data", "import", "{dir}", "--format", "binance-raw"],
        "argument paths: must be a file, not a directory",
    ),
    (
        ["data", "facts", "{dir}"],
        "argument source: must be a stored VENUE/SYMBOL or a recording file, not a dir",
    ),
    (["backtest", "sim/BTCUSDT", "--report", "{file}"], "argument --report: must be a directory, not a file"),
    (["exchange", "serve", "--port", "{busy}"], "orderflow: port {busy} on 127.0.0.1 is in use"),
    (
        ["data", "replay-server", "{file}", "--port", "{busy}"],
        "orderflow: port {busy} on 127.0.0.1 is in use",
    ),
    (["data", "replay-server", "{empty}", "--port", "0"], "orderflow: no recorded events in empty.gz"),
    (["kill", "halt", "--file", "{dir}"], "argument --file: must be a file, not a directory, got '{dir}'"),
    (["paper", "--minutes", "-1"], "argument --minutes: must be a finite number > 0, got '-1'"),
    (["paper", "--minutes", "nan"], "argument --minutes: must be a finite number > 0, got 'nan'"),
    (["paper", "--speed", "0"], "argument --speed: must be a finite number > 0, got '0'"),
]


@pytest.mark.parametrize(("argv", "message"), FOUND, ids=[" ".join(a) for a, _ in FOUND])
def test_found_on_main(argv, message, workspace, busy_port, capsys):
    argv = [_fill(a, workspace, busy_port) for a in argv]
    before = _tree(workspace)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert _fill(message, workspace, busy_port) in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("orderflow")  # one line
    assert _tree(workspace) == before  # no store, no instruments.json, no kill-switch.tmp


def test_kill_switch_from_the_environment_names_a_directory(workspace, monkeypatch, capsys):
    monkeypatch.setenv("ORDERFLOW_KILL_FILE", str(workspace / "a_dir"))
    assert main(["kill", "halt"]) == 2
    assert "kill-switch file" in capsys.readouterr().err and not (workspace / "a_dir.tmp").exists()


def test_store_from_the_environment_names_a_file(workspace, monkeypatch, capsys):
    monkeypatch.setenv("ORDERFLOW_STORE", str(workspace / "a_file"))
    assert main(["data", "simulate", "--hours", "0.01"]) == 2
    assert f"store {workspace / 'a_file'} is a file, not a directory" in capsys.readouterr().err


# -- the real command in a subprocess: what a user's shell sees (slow to start: a few cases) -----------
REAL = [
    (["run", "--hours", "nan"], "orderflow run: error: argument --hours: must be a finite number"),
    (["paper", "--minutes", "nan"], "orderflow paper: error: argument --minutes: must be a finite number"),
    (["data", "simulate", "--symbol", "BTC/USDT"], "argument --symbol: must be a symbol"),
    (["exchange", "serve", "--port", "{busy}"], "orderflow: port {busy} on 127.0.0.1 is in use"),
    (["data", "replay-server", "{empty}", "--port", "0"], "orderflow: no recorded events in empty.gz"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("argv", "message"), REAL, ids=[" ".join(a) for a, _ in REAL])
def test_the_real_command_refuses_in_one_line(argv, message, workspace, busy_port):
    argv = [_fill(a, workspace, busy_port) for a in argv]
    before = _tree(workspace)
    r = subprocess.run(
        [sys.executable, "-m", "orderflow.cli", *argv], capture_output=True, text=True, timeout=180
    )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("orderflow"), r.stderr  # one line, no usage block
    assert _fill(message, workspace, busy_port) in lines[0]
    assert _tree(workspace) == before


# -- a port taken between the early look and the real bind is still named (the look is only a courtesy) ------
@pytest.fixture()
def no_early_look(monkeypatch):
    import orderflow.cli.types

    monkeypatch.setattr(orderflow.cli.types, "port_in_use", lambda host, port: None)


def test_exchange_serve_names_a_busy_port_at_the_real_bind(no_early_look, busy_port, capsys):
    argv = ["exchange", "serve", "--port", str(busy_port), "--sim-hours", "0.01"]
    assert main(argv) == 2
    assert (
        capsys.readouterr().err.strip().splitlines()[-1]
        == f"orderflow: port {busy_port} on 127.0.0.1 is in use"
    )


def test_replay_server_names_a_busy_port_at_the_real_bind(shared_data, no_early_look, busy_port, capsys):
    f = shared_data / "hftbacktest_binance_raw" / "usdm" / "ethusdt_20240808.gz"
    argv = ["data", "replay-server", str(f), "--port", str(busy_port), "--max-messages", "100"]
    assert main(argv) == 2
    assert (
        capsys.readouterr().err.strip().splitlines()[-1]
        == f"orderflow: port {busy_port} on 127.0.0.1 is in use"
    )
