"""Secrets handling shared by every venue: the owner-only check of secrets files, and redaction of
secrets in logs. Loading API credentials (from the environment or a secrets file, as below) is in
:mod:`orderflow.adapters.binance.common.credentials`.

Environment: ``<PREFIX>_API_KEY`` with ``<PREFIX>_API_SECRET`` (an HMAC secret, or an Ed25519 private
key in PEM) or ``<PREFIX>_PRIVATE_KEY_PATH`` (an Ed25519 PEM file; ``<PREFIX>_PRIVATE_KEY_PASSPHRASE``
if it is encrypted).

Secrets file (TOML, standard library parser), one table per prefix in lower case::

    [binance]
    api_key = "..."
    api_secret = "..."            # or: private_key_path = "/path/key.pem" (+ private_key_passphrase)

The file, and a private key file it or the environment names, must be readable by its owner only
(mode 0600 or 0400, owned by the current user): anything else is refused with the file and its mode.
Keys never appear in ``repr`` of the credentials, and :func:`install_redaction` masks them (and any
``signature=...`` or listen key) in every log record.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import threading
from pathlib import Path

SECRETS_FILE_ENV = "ORDERFLOW_SECRETS_FILE"
_SIG_RE = re.compile(r"(signature[\"']?\s*[=:]\s*[\"']?)[^&\s'\",}]+", re.IGNORECASE)
_LISTEN_RE = re.compile(r"(listenKey[\"']?\s*[=:]\s*[\"']?|/ws/|/stream\?streams=)([A-Za-z0-9]{16,})")
_APIKEY_RE = re.compile(r"(X-MBX-APIKEY[\"']?\s*[=:]\s*[\"']?)[^&\s'\",}]+", re.IGNORECASE)
_LISTEN_KEY_SHAPE = re.compile(r"\b[A-Za-z0-9]{60}\b")  # Binance listen keys: 60 alphanumerics
_registered: set[str] = set()
_lock = threading.Lock()


class SecretsError(Exception):
    """Credentials missing, or a secrets file that is unsafe or malformed (the message names it)."""


def _mask(secret: str) -> str:
    return f"<redacted:{hashlib.sha256(secret.encode()).hexdigest()[:6]}>"


def register_secret(*secrets: str) -> None:
    """Add secrets that :func:`redact` and :class:`RedactingFilter` mask from now on (empty ones and
    strings shorter than 6 characters are ignored: masking them would garble ordinary text)."""
    with _lock:
        _registered.update(s for s in secrets if s and len(s) >= 6)


def redact(text: str, *secrets: str) -> str:
    """``text`` with ``secrets``, every registered secret, ``signature=...`` values, API-key headers and
    listen keys replaced by ``<redacted:xxxxxx>`` (a short hash, so two masks can be told apart)."""
    with _lock:
        known = sorted({s for s in (*secrets, *_registered) if s}, key=len, reverse=True)
    for s in known:
        if s in text:
            text = text.replace(s, _mask(s))
    text = _SIG_RE.sub(lambda m: m.group(1) + "<redacted>", text)
    text = _APIKEY_RE.sub(lambda m: m.group(1) + "<redacted>", text)
    text = _LISTEN_RE.sub(lambda m: m.group(1) + _mask(m.group(2)), text)
    return _LISTEN_KEY_SHAPE.sub(lambda m: _mask(m.group(0)), text)


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message, arguments, traceback and stack (the record is rewritten;
    nothing is dropped). Masks ``secrets`` given here plus everything registered."""

    def __init__(self, *secrets: str) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string: keep what there is, redacted
            msg = f"{record.msg} {record.args}"
        record.msg, record.args = redact(msg, *self.secrets), None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = redact(text, *self.secrets), None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, *self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, *self.secrets)
        return True


_FILTER = RedactingFilter()


def install_redaction(*secrets: str) -> RedactingFilter:
    """Register ``secrets`` and put the shared :class:`RedactingFilter` on the root logger and on each of
    its handlers (records from child loggers reach only the handlers). Idempotent; call it again after
    replacing the root handlers (e.g. after ``setup_logging``)."""
    register_secret(*secrets)
    root = logging.getLogger()
    for target in (root, *root.handlers):
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)
    return _FILTER


def check_owner_only(path: str | Path) -> Path:
    """``path`` if it is a regular file readable only by its owner (the current user); else
    :class:`SecretsError` naming the file and its mode."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except FileNotFoundError:
        raise SecretsError(f"secrets file {p} does not exist") from None
    if not stat.S_ISREG(st.st_mode):
        raise SecretsError(f"secrets file {p} is not a regular file")
    if os.name == "posix":
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise SecretsError(
                f"secrets file {p} has mode {mode:04o}: it must be readable by its owner only (chmod 600 {p})"
            )
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise SecretsError(f"secrets file {p} is owned by uid {st.st_uid}, not by this user")
    return p


__all__ = [
    "SECRETS_FILE_ENV",
    "RedactingFilter",
    "SecretsError",
    "check_owner_only",
    "install_redaction",
    "redact",
    "register_secret",
]
