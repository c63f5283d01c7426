"""Request signing for Binance SIGNED endpoints (HMAC-SHA256 and Ed25519 keys).

Binance signs "the query string concatenated without separator to the HTTP body", after
percent-encoding (Binance REST docs, "SIGNED Endpoint Examples for POST /api/v3/order"). The client
always sends every parameter in one place (query string for GET/DELETE, form body for POST/PUT), so
the payload is exactly the urlencoded parameter string in insertion order, and ``signature`` is
appended last:

- HMAC-SHA256: lowercase hex of ``HMAC(secret, payload)``;
- Ed25519: base64 of the 64-byte signature, percent-encoded when placed in the request.

Secrets never leave this module in readable form: ``repr`` of a signer or of :class:`Credentials`
shows only a short fingerprint, and :func:`redact` scrubs keys and signatures from any text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

_SIG_RE = re.compile(r"(signature=)[^&\s'\"]+", re.IGNORECASE)
_LISTEN_RE = re.compile(r"(listenKey=|/ws/)([A-Za-z0-9]{16,})")


def _fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def encode_params(params: dict[str, Any]) -> str:
    """``k=v&k=v`` in insertion order, percent-encoded as Binance expects (``None`` values dropped).

    >>> encode_params({"symbol": "LTCBTC", "quantity": 1, "reduceOnly": True})
    'symbol=LTCBTC&quantity=1&reduceOnly=true'
    """
    return urlencode([(k, _fmt_value(v)) for k, v in params.items() if v is not None], quote_via=quote)


class Signer(Protocol):
    """Signs a payload string; returns the signature exactly as it goes in the request (encoded)."""

    kind: str

    def sign(self, payload: str) -> str: ...


def _fingerprint(secret: bytes) -> str:
    return hashlib.sha256(secret).hexdigest()[:8]


class HmacSigner:
    """HMAC-SHA256 over the payload with the API secret; hex digest (Binance "HMAC keys")."""

    kind = "hmac"
    __slots__ = ("_fp", "_key")

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("empty API secret")
        self._key = secret.encode()
        self._fp = _fingerprint(self._key)

    def sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"HmacSigner(secret=<redacted {self._fp}>)"

    __str__ = __repr__


class Ed25519Signer:
    """Ed25519 signature of the payload, base64 then percent-encoded (Binance "Ed25519 keys").

    ``private_key`` is a PEM (PKCS#8, as Binance's key generator writes) or the base64 of the raw
    32-byte seed. ``passphrase`` decrypts an encrypted PEM.
    """

    kind = "ed25519"
    __slots__ = ("_fp", "_key")

    def __init__(self, private_key: str | bytes, passphrase: str | None = None) -> None:
        raw = private_key.encode() if isinstance(private_key, str) else private_key
        try:
            if b"PRIVATE KEY" in raw:
                key = serialization.load_pem_private_key(raw, passphrase.encode() if passphrase else None)
            else:
                key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(raw.strip(), validate=True))
        except Exception as e:  # a broken key must not echo the key material
            raise ValueError(f"not a usable Ed25519 private key ({type(e).__name__})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"private key is {type(key).__name__}, not Ed25519")
        self._key = key
        pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self._fp = _fingerprint(pub)

    def sign_raw(self, payload: str) -> str:
        """The base64 signature before percent-encoding."""
        return base64.b64encode(self._key.sign(payload.encode())).decode()

    def sign(self, payload: str) -> str:
        return quote(self.sign_raw(payload), safe="")

    def public_key_pem(self) -> str:
        """The public key (what one registers with Binance), PEM."""
        return (
            self._key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def __repr__(self) -> str:
        return f"Ed25519Signer(public=<{self._fp}>)"

    __str__ = __repr__


class Credentials:
    """An API key and its signer. ``repr``/``str`` never show the key or the secret."""

    __slots__ = ("api_key", "signer")

    def __init__(self, api_key: str, signer: Signer) -> None:
        if not api_key:
            raise ValueError("empty API key")
        self.api_key = api_key
        self.signer = signer

    @classmethod
    def hmac(cls, api_key: str, api_secret: str) -> Credentials:
        return cls(api_key, HmacSigner(api_secret))

    @classmethod
    def ed25519(cls, api_key: str, private_key: str | bytes, passphrase: str | None = None) -> Credentials:
        return cls(api_key, Ed25519Signer(private_key, passphrase))

    @classmethod
    def from_secret(cls, api_key: str, secret: str) -> Credentials:
        """Ed25519 when ``secret`` is a PEM private key, else HMAC."""
        if "PRIVATE KEY" in secret:
            return cls.ed25519(api_key, secret)
        return cls.hmac(api_key, secret)

    def signed_payload(self, params: dict[str, Any]) -> str:
        """The encoded parameters with ``&signature=...`` appended (ready to send)."""
        payload = encode_params(params)
        return f"{payload}&signature={self.signer.sign(payload)}"

    def ws_api_signature(self, params: dict[str, Any]) -> str:
        """The WebSocket API signature of ``params``: over ``k=v`` pairs sorted by name and joined by
        ``&`` (every parameter but ``signature``); hex for HMAC, plain base64 for Ed25519 (JSON carries
        it, so it is not percent-encoded)."""
        payload = "&".join(f"{k}={_fmt_value(v)}" for k, v in sorted(params.items()) if v is not None)
        raw = getattr(self.signer, "sign_raw", None)
        return raw(payload) if raw is not None else self.signer.sign(payload)

    def redact(self, text: str) -> str:
        return redact(text, self.api_key)

    def __repr__(self) -> str:
        return f"Credentials(api_key={mask(self.api_key)}, signer={self.signer!r})"

    __str__ = __repr__


def mask(secret: str) -> str:
    """``'vmPU…h8A'``-style mask that keeps 4 leading and 3 trailing characters of long secrets."""
    if len(secret) <= 12:
        return "<redacted>"
    return f"{secret[:4]}…{secret[-3:]}"


def redact(text: str, *secrets: str) -> str:
    """``text`` with the given secrets, any ``signature=...`` value and listen keys masked."""
    for s in secrets:
        if s:
            text = text.replace(s, mask(s))
    text = _SIG_RE.sub(r"\1<redacted>", text)
    return _LISTEN_RE.sub(lambda m: m.group(1) + mask(m.group(2)), text)
