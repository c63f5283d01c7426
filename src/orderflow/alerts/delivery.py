"""Delivery of journaled alerts to their channels through apprise, one worker thread per channel.

The store (:mod:`orderflow.alerts.store`) journals every message with a ``pending`` delivery per channel
before anything is sent; this module only moves deliveries on: ``sent``, a retry later (exponential
backoff from :class:`RetryConfig`), or ``failed`` after ``attempts`` tries, each with the error apprise
gave. A channel that hangs or is down holds up only its own thread, so an "engine down" alert reaches
the healthy channels within seconds. :meth:`Deliverer.kick` wakes every thread as soon as the service
has recorded alerts; otherwise a thread sleeps until its earliest retry, polling the store at least every
``poll_s`` (1 s) so deliveries recorded by another process or left by a crashed one are picked up. A
delivery is at-least-once: a crash between a send and its ``mark_sent`` sends that message again.

Channels are apprise URLs (``mailto://``, ``json://``, ``twilio://``, ``tgram://``...). Each send makes a
fresh plugin instance (apprise throttles per instance: a reused email plugin would wait up to 5.5 s
between two sends, Twilio 0.2 s), sets ``RetryConfig.timeout_s`` as its socket connect and read
timeouts (the instance attributes that ``?cto=``/``?rto=`` set), and runs it in the calling thread (the
asset's ``service_timeout=0``: apprise would otherwise run it in its process-wide pool of a few
threads, which hung channels could exhaust).

Secrets: the secret parts of each channel URL (the password of ``user:password@``, Telegram's bot
token, query values and ``+Header`` values named like pass/token/key/secret) are registered with
:func:`orderflow.secrets.register_secret` and masked in apprise's own log records (a filter on the
``apprise`` logger, ahead of every handler), in the journaled ``last_error`` and in this module's logs.
Errors: apprise logs why a send failed; the ``apprise`` logger is set to DEBUG so each send's result
carries its socket-level reason (``Connection refused``, ``(535, b'5.7.8 Authentication credentials
invalid')``, ``Read timed out``), and records pass on to the application's handlers only from the level
they would have had before (WARNING unless configured).
"""

from __future__ import annotations

import heapq
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from apprise import Apprise, AppriseAsset, NotifyFormat, NotifyType

from orderflow.alerts.config import RetryConfig
from orderflow.alerts.store import AlertStore, Due
from orderflow.secrets import redact, register_secret

log = logging.getLogger(__name__)
APPRISE_LOGGER = "apprise"
_ASSET = AppriseAsset(service_timeout=0, storage_mode="memory")
_SECRET_NAME = re.compile(r"pass|token|key|secret|auth|sig", re.IGNORECASE)
_DETAIL = ("Socket Exception", "Notification Exception")
_LOUD = {"WARNING", "ERROR", "CRITICAL", "DEPRECATION WARNING"}


# -- secrets and apprise's log ----------------------------------------------------------------------
def url_secrets(url: str) -> tuple[str, ...]:
    """The secret parts of an apprise URL: the password of ``user:password@``, Telegram's bot token
    (``tgram://<token>/<chat>``), and query or ``+Header`` values whose name says pass, token, key,
    secret, auth or sig. Empty for a string that is not a URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    out: list[str] = []
    netloc = parts.netloc.rpartition("@")[2]
    if "@" in parts.netloc:
        _, _, password = parts.netloc.rpartition("@")[0].partition(":")
        out.append(password)
    if parts.scheme.lower() in ("tgram", "telegram"):
        out.append(netloc)  # the bot token is the host part
    for pair in parts.query.split("&"):
        name, _, raw = pair.partition("=")
        if raw and _SECRET_NAME.search(unquote(name)):
            value = unquote(raw)  # apprise decodes query values so (a "+" stays a "+")
            out += [raw, value, *value.split()[-1:]]  # as written, decoded, and "Bearer <token>"'s token
    out += [unquote(s) for s in out]
    return tuple(dict.fromkeys(s for s in out if s))


class _MaskSecrets(logging.Filter):
    """Masks the channels' secrets (any length) in every record of the ``apprise`` logger; a logger
    filter runs before its handlers, apprise's own result captures included."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.lock = threading.Lock()

    def add(self, secrets: Iterable[str]) -> None:
        with self.lock:
            self.secrets.update(s for s in secrets if s)

    def known(self) -> tuple[str, ...]:
        with self.lock:
            return tuple(self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string: keep what there is, masked
            msg = f"{record.msg} {record.args}"
        record.msg, record.args = redact(msg, *self.known()), None
        return True


class _PassOn(logging.Handler):
    """Hands a record of the (now DEBUG) ``apprise`` logger to the root handlers if it is at or above
    the level the logger had before (its own, else the root's at that moment): what propagation did."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.before = level

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(_silenced, "on", False):  # a check that reports apprise's reason itself
            return
        if record.levelno >= (self.before or logging.getLogger().getEffectiveLevel()):
            logging.getLogger().handle(record)


_silenced = threading.local()


_MASK = _MaskSecrets()
_hook_lock = threading.Lock()


def _hook_apprise_log(secrets: Iterable[str] = ()) -> None:
    """Mask ``secrets`` in apprise's records from now on; the first call also sets up the logger."""
    secrets = tuple(secrets)
    register_secret(*secrets)
    _MASK.add(secrets)
    lg = logging.getLogger(APPRISE_LOGGER)
    with _hook_lock:
        if _MASK in lg.filters:
            return
        lg.addFilter(_MASK)
        lg.addHandler(_PassOn(lg.level))
        lg.setLevel(logging.DEBUG)
        lg.propagate = False


def _where(url: str, secrets: Sequence[str]) -> str:
    """``scheme://host`` of a channel URL for messages (a host that is a secret is masked)."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "(not a URL)"
    if not parts.scheme:
        return "(no scheme)"
    return redact(f"{parts.scheme}://{host}", *secrets)


def check_channel_url(name: str, url: str) -> None:
    """``ValueError`` with one line ``channel 'name': malformed URL scheme://host: reason`` when apprise
    cannot load ``url``; the message shows the scheme and host only, never a password or token."""
    secrets = url_secrets(url) if isinstance(url, str) else ()
    _hook_apprise_log(secrets)
    where = _where(url, secrets) if isinstance(url, str) else f"({type(url).__name__})"
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"channel {name!r}: malformed URL {where}: empty")
    _silenced.on = True
    try:
        with _Capture() as cap:
            try:
                plugin = Apprise.instantiate(url, asset=_ASSET, suppress_exceptions=False)
            except Exception as e:  # the plugin refused its arguments (apprise says which)
                plugin, cap.lines = None, [*cap.lines, str(e)]
    finally:
        _silenced.on = False
    if plugin is None:
        reason = "; ".join(dict.fromkeys(cap.lines)) or "apprise does not know this URL"
        raise ValueError(f"channel {name!r}: malformed URL {where}: {redact(reason, *secrets)}")


class _Capture(logging.Handler):
    """Collects the WARNING+ lines apprise logs in this thread while the ``with`` block runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(record.getMessage())

    def __enter__(self) -> _Capture:
        logging.getLogger(APPRISE_LOGGER).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger(APPRISE_LOGGER).removeHandler(self)


# -- one send -------------------------------------------------------------------------------------
_NOTIFY_TYPE = {"critical": NotifyType.FAILURE, "error": NotifyType.FAILURE, "warning": NotifyType.WARNING}


def notify_type(severity: str, kind: str = "") -> NotifyType:
    """apprise's message type (icon and colour on the channels that show one) for an alert."""
    if kind == "resolved":
        return NotifyType.SUCCESS
    return _NOTIFY_TYPE.get(severity.lower(), NotifyType.INFO)


def send_once(
    url: str,
    title: str,
    body: str,
    *,
    timeout_s: float,
    kind: NotifyType = NotifyType.INFO,
    secrets: Sequence[str] = (),
) -> tuple[bool, str]:
    """Send one message to one apprise URL in this thread: ``(True, "")`` or ``(False, reason)``, the
    reason being apprise's own log lines for the send, with ``secrets`` and the URL's own secrets
    masked (in apprise's log records too). Never raises."""
    secrets = (*secrets, *url_secrets(url))
    try:
        _hook_apprise_log(secrets)
        plugin = Apprise.instantiate(url, asset=_ASSET)
        if plugin is None:
            return False, "apprise could not load the channel URL"
        plugin.socket_connect_timeout = plugin.socket_read_timeout = float(timeout_s)
        ap = Apprise(asset=_ASSET)
        ap.add(plugin)
        result = ap.notify(
            body=body, title=title, notify_type=kind, body_format=NotifyFormat.TEXT, log_level=logging.DEBUG
        )
        if result:
            return True, ""
        lines = [e.message for e in result.logs() if e.level in _LOUD or e.message.startswith(_DETAIL)]
        reason = "; ".join(dict.fromkeys(line.strip() for line in lines)) or f"apprise: {result.status.name}"
    except Exception as e:  # a plugin bug or anything else: a failed send, not a crash
        reason = f"{type(e).__name__}: {e}"
    return False, redact(reason, *secrets)[:1000]


def compose_digest(items: Sequence[Due]) -> tuple[str, str]:
    """One message for several due deliveries: the titles listed, then each title with its body."""
    if len(items) == 1:
        return items[0].title, items[0].body
    head = "\n".join(f"- {d.title}" for d in items)
    full = "\n\n".join(f"{d.title}\n{d.body}" for d in items)
    return f"{len(items)} alerts", f"{head}\n\n{full}"


# -- the workers ----------------------------------------------------------------------------------
@dataclass
class _Channel:
    name: str
    url: str
    secrets: tuple[str, ...]
    digest_ns: int
    wake: threading.Event = field(default_factory=threading.Event)
    retries: list[int] = field(default_factory=list)  # heap of next_ns this worker set
    next_digest_ns: int = 0
    thread: threading.Thread | None = None


_RANK = {NotifyType.FAILURE: 3, NotifyType.WARNING: 2, NotifyType.INFO: 1, NotifyType.SUCCESS: 0}


class Deliverer:
    """Delivers the store's pending deliveries to ``channels`` (name -> apprise URL), one thread each.

    ``digest_s[name] > 0`` batches that channel's due messages into one at most every so many seconds
    (the first goes at once; every batched delivery gets the one result). ``clock`` gives the
    nanoseconds the store is asked and written with. Construction checks every URL (``ValueError``
    naming the channel); after that, no method raises for a channel's problem.
    """

    def __init__(
        self,
        store: AlertStore,
        channels: Mapping[str, str],
        retry: RetryConfig,
        *,
        digest_s: Mapping[str, float] | None = None,
        clock: Callable[[], int] = time.time_ns,
        poll_s: float = 1.0,
    ) -> None:
        digest_s = dict(digest_s or {})
        for name in digest_s:
            if name not in channels:
                raise ValueError(f"digest_s names channel {name!r}, which is not configured")
            if not digest_s[name] >= 0:
                raise ValueError(f"channel {name!r}: digest_s {digest_s[name]} must be >= 0")
        self._channels: dict[str, _Channel] = {}
        for name, url in channels.items():
            check_channel_url(name, url)
            self._channels[name] = _Channel(name, url, url_secrets(url), int(digest_s.get(name, 0) * 1e9))
        self.store, self.retry, self.clock, self.poll_s = store, retry, clock, poll_s
        self._stopping = threading.Event()

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self._channels)

    # -- life cycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start a worker thread per channel (no-op for the running ones)."""
        self._stopping.clear()
        for ch in self._channels.values():
            if ch.thread is None or not ch.thread.is_alive():
                ch.thread = threading.Thread(target=self._run, args=(ch,), name=f"alert-{ch.name}")
                ch.thread.daemon = True
                ch.thread.start()

    def kick(self) -> None:
        """Wake every worker now (call after recording alerts: delivery is immediate, not polled)."""
        for ch in self._channels.values():
            ch.wake.set()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the workers to stop and wait up to ``timeout`` seconds; ``False`` when one is still in a
        send (it finishes that send, journals its result, then stops: its thread is a daemon)."""
        self._stopping.set()
        self.kick()
        deadline = time.monotonic() + timeout
        for ch in self._channels.values():
            if ch.thread is not None:
                ch.thread.join(max(0.0, deadline - time.monotonic()))
        return not any(ch.thread is not None and ch.thread.is_alive() for ch in self._channels.values())

    # -- sending now ----------------------------------------------------------------------------------
    def send_test(self, title: str, body: str) -> dict[str, tuple[bool, str]]:
        """Send one message to every channel now, in parallel, bypassing the journal: each channel's
        ``(ok, error)`` (``orderflow alerts test``)."""
        out: dict[str, tuple[bool, str]] = {}

        def one(ch: _Channel) -> None:
            out[ch.name] = self._send(ch, title, body, NotifyType.INFO)

        threads = [threading.Thread(target=one, args=(ch,), daemon=True) for ch in self._channels.values()]
        for t in threads:
            t.start()
        wait_s = 3 * self.retry.timeout_s + 5.0
        deadline = time.monotonic() + wait_s
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return {name: out.get(name, (False, f"no answer within {wait_s:.0f} s")) for name in self._channels}

    def _send(self, ch: _Channel, title: str, body: str, kind: NotifyType) -> tuple[bool, str]:
        return send_once(ch.url, title, body, timeout_s=self.retry.timeout_s, kind=kind, secrets=ch.secrets)

    # -- a worker -------------------------------------------------------------------------------------
    def _run(self, ch: _Channel) -> None:
        while not self._stopping.is_set():
            ch.wake.clear()
            try:
                wait_s = self._round(ch)
            except Exception as e:  # the store (locked, gone): say so, keep the thread, try again later
                err = redact(f"{type(e).__name__}: {e}", *ch.secrets)
                log.error("alert delivery to %r: %s; trying again", ch.name, err)
                wait_s = self.poll_s
            if wait_s > 0:
                ch.wake.wait(wait_s)

    def _round(self, ch: _Channel) -> float:
        """Deliver what is due on ``ch``; the seconds to sleep before the next round."""
        now = self.clock()
        if ch.digest_ns and now < ch.next_digest_ns:
            return min(self.poll_s, (ch.next_digest_ns - now) / 1e9)
        due = self.store.due(now, ch.name)
        if due and ch.digest_ns:
            title, body = compose_digest(due)
            kind = max((notify_type(d.severity, d.kind) for d in due), key=_RANK.__getitem__)
            ok, err = self._send(ch, title, body, kind)
            ch.next_digest_ns = self.clock() + ch.digest_ns
            self._settle(ch, due, ok, err)
        else:
            for d in due:
                if self._stopping.is_set():
                    return 0.0
                ok, err = self._send(ch, d.title, d.body, notify_type(d.severity, d.kind))
                self._settle(ch, [d], ok, err)
        if len(due) >= 100:  # the store's page: more may be due
            return 0.0
        now = self.clock()
        while ch.retries and ch.retries[0] <= now:
            heapq.heappop(ch.retries)
        return min(self.poll_s, (ch.retries[0] - now) / 1e9) if ch.retries else self.poll_s

    def _settle(self, ch: _Channel, items: Sequence[Due], ok: bool, err: str) -> None:
        now = self.clock()
        for d in items:
            tries = d.attempts + 1
            if ok:
                self.store.mark_sent(d.delivery_id, now)
            elif tries >= self.retry.attempts:
                self.store.mark_failed(d.delivery_id, err)
                log.error("alert %d to channel %r failed after %d tries: %s", d.alert_id, ch.name, tries, err)
            else:
                delay = self.retry.delay_s(tries)
                next_ns = now + int(delay * 1e9)
                self.store.mark_retry(d.delivery_id, next_ns, err)
                heapq.heappush(ch.retries, next_ns)
                log.warning(
                    "alert %d to channel %r: try %d of %d failed (%s); next in %.1f s",
                    d.alert_id,
                    ch.name,
                    tries,
                    self.retry.attempts,
                    err,
                    delay,
                )


__all__ = [
    "Deliverer",
    "RetryConfig",
    "check_channel_url",
    "compose_digest",
    "notify_type",
    "send_once",
    "url_secrets",
]
