"""Argument types of the ``orderflow`` command: each checks one value at parse time.

Used as argparse ``type=`` functions, so a bad value stops the command before anything runs or is
written, and argparse prints one line naming the argument and the value, e.g.
``orderflow run: error: argument --hours: must be a finite number > 0, got 'nan'`` (exit 2).
Each function returns the value in the form the handlers already take (mostly the original string),
so handlers keep working when called without the parser.
"""

from __future__ import annotations

import datetime as dt
import errno
import math
import re
import socket
from argparse import ArgumentTypeError
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

_SYMBOL = re.compile(r"[A-Za-z0-9]{2,30}(_[A-Za-z0-9]{1,12})?")  # BTCUSDT, BTCUSD_PERP
_VENUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
_INTERVAL = re.compile(r"[1-9][0-9]*[smhdwM]")
_ENV_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _fail(what: str, text: str) -> ArgumentTypeError:
    return ArgumentTypeError(f"{what}, got {text!r}")


# -- numbers -----------------------------------------------------------------------------------------
def _number(text: str, what: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise _fail(what, text) from None
    if not math.isfinite(x):
        raise _fail(what, text)
    return x


def float_range(lo: float = 0.0, hi: float | None = None, *, lo_open: bool = True) -> Callable[[str], float]:
    """A finite number above ``lo`` (or at least ``lo`` when ``lo_open`` is false), at most ``hi``."""
    what = f"must be a finite number {'>' if lo_open else '>='} {lo:g}" + (f" and <= {hi:g}" if hi else "")

    def parse(text: str) -> float:
        x = _number(text, what)
        if x < lo or (lo_open and x == lo) or (hi is not None and x > hi):
            raise _fail(what, text)
        return x

    parse.__name__ = "number"
    return parse


positive_float = float_range(0.0)
non_negative_float = float_range(0.0, lo_open=False)


def int_range(lo: int = 1, hi: int | None = None) -> Callable[[str], int]:
    """A whole number within ``lo..hi``."""
    what = f"must be a whole number >= {lo}" + (f" and <= {hi}" if hi is not None else "")

    def parse(text: str) -> int:
        try:
            x = int(text)
        except ValueError:
            raise _fail(what, text) from None
        if x < lo or (hi is not None and x > hi):
            raise _fail(what, text)
        return x

    parse.__name__ = "integer"
    return parse


positive_int = int_range(1)
non_negative_int = int_range(0)
port = int_range(0, 65535)


def float_list(text: str) -> str:
    """Comma-separated finite numbers > 0 (kept as the string; e.g. ``--intervals 1,10,60``)."""
    what = "must be comma-separated finite numbers > 0"
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        ok = bool(parts) and all(math.isfinite(float(p)) and float(p) > 0 for p in parts)
    except ValueError:
        ok = False
    if not ok:
        raise _fail(what, text)
    return text


def _listed(text: str, pattern: re.Pattern[str], what: str) -> str:
    """``text`` when it is a comma-separated list whose every item matches ``pattern``."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(pattern.fullmatch(p) for p in parts):
        raise _fail(f"must be comma-separated {what}", text)
    return text


# -- time ----------------------------------------------------------------------------------------------
def iso_time(text: str) -> str:
    """An ISO date or date/time (UTC unless it carries an offset), e.g. 2024-08-08 or 2024-08-08T12:00."""
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        raise _fail("must be an ISO date or date/time such as 2024-08-08 or 2024-08-08T12:00", text) from None
    return text


def interval(text: str) -> str:
    """A Binance kline interval: 1s, 1m, 5m, 1h, 1d, 1w, 1M, ..."""
    if not _INTERVAL.fullmatch(text):
        raise _fail("must be a kline interval such as 1m, 5m, 1h or 1d", text)
    return text


def interval_list(text: str) -> str:
    return _listed(text, _INTERVAL, "kline intervals such as 1m,5m")


# -- names ---------------------------------------------------------------------------------------------
def symbol(text: str) -> str:
    """A Binance symbol: letters and digits (BTCUSDT, btcusdt), coin-M with a suffix (BTCUSD_PERP)."""
    if not _SYMBOL.fullmatch(text):
        joined = re.sub(r"[^A-Za-z0-9]", "", text).upper()
        hint = f" (Binance writes {joined})" if re.search(r"[/:-]", text) and len(joined) >= 2 else ""
        raise _fail(f"must be a symbol of letters and digits such as BTCUSDT{hint}", text)
    return text


def symbol_list(text: str) -> str:
    """Comma-separated symbols (``btcusdt,ethusdt``)."""
    return _listed(text, _SYMBOL, "symbols of letters and digits such as btcusdt,ethusdt")


def venue(text: str) -> str:
    """A venue name as stored: letters, digits, '-', '_' or '.', e.g. binance-usdm."""
    if not _VENUE.fullmatch(text):
        raise _fail("must be a venue name of letters, digits, '-', '_' or '.' such as binance-usdm", text)
    return text


def name_list(text: str) -> str:
    """Comma-separated names (``--members lgbm,mlp``)."""
    return _listed(text, _NAME, "names such as lgbm,mlp")


def env_prefix(text: str) -> str:
    """An environment-variable prefix (``BINANCE`` reads ``BINANCE_API_KEY``, ...)."""
    if not _ENV_PREFIX.fullmatch(text):
        raise _fail("must be an environment variable prefix of letters, digits and '_'", text)
    return text


def drop_diff(text: str) -> str:
    """``SYMBOL:K``: drop the K-th depth diff of SYMBOL."""
    sym, _, k = text.partition(":")
    if not _SYMBOL.fullmatch(sym) or not k.isdigit() or int(k) < 1:
        raise _fail("must be SYMBOL:K with K >= 1, e.g. BTCUSDT:100", text)
    return text


def url(*schemes: str) -> Callable[[str], str]:
    """A URL with one of ``schemes`` and a host, e.g. ``http://127.0.0.1:9400``."""
    what = f"must be a {' or '.join(schemes)} URL with a host, e.g. {schemes[0]}://127.0.0.1:9400"

    def parse(text: str) -> str:
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise _fail(what, text) from None
        if parts.scheme not in schemes or not parts.hostname:
            raise _fail(what, text)
        return text

    parse.__name__ = "url"
    return parse


# -- paths ---------------------------------------------------------------------------------------------
def telemetry_location(text: str) -> str:
    """Where engines publish telemetry: ``off``, ``default``, a ``redis://`` / ``rediss://`` URL, a
    ``file://`` URL or a directory path (existing, or creatable)."""
    if text in ("off", "default"):
        return text
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if scheme in ("redis", "rediss"):
            return url("redis", "rediss")(text)
        if scheme != "file":
            raise _fail("must be off, default, a directory, file:// or redis:// URL", text)
        dir_path(text[len("file://") :])
        return text
    return dir_path(text)


def _nearest_existing(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def existing_file(text: str) -> str:
    p = Path(text).expanduser()
    if p.is_dir():
        raise _fail("must be a file, not a directory", text)
    if not p.is_file():
        raise _fail("no such file", text)
    return text


def existing_dir(text: str) -> str:
    p = Path(text).expanduser()
    if p.exists() and not p.is_dir():
        raise _fail("must be a directory, not a file", text)
    if not p.is_dir():
        raise _fail("no such directory", text)
    return text


def dir_path(text: str) -> str:
    """A directory to read or create: an existing directory or a path that does not exist yet (whose
    nearest existing parent is a directory). Nothing is created here."""
    if not text:
        raise _fail("must be a directory path", text)
    p = Path(text).expanduser()
    if p.exists() and not p.is_dir():
        raise _fail("must be a directory, not a file", text)
    if not _nearest_existing(p).is_dir():
        raise _fail(f"cannot be created: {_nearest_existing(p)} is a file", text)
    return text


def file_path(text: str) -> str:
    """A file to write: not a directory, and its nearest existing parent is a directory."""
    if not text:
        raise _fail("must be a file path", text)
    p = Path(text).expanduser()
    if p.is_dir() or text.endswith(("/", "\\")):
        raise _fail("must be a file, not a directory", text)
    if not _nearest_existing(p.parent).is_dir():
        raise _fail(f"cannot be created: {_nearest_existing(p.parent)} is a file", text)
    return text


def db_location(text: str) -> str:
    """A database URL (``scheme://...``) or a SQLite file path (not a directory)."""
    return text if "://" in text else file_path(text)


def registry_location(text: str) -> str:
    """A tracking URL (``scheme://...``) or a registry directory."""
    return text if "://" in text else dir_path(text)


def source(text: str) -> str:
    """A SOURCE: a stored ``VENUE/SYMBOL`` or an existing raw recording file."""
    p = Path(text).expanduser()
    if p.is_dir():
        raise _fail("must be a stored VENUE/SYMBOL or a recording file, not a directory", text)
    if p.is_file():
        return text
    v, sep, s = text.partition("/")
    if sep and _VENUE.fullmatch(v) and _SYMBOL.fullmatch(s):
        return text
    raise _fail("neither a stored VENUE/SYMBOL (e.g. sim/BTCUSDT) nor an existing file", text)


def exchange_source(text: str) -> str:
    """``sim``, a stored ``VENUE/SYMBOL`` or a raw recording file."""
    return text if text == "sim" else source(text)


# -- listening sockets -----------------------------------------------------------------------------------
def listen_error(host: str, port_: int, e: OSError) -> str | None:
    """One line for a failed bind of ``host:port`` (busy port, unknown or foreign address), else None."""
    if isinstance(e, socket.gaierror):
        return f"cannot listen on {host}:{port_}: unknown host {host!r}"
    if e.errno == errno.EADDRINUSE:
        return f"port {port_} on {host} is in use"
    if e.errno in (errno.EADDRNOTAVAIL, errno.EACCES):
        return f"cannot listen on {host}:{port_}: {e.strerror}"
    return None


def parquet_file(text: str) -> str:
    """An output ``.parquet`` file (see :func:`file_path`)."""
    if Path(text).suffix != ".parquet":
        raise _fail("must name a .parquet file", text)
    return file_path(text)


def non_empty(text: str) -> str:
    if not text.strip():
        raise _fail("must not be empty", text)
    return text


def port_in_use(host: str, port_: int) -> str | None:
    """An early look (one line, as :func:`listen_error`) whether ``host:port`` can be bound; the real
    bind still checks, since the port can be taken in between. Port 0 always binds."""
    if port_ == 0:
        return None
    try:
        infos = socket.getaddrinfo(host, port_, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as e:
        return listen_error(host, port_, e)
    for family, kind, proto, _, addr in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's server does
            try:
                s.bind(addr)
            except OSError as e:
                return listen_error(host, port_, e)
    return None


def ed25519_public_key_file(text: str) -> str:
    """A PEM file holding an Ed25519 public key."""
    existing_file(text)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(Path(text).expanduser().read_bytes())
    except (ValueError, TypeError, OSError):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise _fail("must be a PEM file of an Ed25519 public key", text)
    return text


_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def version_ref(text: str) -> str:
    """A registry version (a whole number >= 1) or an alias such as champion or previous."""
    if (text.isdigit() and int(text) >= 1) or _ALIAS.fullmatch(text):
        return text
    raise _fail("must be a version number >= 1 or an alias such as champion", text)


def model_ref(text: str) -> str:
    """``--model``: a keyword or alias (production, none, ...), a version number, or a bundle directory."""
    p = Path(text).expanduser()
    looks_like_path = "/" in text or "\\" in text or text.startswith(".") or p.exists()
    if not looks_like_path:
        return version_ref(text)
    if p.exists() and not p.is_dir():
        raise _fail("must be a bundle directory, not a file", text)
    if not p.is_dir():
        raise _fail("no such bundle directory", text)
    return text
