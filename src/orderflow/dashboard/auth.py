"""The dashboard's operator password, sessions and CSRF tokens.

Read-only views need no login on loopback. Control (the kill switch) needs the operator password:

- the password is stored as an argon2id hash in a file only its owner may read
  (``$ORDERFLOW_DASHBOARD_PASSWORD_FILE`` or ``<user config dir>/orderflow/dashboard-password``),
  written by ``orderflow dashboard --set-password``; there is no default secret, and a file others can read is
  refused by name;
- logging in gives a random session token in an ``HttpOnly``, ``SameSite=Strict`` cookie and a CSRF
  token the page sends back in a header;
- every control action also re-checks the password, so a stolen session alone changes nothing;
- failed attempts are limited per client (``MAX_FAILURES`` a minute) and answered with 401.
"""

from __future__ import annotations

import os
import secrets
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

SESSION_TTL_S = 8 * 3600
MAX_FAILURES = 5
COOKIE = "of_session"
CSRF_HEADER = "x-csrf-token"

_hasher = PasswordHasher()


class PasswordFileError(RuntimeError):
    """The operator password file is missing, unsafe or not a hash this module wrote."""


def password_file(path: str | os.PathLike[str] | None = None) -> Path:
    if path is not None:
        return Path(path)
    env = os.environ.get("ORDERFLOW_DASHBOARD_PASSWORD_FILE")
    return Path(env) if env else Path(platformdirs.user_config_dir("orderflow")) / "dashboard-password"


def set_password(password: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Hash ``password`` (argon2id) into the owner-only password file (atomic replace)."""
    if len(password) < 8:
        raise ValueError("operator password: use at least 8 characters")
    p = password_file(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(_hasher.hash(password) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(p)
    return p


def load_hash(path: str | os.PathLike[str] | None = None) -> str | None:
    """The stored hash, or None when no password is set. An unsafe or foreign file raises."""
    p = password_file(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        return None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PasswordFileError(f"operator password file {p} is readable by others: chmod 600 {p}")
    text = p.read_text().strip()
    if not text.startswith("$argon2"):
        raise PasswordFileError(
            f"operator password file {p} holds no argon2 hash: rerun `orderflow dashboard --set-password`"
        )
    return text


@dataclass
class Session:
    token: str
    csrf: str
    who: str
    expires: float


class Guard:
    """Checks passwords against the stored hash and keeps the sessions of one dashboard process."""

    def __init__(self, hashed: str | None) -> None:
        self.hashed = hashed
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.hashed is not None

    def throttled(self, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(client, []) if now - t < 60.0]
            self._failures[client] = recent
            return len(recent) >= MAX_FAILURES

    def check(self, password: str, client: str) -> bool:
        """True when ``password`` matches; a miss counts against ``client``."""
        if self.hashed is None:
            return False
        try:
            ok: bool = _hasher.verify(self.hashed, password)
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok:
            with self._lock:
                self._failures.setdefault(client, []).append(time.monotonic())
        return ok

    def login(self, who: str) -> Session:
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), who, time.time() + SESSION_TTL_S)
        with self._lock:
            self._sessions[s.token] = s
        return s

    def session(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock:
            s = self._sessions.get(token)
            if s is not None and s.expires < time.time():
                del self._sessions[token]
                s = None
        return s

    def logout(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")
