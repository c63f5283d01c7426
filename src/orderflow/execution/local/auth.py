"""Request authentication as Binance does it: API key header, signature, timestamp and recvWindow.

Signed endpoints (``TRADE`` / ``USER_DATA``) need the ``X-MBX-APIKEY`` header and a ``signature``
parameter computed over *totalParams*, the query string concatenated with the request body (both as
sent, without the ``signature`` parameter itself):

- HMAC keys: ``hex(HMAC-SHA256(secret, totalParams))``;
- Ed25519 keys: ``base64(Ed25519-sign(private key, totalParams))``, verified with the registered
  public key (PEM), the signature URL-encoded when sent in a query string.

Then ``timestamp`` (ms since the epoch) must satisfy ``timestamp < server_ms + 1000`` and
``server_ms - timestamp <= recvWindow`` (``recvWindow`` default 5000, at most 60000), else -1021.
Listen-key endpoints (``USER_STREAM``, USD-M) need only the API key. The spot WebSocket API's
``userDataStream.subscribe.signature`` signs its JSON parameters sorted by name (see
:meth:`Authenticator.check_ws_signature`).

Secrets never leave this module: errors name the failed check, never the key, secret or signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from urllib.parse import unquote_plus

from orderflow.execution.local import errors as E

_KEY_RE = re.compile(r"^[A-Za-z0-9]{1,128}$")
MAX_RECV_WINDOW_MS = 60_000
DEFAULT_RECV_WINDOW_MS = 5_000


def hmac_signature(secret: str, payload: str) -> str:
    """Hex HMAC-SHA256 of ``payload`` with ``secret`` (Binance's HMAC signature)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def redact(text: str, *secrets: str) -> str:
    """``text`` with every occurrence of the given secrets and any ``signature=...`` value masked."""
    out = re.sub(r"(signature=)[^&\s]+", r"\1***", text)
    for s in secrets:
        if s:
            out = out.replace(s, "***")
    return out


def split_signature(query: str, body: str) -> tuple[str, str | None]:
    """(totalParams without the signature parameter, the signature as sent or None)."""
    sig: str | None = None
    parts_out = []
    for raw in (query, body):
        kept = []
        for seg in raw.split("&") if raw else []:
            if seg.startswith("signature="):
                sig = seg[len("signature=") :]
            else:
                kept.append(seg)
        parts_out.append("&".join(kept))
    return parts_out[0] + parts_out[1], sig


class Authenticator:
    """Checks API key, signature and timestamp of requests for one account.

    ``api_secret``: HMAC secret; ``ed25519_public_key``: PEM public key of an Ed25519 API key (then
    signatures are Ed25519). ``max_recv_window_ms`` is Binance's cap (60000)."""

    def __init__(self, api_key: str, api_secret: str | None = None, ed25519_public_key: str | None = None):
        if not api_secret and not ed25519_public_key:
            raise ValueError("an api secret (HMAC) or an Ed25519 public key is required")
        self.api_key = api_key
        self._secret = api_secret
        self._ed_key = None
        if ed25519_public_key:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            key = load_pem_public_key(ed25519_public_key.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("ed25519_public_key is not an Ed25519 public key (PEM)")
            self._ed_key = key

    def __repr__(self) -> str:
        return f"Authenticator(api_key=***, kind={'ed25519' if self._ed_key else 'hmac'})"

    def check_key(self, header: str | None) -> None:
        """API key header present and known: else -2014 (missing / malformed) or -2015 (unknown)."""
        if not header or not _KEY_RE.match(header):
            raise E.api_key_format()
        if not hmac.compare_digest(header.encode(), self.api_key.encode()):
            raise E.invalid_api_key()

    def check_signature(self, query: str, body: str) -> None:
        """Signature over totalParams (query + body): -1022 when missing or wrong, -1102 if absent."""
        payload, sig = split_signature(query, body)
        if sig is None or sig == "":
            raise E.mandatory("signature")
        self._verify(payload, unquote_plus(sig) if self._ed_key is not None else sig)

    def _verify(self, payload: str, sig: str) -> None:
        """``sig`` (hex HMAC, or base64 Ed25519 not percent-encoded) signs ``payload``: else -1022."""
        if self._ed_key is not None:
            from cryptography.exceptions import InvalidSignature

            try:
                self._ed_key.verify(base64.b64decode(sig, validate=True), payload.encode())
            except (InvalidSignature, binascii.Error, ValueError):
                raise E.bad_signature() from None
            return
        assert self._secret is not None
        if not hmac.compare_digest(hmac_signature(self._secret, payload), sig.lower()):
            raise E.bad_signature()

    def check_ws_signature(self, params: dict[str, str]) -> None:
        """WebSocket API signature: over ``k=v`` pairs of every parameter but ``signature``, sorted by
        name and joined by ``&``; hex HMAC, or plain (not percent-encoded) base64 Ed25519."""
        sig = params.get("signature")
        if not sig:
            raise E.mandatory("signature")
        payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "signature")
        self._verify(payload, sig)

    @staticmethod
    def check_timestamp(params: dict[str, str], server_ms: int) -> None:
        """``timestamp`` and ``recvWindow`` (ms) against the server clock ``server_ms``."""
        ts_raw = params.get("timestamp")
        if ts_raw is None or ts_raw == "":
            raise E.mandatory("timestamp")
        if not ts_raw.isdigit():
            raise E.illegal_chars("timestamp", "^[0-9]{1,20}$")
        rw_raw = params.get("recvWindow", str(DEFAULT_RECV_WINDOW_MS))
        try:
            rw = float(rw_raw)
        except ValueError:
            raise E.illegal_chars("recvWindow") from None
        if not 0 < rw <= MAX_RECV_WINDOW_MS:
            raise E.ApiError(400, -1131, "recvWindow must be less than 60000")
        ts = int(ts_raw)
        if ts >= server_ms + 1000:
            raise E.timestamp_outside(ahead=True)
        if server_ms - ts > rw:
            raise E.timestamp_outside(ahead=False)
