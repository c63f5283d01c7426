"""A fake Telegram Bot API server on loopback, answering in the real API's shapes.

Requests are ``/bot<token>/<method>`` (GET or POST; parameters in the query string, a JSON body, a
form body or multipart form data, as the real API takes them; method names are case-insensitive).
Answers are ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": ..., "description": ...}``
(and ``"parameters": {"retry_after": n}`` on 429). It serves:

- ``getMe``: the bot's User object;
- ``sendMessage`` (``chat_id``, ``text``, ``parse_mode``, ...): a Message object; 400 for an empty text,
  a missing chat id, an unknown parse mode or a text over 4096 characters (UTF-16 code units);
- ``sendPhoto``, ``sendDocument`` (multipart uploads, as apprise sends attachments) and
  ``sendMediaGroup``: recorded with their caption and file names;
- ``getUpdates`` (``offset``, ``limit``, ``timeout`` long polling, ``allowed_updates``): the Update
  objects at or above ``offset``, forgetting those below it. A ``getUpdates`` that arrives while another
  one is waiting terminates the waiting one with 409 Conflict, as the real API does when two bot
  instances poll one token.

A wrong token is 401 Unauthorized, an unknown method 404 Not Found. The test side injects user messages
(:meth:`FakeTelegram.say`), reads what the bot sent to each chat (:meth:`sent`, :meth:`messages`,
:meth:`wait_sent`), counts calls (:meth:`count`), queues error answers (:meth:`fail`) and stops and
restarts the server on the same port (:meth:`stop`, :meth:`start`) so that clients meet refused
connections. Point apprise's Telegram plugin at it with ``notify_url = fake.apprise_url``.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import itertools
import json
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

DEFAULT_TOKEN = "123456789:AAFakeTelegramTokenForOrderflowTests_x1"
MAX_TEXT = 4096
CONFLICT = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
PARSE_MODES = ("", "HTML", "Markdown", "MarkdownV2")


def utf16_len(text: str) -> int:
    """Telegram measures text in UTF-16 code units (an emoji outside the BMP counts twice)."""
    return len(text.encode("utf-16-le")) // 2


class ApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after


@dataclass
class _Fault:
    method: str  # lower case
    code: int
    description: str
    retry_after: int | None
    times: int


class FakeTelegram:
    """``with FakeTelegram() as tg:`` then point a client at ``tg.url`` (its ``api_base``)."""

    def __init__(self, token: str = DEFAULT_TOKEN, username: str = "orderflow_test_bot") -> None:
        self.token = token
        self.bot = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": "orderflow test",
            "username": username,
        }
        self.port = 0
        self._cond = threading.Condition()
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(700_000_001)
        self._message_ids: dict[Any, itertools.count[int]] = defaultdict(lambda: itertools.count(1))
        self._chats: dict[Any, dict[str, Any]] = {}
        self._sent: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        self._faults: list[_Fault] = []
        self._counts: dict[str, int] = defaultdict(int)
        self._poll_gen = 0
        self.conflicts = 0
        self.calls: list[tuple[str, dict[str, Any], float]] = []  # method, parameters, monotonic time
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._closing = False

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> FakeTelegram:
        """Serve on 127.0.0.1 (a free port the first time, the same port after :meth:`stop`)."""
        handler = type("Handler", (_Handler,), {"fake": self})
        self._closing = False
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-telegram", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut every open connection (waiting long polls end without an answer);
        the updates and the sent messages are kept for a later :meth:`start`."""
        if self._server is None:
            return
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            conns = list(self._conns)
        self._server.shutdown()
        self._server.server_close()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def apprise_url(self) -> str:
        """The value of apprise's ``NotifyTelegram.notify_url`` that sends to this server."""
        return self.url + "/bot"

    # -- the test side ----------------------------------------------------------------------------
    def say(
        self,
        chat_id: int,
        text: str,
        user: str = "alice",
        *,
        user_id: int | None = None,
        chat_type: str | None = None,
    ) -> int:
        """A user message in ``chat_id`` (private when positive, a group when negative, as Telegram
        numbers them); returns its update id."""
        uid = user_id if user_id is not None else 10_000 + sum(map(ord, user))
        kind = chat_type or ("private" if chat_id > 0 else "group")
        chat: dict[str, Any] = {"id": chat_id, "type": kind}
        if kind == "private":
            chat.update(first_name=user, username=user)
        else:
            chat["title"] = f"group {chat_id}"
        with self._cond:
            self._chats[chat_id] = chat
            upd: dict[str, Any] = {
                "update_id": next(self._update_ids),
                "message": {
                    "message_id": next(self._message_ids[chat_id]),
                    "from": {
                        "id": uid,
                        "is_bot": False,
                        "first_name": user,
                        "username": user,
                        "language_code": "en",
                    },
                    "chat": chat,
                    "date": int(time.time()),
                    "text": text,
                },
            }
            if text.startswith("/"):
                cmd_len = len(text.split(maxsplit=1)[0])
                upd["message"]["entities"] = [{"offset": 0, "length": cmd_len, "type": "bot_command"}]
            self._updates.append(upd)
            self._cond.notify_all()
            return int(upd["update_id"])

    def messages(self, chat_id: Any) -> list[dict[str, Any]]:
        """The Message objects the bot sent to ``chat_id``, in order (with ``parse_mode`` when given)."""
        with self._cond:
            return list(self._sent.get(_chat_key(chat_id), []))

    def sent(self, chat_id: Any) -> list[str]:
        """The texts (or captions) the bot sent to ``chat_id``."""
        return [m.get("text", m.get("caption", "")) for m in self.messages(chat_id)]

    def all_sent(self) -> dict[Any, list[str]]:
        with self._cond:
            return {k: [m.get("text", m.get("caption", "")) for m in v] for k, v in self._sent.items() if v}

    def wait_sent(self, chat_id: Any, n: int, timeout: float = 5.0) -> list[str]:
        """Wait until ``chat_id`` has received at least ``n`` messages; return them all (AssertionError
        on timeout, naming what did arrive)."""
        self.wait(lambda: len(self.messages(chat_id)) >= n, timeout, f"{n} messages to chat {chat_id}")
        return self.sent(chat_id)

    def wait(self, cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}; sent: {self.all_sent()}"
                )
            time.sleep(0.01)

    def count(self, method: str) -> int:
        """How many requests ``method`` has had (errors included)."""
        with self._cond:
            return self._counts[method.lower()]

    def call_times(self, method: str) -> list[float]:
        """When each ``method`` request arrived (``time.monotonic``)."""
        with self._cond:
            return [t for m, _, t in self.calls if m.lower() == method.lower()]

    def pending_updates(self) -> list[int]:
        """Update ids not yet confirmed by an offset."""
        with self._cond:
            return [u["update_id"] for u in self._updates]

    def fail(
        self,
        method: str,
        code: int,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with error ``code`` (the real API's texts by
        default: 409 Conflict, 429 Too Many Requests with ``retry_after``, 500 Internal Server Error)."""
        if description is None:
            description = {
                409: CONFLICT,
                429: f"Too Many Requests: retry after {retry_after or 1}",
                500: "Internal Server Error",
                502: "Bad Gateway",
            }.get(code, "Bad Request")
        if code == 429 and retry_after is None:
            retry_after = 1
        with self._cond:
            self._faults.append(_Fault(method.lower(), code, description, retry_after, times))

    # -- the API ----------------------------------------------------------------------------------
    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._cond:
            (self._conns.add if add else self._conns.discard)(conn)

    def call(self, token: str, method: str, params: dict[str, Any]) -> Any:
        """One API call: the ``result`` value, or :class:`ApiError`."""
        m = method.lower()
        with self._cond:
            self._counts[m] += 1
            self.calls.append((method, params, time.monotonic()))
            if token != self.token:
                raise ApiError(401, "Unauthorized")
            for f in self._faults:
                if f.method == m and f.times > 0:
                    f.times -= 1
                    raise ApiError(f.code, f.description, f.retry_after)
        handler = _METHODS.get(m)
        if handler is None:
            raise ApiError(404, "Not Found")
        return handler(self, params)

    def _get_me(self, params: dict[str, Any]) -> Any:
        return dict(self.bot, can_join_groups=True, can_read_all_group_messages=False)

    def _store_sent(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise ApiError(400, "Bad Request: chat_id is empty")
        key = _chat_key(chat_id)
        with self._cond:
            chat = self._chats.get(key) or {
                "id": key,
                "type": "private" if isinstance(key, int) else "channel",
            }
            msg = {
                "message_id": next(self._message_ids[key]),
                "from": dict(self.bot),
                "chat": chat,
                "date": int(time.time()),
                **content,
            }
            if params.get("parse_mode"):
                msg["parse_mode"] = params["parse_mode"]  # recorded for tests; not in a real Message
            self._sent[key].append(msg)
            self._cond.notify_all()
            return msg

    def _send_message(self, params: dict[str, Any]) -> Any:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(text) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        if str(params.get("parse_mode") or "") not in PARSE_MODES:
            raise ApiError(400, f"Bad Request: unsupported parse_mode {params['parse_mode']!r}")
        return self._store_sent(params, text=text)

    def _send_media_group(self, params: dict[str, Any]) -> Any:
        media = params.get("media")
        items = json.loads(media) if isinstance(media, str) else media
        if not isinstance(items, list) or not items:
            raise ApiError(400, 'Bad Request: parameter "media" is required')
        out = []
        for item in items:
            ref = str(item.get("media", ""))
            upload = params.get(ref.removeprefix("attach://")) if ref.startswith("attach://") else ref
            content = {str(item.get("type", "document")): upload}
            if item.get("caption"):
                content["caption"] = item["caption"]
            out.append(self._store_sent(params, **content))
        return out

    def _get_updates(self, params: dict[str, Any]) -> Any:
        offset = _int(params, "offset", 0)
        limit = min(max(_int(params, "limit", 100), 1), 100)
        timeout = max(_int(params, "timeout", 0), 0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, str):
            allowed = json.loads(allowed) if allowed.startswith("[") else allowed.split(",")
        end = time.monotonic() + timeout
        with self._cond:
            self._poll_gen += 1
            gen = self._poll_gen
            self._cond.notify_all()  # a waiting poll sees the newer one and ends with 409
            if offset > 0:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            elif offset < 0:
                self._updates = self._updates[offset:]
            while True:
                if self._poll_gen != gen:  # a newer poll came: it gets the updates, this one 409
                    self.conflicts += 1
                    raise ApiError(409, CONFLICT)
                ready = [u for u in self._updates if not allowed or any(k in u for k in allowed)][:limit]
                if ready or time.monotonic() >= end:
                    return ready
                if self._closing:
                    raise ConnectionAbortedError("server stopping")
                self._cond.wait(min(end - time.monotonic(), 0.5))


def _file_sender(key: str) -> Callable[[FakeTelegram, dict[str, Any]], Any]:
    """``sendPhoto`` / ``sendDocument``: an upload (or a file id) under ``key``, with a caption."""

    def send(fake: FakeTelegram, params: dict[str, Any]) -> Any:
        f = params.get(key)
        if not f:
            raise ApiError(400, f"Bad Request: there is no {key} in the request")
        content: dict[str, Any] = {key: f if isinstance(f, dict) else {"file_id": str(f)}}
        if params.get("caption"):
            content["caption"] = params["caption"]
        return fake._store_sent(params, **content)

    return send


_METHODS: dict[str, Callable[[FakeTelegram, dict[str, Any]], Any]] = {
    "getme": FakeTelegram._get_me,
    "sendmessage": FakeTelegram._send_message,
    "sendphoto": _file_sender("photo"),
    "senddocument": _file_sender("document"),
    "sendmediagroup": FakeTelegram._send_media_group,
    "getupdates": FakeTelegram._get_updates,
}


def _chat_key(chat_id: Any) -> Any:
    try:
        return int(chat_id)
    except (TypeError, ValueError):
        return str(chat_id)


def _int(params: dict[str, Any], key: str, default: int) -> int:
    v = params.get(key)
    if v in (None, ""):
        return default
    try:
        return int(v)
    except (TypeError, ValueError):
        raise ApiError(400, f"Bad Request: wrong parameter {key!r}: {v!r} is not an integer") from None


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTelegram
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # headers and body leave in one write (no Nagle / delayed-ACK stall on keep-alive)
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.fake._track(self.connection, True)

    def finish(self) -> None:
        self.fake._track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        seg = parts.path.split("/")
        try:
            if len(seg) != 3 or seg[0] != "" or not seg[1].startswith("bot") or not seg[2]:
                raise ApiError(404, "Not Found")
            params: dict[str, Any] = dict(parse_qsl(parts.query))
            params.update(self._body())
            result = self.fake.call(seg[1][3:], seg[2], params)
            self._answer(200, {"ok": True, "result": result})
        except ApiError as e:
            body: dict[str, Any] = {"ok": False, "error_code": e.code, "description": e.description}
            if e.retry_after is not None:
                body["parameters"] = {"retry_after": e.retry_after}
            self._answer(e.code, body)
        except ConnectionAbortedError:
            self.close_connection = True

    def _body(self) -> dict[str, Any]:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        ctype = self.headers.get("Content-Type", "")
        if not raw:
            return {}
        if ctype.startswith("application/json"):
            try:
                body = json.loads(raw)
            except ValueError:
                raise ApiError(400, "Bad Request: can't parse JSON object") from None
            if not isinstance(body, dict):
                raise ApiError(400, "Bad Request: can't parse JSON object")
            return body
        if ctype.startswith("multipart/form-data"):
            head = f"Content-Type: {ctype}\r\nMIME-Version: 1.0\r\n\r\n".encode()
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
            out: dict[str, Any] = {}
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True)
                data = payload if isinstance(payload, bytes) else b""
                filename = part.get_filename()
                if filename is not None:
                    out[str(name)] = {
                        "file_name": filename,
                        "file_size": len(data),
                        "mime_type": part.get_content_type(),
                    }
                else:
                    out[str(name)] = data.decode()
            return out
        return dict(parse_qsl(raw.decode()))

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True
