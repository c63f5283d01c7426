"""The alerter's Telegram bot: the one ``getUpdates`` poller of a bot token, answering operator commands.

Telegram gives a bot token one ``getUpdates`` consumer; two pollers fight with 409 Conflict (freqtrade
#2910, #5227). So the bot runs only in the alerter process and holds a lease in the alerter's state
table (``telegram.lease``: owner, pid, host, expiry), taken before each poll in one write transaction.
A second bot on the same journal refuses to poll while the lease is live and says so once; a lease left
by a dead process expires after ``2 * long_poll_s + timeout_s`` (at once when its pid is gone on this
host). A 409 from Telegram itself (a poller on another journal) is logged and backed off.

The bot never touches the engine: every command goes through :class:`Commands`, implemented by the
service; ``/kill`` reaches it only after ``/confirm <code>`` from the same chat within ``confirm_s``
(pending codes live in ``telegram.confirm`` with their expiry, so they survive a restart). Only the
configured chats are answered; any other chat is ignored and logged at WARNING.

The update offset is durable (``telegram.offset`` = last handled ``update_id`` + 1, written after each
update): a restart neither replays nor skips commands, except that a crash between a reply and its
offset write answers that one update again (a ``/confirm`` code is consumed before the kill, so a
replay cannot kill twice). Network errors, timeouts, 5xx, 409 and 429 (``retry_after`` honoured) are
logged and backed off exponentially; :meth:`TelegramBot.run` never raises. The token is registered as a
secret and every error text is redacted before it is logged or raised (``requests`` errors quote the
URL, which holds the token).
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import requests
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from orderflow.alerts.store import AlertStore
from orderflow.journal.models import AlerterState
from orderflow.risk.layout import KILL_MODES
from orderflow.secrets import RedactingFilter, redact, register_secret

log = logging.getLogger(__name__)

OFFSET_KEY = "telegram.offset"
LEASE_KEY = "telegram.lease"
CONFIRM_KEY = "telegram.confirm"
MAX_TEXT = 4096  # Telegram's limit, in UTF-16 code units
PERIODS = ("daily", "weekly", "monthly")
_OFFSET_MAX_AGE_NS = 6 * 86400 * 10**9
_KEEP_EXPIRED_NS = 3600 * 10**9  # an expired code is remembered an hour, to say "expired" not "wrong"
HELP = (
    "orderflow commands:\n"
    "/status - engines, kill switch, open incidents\n"
    "/positions - open positions\n"
    "/report [daily|weekly|monthly] - the latest report (daily by default)\n"
    "/kill reduce_only|halt|off - set the kill switch (asks for /confirm <code>)\n"
    "/confirm <code> - confirm a /kill\n"
    "/help - this list"
)


class Commands(Protocol):
    """What the bot asks the alerter service; each answer is the reply text."""

    def status(self) -> str: ...

    def positions(self) -> str: ...

    def report(self, period: str) -> str: ...  # daily|weekly|monthly

    def kill(self, mode: str, who: str, why: str) -> str: ...  # sets the kill switch, says what it did


class TelegramError(Exception):
    """A failed Bot API call (the text is redacted). ``code``: Telegram's ``error_code`` or the HTTP
    status, 0 for a network error or timeout; ``retry_after``: seconds to wait, on 429."""

    def __init__(self, method: str, message: str, code: int = 0, retry_after: float | None = None) -> None:
        super().__init__(f"telegram {method}: {message}" + (f" (HTTP {code})" if code else ""))
        self.method, self.code, self.retry_after = method, code, retry_after


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """``text`` in pieces of at most ``limit`` UTF-16 code units, cut after a newline where one falls in
    the second half of a piece (a surrogate pair is never cut)."""
    out: list[str] = []
    while utf16_len(text) > limit:
        n, units = 0, 0
        while units + utf16_len(text[n]) <= limit:
            units += utf16_len(text[n])
            n += 1
        nl = text.rfind("\n", 0, n)
        cut = nl + 1 if nl >= n // 2 else n
        out.append(text[:cut])
        text = text[cut:]
    if text or not out:
        out.append(text)
    return out


def _pid_namespace() -> str:
    """This process's pid namespace (two containers may share a host name, never a pid namespace)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


@dataclass(frozen=True)
class Lease:
    """Who polls the token, until when (``telegram.lease``)."""

    owner: str
    pid: int
    host: str
    expires_ns: int
    pidns: str = ""

    @classmethod
    def parse(cls, value: str) -> Lease | None:
        try:
            d = json.loads(value)
            return cls(
                str(d["owner"]), int(d["pid"]), str(d["host"]), int(d["expires_ns"]), str(d.get("pidns", ""))
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def dead(self) -> bool:
        """Its process is gone (known only for a process on this host, in this pid namespace)."""
        here = (socket.gethostname(), _pid_namespace())
        if (self.host, self.pidns) != here or self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False


class TelegramBot:
    """Polls ``getUpdates`` on ``<api_base>/bot<token>/`` and answers the commands of ``chat_ids``."""

    def __init__(
        self,
        api_base: str,
        token: str,
        chat_ids: Collection[int],
        commands: Commands,
        store: AlertStore,
        *,
        confirm_s: float = 60.0,
        long_poll_s: float = 25.0,
        timeout_s: float = 10.0,
        clock: Callable[[], int] = time.time_ns,
        backoff_s: tuple[float, float] = (1.0, 60.0),
    ) -> None:
        if not token or ":" not in token:
            raise ValueError("telegram bot token: expected '<bot id>:<secret>' as BotFather gives it")
        if not chat_ids:
            raise ValueError("telegram chat_ids: give at least one chat allowed to send commands")
        if not (confirm_s > 0 and long_poll_s >= 0 and timeout_s > 0 and 0 < backoff_s[0] <= backoff_s[1]):
            raise ValueError(
                f"telegram timings: confirm_s={confirm_s}, long_poll_s={long_poll_s}, timeout_s={timeout_s}, "
                f"backoff_s={backoff_s}: need positive values (long_poll_s may be 0) and min <= max backoff"
            )
        register_secret(token)
        for name in (__name__, "urllib3.connectionpool"):  # urllib3 logs request lines at DEBUG
            lg = logging.getLogger(name)
            if not any(isinstance(f, RedactingFilter) for f in lg.filters):
                lg.addFilter(RedactingFilter())
        self._base = f"{api_base.rstrip('/')}/bot{token}/"
        self.chat_ids = frozenset(int(c) for c in chat_ids)
        self.commands, self.store = commands, store
        self.confirm_s, self.long_poll_s, self.timeout_s = confirm_s, long_poll_s, timeout_s
        self.clock, self.backoff_s = clock, backoff_s
        self.session = requests.Session()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.username: str | None = None
        self.has_lease = False
        self._refusal_logged = False

    # -- the Bot API ------------------------------------------------------------------------------
    def _call(self, method: str, params: dict[str, Any], read_timeout: float) -> Any:
        try:
            r = self.session.post(self._base + method, json=params, timeout=(self.timeout_s, read_timeout))
        except requests.RequestException as e:
            raise TelegramError(method, redact(f"{type(e).__name__}: {e}")) from None
        try:
            body = r.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("ok") is True:
            return body.get("result")
        if not isinstance(body, dict):
            raise TelegramError(method, "not a Bot API answer", r.status_code)
        retry = (body.get("parameters") or {}).get("retry_after")
        code = int(body.get("error_code") or r.status_code)
        raise TelegramError(method, redact(str(body.get("description", ""))), code, retry)

    def send(self, chat_id: int, text: str) -> bool:
        """Send ``text`` (split at 4096 characters) as plain text; a failed piece is retried twice
        (after ``retry_after`` on 429 when it is at most 10 s) and then logged. True when every piece
        went."""
        ok = True
        for piece in split_text(text):
            for attempt in range(3):
                try:
                    self._call("sendMessage", {"chat_id": chat_id, "text": piece}, self.timeout_s)
                    break
                except TelegramError as e:
                    retry = e.code == 0 or e.code >= 500 or (e.code == 429 and (e.retry_after or 0) <= 10)
                    if not retry or attempt == 2:
                        log.warning("telegram: reply to chat %d not sent: %s", chat_id, e)
                        ok = False
                        break
                    time.sleep(float(e.retry_after or self.backoff_s[0] * 2**attempt))
        return ok

    # -- the lease --------------------------------------------------------------------------------
    def _ttl_ns(self, long_poll_s: float) -> int:
        return int((2 * max(long_poll_s, self.long_poll_s) + self.timeout_s) * 1e9)

    def _take_lease(self, long_poll_s: float) -> bool:
        """Take or renew the lease in one write transaction; False (logged once) while another live
        bot holds it."""
        now = self.clock()
        mine = Lease(
            self.owner, os.getpid(), socket.gethostname(), now + self._ttl_ns(long_poll_s), _pid_namespace()
        )
        with self.store.journal.session(write=True) as s:
            row = s.get(AlerterState, LEASE_KEY, with_for_update=True)
            cur = Lease.parse(row.value) if row is not None else None
            if cur is not None and cur.owner != self.owner and cur.expires_ns > now and not cur.dead():
                if not self._refusal_logged:
                    log.warning(
                        "telegram: not polling: pid %d on %s holds the getUpdates lease for %.0f s more "
                        "(Telegram allows one poller per token; this bot waits for the lease)",
                        cur.pid,
                        cur.host,
                        (cur.expires_ns - now) / 1e9,
                    )
                    self._refusal_logged = True
                self.has_lease = False
                return False
            if not self.has_lease:
                if cur is not None and cur.owner != self.owner:
                    log.info(
                        "telegram: taking over the lease of pid %d on %s (expired or dead)", cur.pid, cur.host
                    )
                log.info("telegram: holding the getUpdates lease as pid %d on %s", mine.pid, mine.host)
            s.merge(AlerterState(key=LEASE_KEY, value=json.dumps(asdict(mine)), updated_ns=now))
        self.has_lease, self._refusal_logged = True, False
        return True

    def release_lease(self) -> None:
        """Give the lease up (a clean stop), so that a restarted alerter polls at once."""
        with self.store.journal.session(write=True) as s:
            row = s.get(AlerterState, LEASE_KEY, with_for_update=True)
            cur = Lease.parse(row.value) if row is not None else None
            if row is not None and cur is not None and cur.owner == self.owner:
                s.delete(row)
        self.has_lease = False

    # -- polling ----------------------------------------------------------------------------------
    def poll_once(self, long_poll_s: float | None = None) -> int:
        """One ``getUpdates`` round (under the lease; nothing when another bot holds it): handle each
        update, then store the offset past it. Returns how many updates were handled; raises
        :class:`TelegramError` on a failed call."""
        lp = self.long_poll_s if long_poll_s is None else long_poll_s
        if not self._take_lease(lp):
            return 0
        if self.username is None:
            me = self._call("getMe", {}, self.timeout_s)
            self.username = str(me.get("username") or "") if isinstance(me, dict) else ""
            log.info("telegram: polling as @%s for chats %s", self.username, sorted(self.chat_ids))
        offset = self._offset()
        params: dict[str, Any] = {"timeout": int(lp), "limit": 100, "allowed_updates": ["message"]}
        if offset is not None:
            params["offset"] = offset
        updates = self._call("getUpdates", params, lp + self.timeout_s)
        handled = 0
        for upd in updates if isinstance(updates, list) else []:
            uid = int(upd["update_id"])
            if offset is not None and uid < offset:
                continue  # acknowledged before
            try:
                self._handle(upd)
            except Exception as e:  # one bad update must not stall the offset
                log.error(
                    "telegram: update %d not handled: %s", uid, redact(f"{e!r}\n{traceback.format_exc()}")
                )
            offset = uid + 1
            self.store.set_state(OFFSET_KEY, str(offset), self.clock())
            handled += 1
        return handled

    def _offset(self) -> int | None:
        """The stored offset; none when it is older than six days: Telegram has forgotten the updates
        it acknowledged, and after a week without updates it numbers the next one afresh (randomly),
        so an old offset could hide every new update."""
        with Session(self.store.engine) as s:
            row = s.get(AlerterState, OFFSET_KEY)
            if row is None or not row.value:
                return None
            if self.clock() - row.updated_ns > _OFFSET_MAX_AGE_NS:
                return None
            return int(row.value)

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set, backing off exponentially (with jitter) on errors; never raises.
        Releases the lease on the way out."""
        delay = self.backoff_s[0]
        while not stop.is_set():
            try:
                self.poll_once()
            except TelegramError as e:
                wait = delay
                if e.code == 409:
                    log.warning(
                        "telegram: %s: another process polls this bot token; retrying in %.1f s", e, wait
                    )
                elif e.code == 429:
                    wait = max(float(e.retry_after or 0), delay)
                    log.warning("telegram: %s; retrying in %.1f s", e, wait)
                else:
                    log.warning("telegram: %s; retrying in %.1f s", e, wait)
                delay = min(delay * 2, self.backoff_s[1])
                self._pause(stop, wait * random.uniform(1.0, 1.25))
            except Exception as e:  # the journal or a bug: keep the alerter alive
                log.error("telegram: poll failed: %s; retrying in %.1f s", redact(repr(e)), delay)
                delay = min(delay * 2, self.backoff_s[1])
                self._pause(stop, delay)
            else:
                delay = self.backoff_s[0]
                if not self.has_lease:
                    self._pause(stop, max(self.long_poll_s, self.backoff_s[0]))
        try:
            if self.has_lease:
                self.release_lease()
        except SQLAlchemyError as e:
            log.warning("telegram: lease not released: %s", redact(repr(e)))
        self.session.close()

    def _pause(self, stop: threading.Event, seconds: float) -> None:
        """Wait ``seconds`` (or until ``stop``), renewing a held lease so that a backoff keeps it."""
        end = time.monotonic() + seconds
        step = max(self._ttl_ns(self.long_poll_s) / 3e9, 0.05)
        while not stop.is_set() and (left := end - time.monotonic()) > 0:
            stop.wait(min(left, step))
            if self.has_lease and not stop.is_set():
                try:
                    self._take_lease(self.long_poll_s)
                except SQLAlchemyError as e:
                    log.debug("telegram: lease not renewed: %s", redact(repr(e)))

    # -- commands ---------------------------------------------------------------------------------
    def _handle(self, upd: dict[str, Any]) -> None:
        msg = upd.get("message")
        if not isinstance(msg, dict) or not isinstance(msg.get("chat"), dict):
            return
        chat_id = int(msg["chat"]["id"])
        sender = msg.get("from") or {}
        user = str(sender.get("username") or sender.get("first_name") or f"id{sender.get('id', '?')}")
        text = msg.get("text")
        text = text.strip() if isinstance(text, str) else ""
        if chat_id not in self.chat_ids:
            log.warning(
                "telegram: ignored a message from unauthorised chat %d (user %s): %r",
                chat_id,
                user,
                text[:200],
            )
            return
        if not text.startswith("/"):
            return
        head, *args = text.split()
        name, _, target = head[1:].partition("@")
        if target and self.username and target.lower() != self.username.lower():
            return  # addressed to another bot in a group
        self.send(chat_id, self._answer(name.lower(), args, chat_id, user))

    def _answer(self, name: str, args: list[str], chat_id: int, user: str) -> str:
        try:
            if name == "status":
                return self.commands.status()
            if name == "positions":
                return self.commands.positions()
            if name == "report":
                period = args[0].lower() if args else "daily"
                if period not in PERIODS:
                    return f"unknown report period {period!r}: use /report {'|'.join(PERIODS)}"
                return self.commands.report(period)
            if name == "kill":
                return self._ask_kill(args, chat_id, user)
            if name == "confirm":
                return self._confirm(args, chat_id, user)
            if name in ("help", "start"):
                return HELP
            return f"unknown command /{name}; /help lists the commands"
        except Exception as e:  # a failing command is answered, the bot goes on
            log.error("telegram: /%s failed: %s", name, redact(f"{e!r}\n{traceback.format_exc()}"))
            return redact(f"/{name} failed: {type(e).__name__}: {e}")

    def _pending(self) -> dict[str, dict[str, Any]]:
        raw = self.store.get_state(CONFIRM_KEY)
        try:
            d = json.loads(raw) if raw else {}
        except ValueError:
            d = {}
        return d if isinstance(d, dict) else {}

    def _save_pending(self, pending: dict[str, dict[str, Any]], now: int) -> None:
        keep = {c: p for c, p in pending.items() if int(p["expires_ns"]) + _KEEP_EXPIRED_NS > now}
        self.store.set_state(CONFIRM_KEY, json.dumps(keep, sort_keys=True), now)

    def _ask_kill(self, args: list[str], chat_id: int, user: str) -> str:
        mode = args[0].lower() if args else ""
        if mode not in KILL_MODES:
            return f"usage: /kill {'|'.join(m for m in KILL_MODES if m != 'off')}|off"
        now = self.clock()
        pending = {c: p for c, p in self._pending().items() if int(p["chat_id"]) != chat_id}
        code = f"{secrets.randbelow(10**6):06d}"
        while code in pending:
            code = f"{secrets.randbelow(10**6):06d}"
        pending[code] = {
            "chat_id": chat_id,
            "mode": mode,
            "user": user,
            "expires_ns": now + int(self.confirm_s * 1e9),
        }
        self._save_pending(pending, now)
        log.info(
            "telegram: /kill %s asked by %s in chat %d; waiting for its confirmation", mode, user, chat_id
        )
        return f"To set the kill switch to {mode}, send /confirm {code} within {self.confirm_s:.0f} s."

    def _confirm(self, args: list[str], chat_id: int, user: str) -> str:
        if len(args) != 1:
            return "usage: /confirm <code> (the code a /kill gave)"
        code, now = args[0], self.clock()
        pending = self._pending()
        p = pending.get(code)
        if p is None:
            return f"wrong code {code[:12]!r}: nothing done"
        if int(p["chat_id"]) != chat_id:
            log.warning("telegram: chat %d (user %s) sent the /confirm code of another chat", chat_id, user)
            return "that code was given to another chat: nothing done"
        del pending[code]
        self._save_pending(pending, now)  # consumed before acting: a replayed /confirm cannot act twice
        mode = str(p["mode"])
        if int(p["expires_ns"]) <= now:
            return f"code {code} expired: nothing done; send /kill {mode} again"
        log.warning("telegram: /kill %s confirmed by %s in chat %d", mode, user, chat_id)
        return self.commands.kill(
            mode, who=f"telegram:{chat_id}:{user}", why=f"/kill {mode} confirmed in Telegram"
        )


__all__ = ["Commands", "TelegramBot", "TelegramError", "split_text"]
