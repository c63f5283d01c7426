"""Loopback servers that the alerter's channels deliver to in tests: SMTP with AUTH (aiosmtpd), a JSON
webhook receiver and a fake of Twilio's Messages API (stdlib HTTP servers). Each binds 127.0.0.1 on a
free port, is a context manager, records what it received under a lock, and lets a test wait for it.

Apprise reaches them by URL: :meth:`SmtpServer.url` (``mailto://...?mode=insecure``: plain SMTP, login
with AUTH on loopback), :meth:`WebhookServer.url` (``json://``, headers as ``+Name=value``) and
:meth:`TwilioServer.url` (``twilio://``; the plugin's API base is pointed here with
``orderflow.alerts.endpoints.set_endpoints({"twilio": server.base})``). The Telegram fake is
``tests/support/fake_telegram.py``.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import logging
import secrets
import socket
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class _Recorder:
    """A list of records behind a condition variable, so tests can wait for the n-th one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._items: list[Any] = []

    def add(self, item: Any) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def items(self) -> list[Any]:
        with self._cond:
            return list(self._items)

    def wait(self, n: int, timeout: float) -> list[Any]:
        """The records once there are at least ``n`` (or whatever there is after ``timeout`` seconds)."""
        with self._cond:
            self._cond.wait_for(lambda: len(self._items) >= n, timeout)
            return list(self._items)


# -- SMTP ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mail:
    """One message the SMTP server accepted: the envelope and the parsed subject and text body."""

    sender: str
    recipients: tuple[str, ...]
    subject: str
    text: str
    login: str | None


class _QuietController(Controller):
    """aiosmtpd's controller without the per-connection warning that AUTH is allowed without TLS (it is,
    on purpose: apprise's ``mode=insecure`` logs in over plain TCP on loopback)."""

    def factory(self) -> SMTP:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
            return super().factory()


class SmtpServer:
    """An SMTP server (aiosmtpd) that requires AUTH LOGIN or PLAIN with ``user``/``password`` and
    accepts it over plain TCP (``auth_require_tls=False``: loopback only). ``messages`` are the mails
    accepted, ``failed_logins`` counts refused AUTH attempts. :meth:`down` stops listening (clients get
    "connection refused"), :meth:`up` listens again on the same port."""

    def __init__(self, user: str = "alerts", password: str | None = None) -> None:
        self.user = user
        self.password = password if password is not None else "smtp-" + secrets.token_hex(8)
        self.port = free_port()
        self._mails = _Recorder()
        self._lock = threading.Lock()
        self._failed = 0
        self._controller: Controller | None = None

    # what it received
    @property
    def messages(self) -> list[Mail]:
        return self._mails.items()

    def wait(self, n: int = 1, timeout: float = 5.0) -> list[Mail]:
        return self._mails.wait(n, timeout)

    @property
    def failed_logins(self) -> int:
        with self._lock:
            return self._failed

    def url(self, to: str = "ops@example.com", sender: str = "alerter@example.com", **over: str) -> str:
        """The apprise URL that logs in as ``user`` (``password=`` overrides the password)."""
        password = over.pop("password", self.password)
        query = urlencode({"mode": "insecure", "to": to, "from": sender, **over}, quote_via=quote)
        return f"mailto://{quote(self.user, safe='')}:{quote(password, safe='')}@{HOST}:{self.port}?{query}"

    # the aiosmtpd side
    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.user
            and data.password.decode() == self.password
        )
        if not ok:
            with self._lock:
                self._failed += 1
        if ok:
            return AuthResult(success=True, auth_data=data.login.decode())
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535 5.7.8

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        part = msg.get_body(preferencelist=("plain", "html"))
        text = part.get_content() if isinstance(part, EmailMessage) else ""
        self._mails.add(
            Mail(
                sender=envelope.mail_from or "",
                recipients=tuple(envelope.rcpt_tos),
                subject=str(msg.get("subject", "")),
                text=text,
                login=session.auth_data if isinstance(session.auth_data, str) else None,
            )
        )
        return "250 Message accepted for delivery"

    # life cycle
    def up(self) -> None:
        if self._controller is not None:
            return
        logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's per-login deprecation notice
        self._controller = _QuietController(
            self,
            hostname=HOST,
            port=self.port,
            authenticator=self._authenticate,
            auth_required=True,
            auth_require_tls=False,
        )
        self._controller.start()

    def down(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()


# -- HTTP servers ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HttpRequest:
    """One request an HTTP fake received, and the status it answered (or was about to answer)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    status: int
    held_s: float = 0.0
    at: float = field(default_factory=time.monotonic)  # arrival, time.monotonic()

    def json(self) -> Any:
        return json.loads(self.body)


class _HttpServer:
    """A threading HTTP server on 127.0.0.1 whose requests go to :meth:`respond`."""

    def __init__(self) -> None:
        self.requests = _Recorder()
        self._stopping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = outer.respond(self, body)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up waiting (a held request)
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

        self._httpd = ThreadingHTTPServer((HOST, 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.base = f"http://{HOST}:{self.port}"
        self._thread: threading.Thread | None = None

    def respond(self, req: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError

    def _hold(self, seconds: float) -> None:
        """Sleep ``seconds`` (cut short when the server stops)."""
        self._stopping.wait(seconds)

    def __enter__(self) -> _HttpServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()


class WebhookServer(_HttpServer):
    """A JSON webhook receiver. ``status`` (default 200) is what it answers; with ``hold_s > 0`` it waits
    that long before answering (longer than a client's timeout: the client gives up). ``requests``
    records every request as it arrives; :attr:`messages` are the JSON bodies of the ones answered 2xx
    without a hold, i.e. the deliveries the client saw succeed."""

    def __init__(self) -> None:
        super().__init__()
        self.status = 200
        self.hold_s = 0.0

    def __enter__(self) -> WebhookServer:
        super().__enter__()
        return self

    def url(self, path: str = "/hook", headers: Mapping[str, str] | None = None) -> str:
        query = urlencode({f"+{k}": v for k, v in (headers or {}).items()}, quote_via=quote)
        return f"json://{HOST}:{self.port}{path}" + (f"?{query}" if query else "")

    @property
    def messages(self) -> list[Any]:
        return [r.json() for r in self.requests.items() if 200 <= r.status < 300 and not r.held_s]

    def wait(self, n: int = 1, timeout: float = 5.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while len(got := self.messages) < n and time.monotonic() < deadline:
            self.requests.wait(len(self.requests.items()) + 1, max(0.0, deadline - time.monotonic()))
        return got

    def respond(self, req: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, str], bytes]:
        status, hold = self.status, self.hold_s
        self.requests.add(HttpRequest(req.command, req.path, dict(req.headers.items()), body, status, hold))
        if hold:
            self._hold(hold)
        answer = json.dumps({"ok": 200 <= status < 300}).encode()
        return status, {"Content-Type": "application/json"}, answer


def _twilio_error(status: int, code: int, message: str) -> tuple[int, dict[str, str], bytes]:
    """Twilio's error body: ``{"code", "message", "more_info", "status"}``."""
    body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}"}
    return status, {"Content-Type": "application/json"}, json.dumps({**body, "status": status}).encode()


class TwilioServer(_HttpServer):
    """A fake of Twilio's Programmable Messaging create call, with its request and response shapes:
    ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, HTTP basic auth ``AccountSid:AuthToken``,
    form fields ``To``, ``From``, ``Body``; 201 with a Message resource (``sid`` ``SM...``, ``status``
    ``"queued"``, RFC 2822 dates, ``uri``), or Twilio's JSON error (401 code 20003 "Authenticate",
    404 code 20404, 400 codes 21604/21602/21211). ``messages`` are the created resources."""

    def __init__(self, account_sid: str | None = None, auth_token: str | None = None) -> None:
        super().__init__()
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.auth_token = auth_token or secrets.token_hex(16)
        self.failed_auth = 0
        self._created = _Recorder()
        self._lock = threading.Lock()

    def __enter__(self) -> TwilioServer:
        super().__enter__()
        return self

    def url(self, sender: str = "+15550001111", to: tuple[str, ...] = ("+15552223333",), **over: str) -> str:
        token = over.pop("token", self.auth_token)
        targets = "/".join(t.lstrip("+") for t in to)
        return f"twilio://{self.account_sid}:{token}@{sender.lstrip('+')}/{targets}"

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self._created.items()

    def wait(self, n: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        return self._created.wait(n, timeout)

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.account_sid and password == self.auth_token

    def respond(self, req: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, str], bytes]:
        path = req.path.split("?", 1)[0]
        prefix, suffix = "/2010-04-01/Accounts/", "/Messages.json"
        sid = path[len(prefix) : -len(suffix)] if path.startswith(prefix) and path.endswith(suffix) else ""
        if not self._authorized(req.headers.get("Authorization")):
            with self._lock:
                self.failed_auth += 1
            out = _twilio_error(401, 20003, "Authenticate")
        elif req.command != "POST" or sid != self.account_sid:
            out = _twilio_error(404, 20404, f"The requested resource {path} was not found")
        else:
            out = self._create(sid, {k: v[0] for k, v in parse_qs(body.decode()).items()})
        self.requests.add(HttpRequest(req.command, req.path, dict(req.headers.items()), body, out[0]))
        return out

    def _create(self, sid: str, form: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        to, sender, text = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        if not to:
            return _twilio_error(400, 21604, "A 'To' phone number is required.")
        if not text:
            return _twilio_error(400, 21602, "Message body is required.")
        if not (to.startswith("+") and to[1:].isdigit()):
            return _twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        msg_sid = "SM" + secrets.token_hex(16)
        now = format_datetime(datetime.now(UTC), usegmt=True).replace("GMT", "+0000")
        uri = f"/2010-04-01/Accounts/{sid}/Messages/{msg_sid}"
        resource = {
            "account_sid": sid,
            "api_version": "2010-04-01",
            "body": text,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": str(max(1, -(-len(text) // 160))),
            "price": None,
            "price_unit": "USD",
            "sid": msg_sid,
            "status": "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": to,
            "uri": f"{uri}.json",
        }
        self._created.add(resource)
        return 201, {"Content-Type": "application/json"}, json.dumps(resource).encode()


def wait_until(pred: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    """Poll ``pred`` until it holds or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
    return True


__all__ = [
    "HttpRequest",
    "Mail",
    "SmtpServer",
    "TwilioServer",
    "WebhookServer",
    "free_port",
    "wait_until",
]
