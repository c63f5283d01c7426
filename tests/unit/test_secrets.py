"""Credentials from the environment and from an owner-only secrets file; redaction in logs and reprs."""

from __future__ import annotations

import io
import logging
import os
import string

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from orderflow.adapters.binance.common.credentials import load_credentials
from orderflow.secrets import (
    SECRETS_FILE_ENV,
    RedactingFilter,
    SecretsError,
    install_redaction,
    redact,
)

KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
SIG = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
LISTEN = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"[:60]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("TESTX_", "BINANCE_")) or name == SECRETS_FILE_ENV:
            monkeypatch.delenv(name)


def _pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path, text: str | bytes, mode: int):
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    path.chmod(mode)
    return path


def test_environment_hmac(monkeypatch):
    monkeypatch.setenv("TESTX_API_KEY", KEY)
    monkeypatch.setenv("TESTX_API_SECRET", SECRET)
    creds = load_credentials("testx")
    assert creds.api_key == KEY and creds.signer.kind == "hmac"
    signed = creds.signed_payload({"symbol": "BTCUSDT", "timestamp": 1})
    assert signed.startswith("symbol=BTCUSDT&timestamp=1&signature=") and len(signed.rsplit("=", 1)[1]) == 64


def test_environment_ed25519_key_file_and_its_mode(monkeypatch, tmp_path):
    key_file = _write(tmp_path / "key.pem", _pem(), 0o600)
    monkeypatch.setenv("TESTX_API_KEY", KEY)
    monkeypatch.setenv("TESTX_PRIVATE_KEY_PATH", str(key_file))
    assert load_credentials("TESTX").signer.kind == "ed25519"
    key_file.chmod(0o644)
    with pytest.raises(SecretsError, match=r"key\.pem has mode 0644"):
        load_credentials("TESTX")


def test_missing_credentials_say_what_to_set():
    with pytest.raises(SecretsError, match="BINANCE_API_KEY and BINANCE_API_SECRET"):
        load_credentials()


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_secrets_file(tmp_path, monkeypatch, mode):
    f = _write(tmp_path / "secrets.toml", f'[binance]\napi_key = "{KEY}"\napi_secret = "{SECRET}"\n', mode)
    creds = load_credentials(secrets_file=f)
    assert creds.api_key == KEY and creds.signer.kind == "hmac"
    monkeypatch.setenv(SECRETS_FILE_ENV, str(f))  # found through the environment too
    assert load_credentials("BINANCE").api_key == KEY


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o666])
def test_secrets_file_readable_by_others_is_refused(tmp_path, mode):
    f = _write(tmp_path / "secrets.toml", f'[binance]\napi_key = "{KEY}"\napi_secret = "{SECRET}"\n', mode)
    with pytest.raises(SecretsError) as err:
        load_credentials(secrets_file=f)
    msg = str(err.value)
    assert str(f) in msg and f"{mode:04o}" in msg and "chmod 600" in msg
    assert KEY not in msg and SECRET not in msg


def test_secrets_file_errors_do_not_echo_contents(tmp_path):
    bad = _write(tmp_path / "bad.toml", f'[binance\napi_key = "{KEY}"', 0o600)
    with pytest.raises(SecretsError, match="not valid TOML") as err:
        load_credentials(secrets_file=bad)
    assert KEY not in str(err.value)
    other = _write(tmp_path / "other.toml", f'[binance]\napi_key = "{KEY}"\napi_sekret = "x"\n', 0o600)
    with pytest.raises(SecretsError, match="unknown key"):
        load_credentials(secrets_file=other)
    with pytest.raises(SecretsError, match=r"no \[kraken\] table"):
        load_credentials("KRAKEN", secrets_file=other)
    with pytest.raises(SecretsError, match="does not exist"):
        load_credentials(secrets_file=tmp_path / "absent.toml")


def test_repr_of_credentials_hides_key_and_secret(monkeypatch):
    monkeypatch.setenv("TESTX_API_KEY", KEY)
    monkeypatch.setenv("TESTX_API_SECRET", SECRET)
    creds = load_credentials("TESTX")
    for text in (repr(creds), str(creds), repr(creds.signer), f"{creds}"):
        assert KEY not in text and SECRET not in text


def test_redaction_in_log_output():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    flt = install_redaction(KEY, SECRET)
    log = logging.getLogger("orderflow.test.redaction")  # a child logger: reaches only the handlers
    try:
        log.warning("key=%s secret=%s url=/fapi/v1/order?symbol=BTCUSDT&signature=%s", KEY, SECRET, SIG)
        log.warning("user stream wss://fstream.binance.com/ws/%s and {'listenKey': '%s'}", LISTEN, LISTEN)
        try:
            raise RuntimeError(f"auth failed for {KEY} with {SECRET}")
        except RuntimeError:
            log.exception("request failed")
    finally:
        root.removeHandler(handler)
        for target in (root, *root.handlers):  # leave other tests' logging as it was
            target.removeFilter(flt)
    out = stream.getvalue()
    for s in (KEY, SECRET, SIG, LISTEN):
        assert s not in out
    assert out.count("<redacted") >= 6 and "request failed" in out and "RuntimeError" in out
    assert "symbol=BTCUSDT" in out  # the rest of the message survives


def test_filter_masks_its_own_secrets_and_keeps_the_record():
    rec = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s", ("abcdefghijkl",), None)
    assert RedactingFilter("abcdefghijkl").filter(rec) is True
    assert "abcdefghijkl" not in rec.getMessage() and rec.getMessage().startswith("token <redacted:")


def test_redact_patterns():
    text = (
        f"GET /api/v3/order?timestamp=1&signature={SIG} X-MBX-APIKEY: {KEY} "
        f'{{"listenKey":"{LISTEN}"}} listenKey={LISTEN} POST body signature=abc%2Bdef%3D'
    )
    out = redact(text)
    assert SIG not in out and KEY not in out and LISTEN not in out and "abc%2Bdef" not in out
    assert out.startswith("GET /api/v3/order?timestamp=1&signature=<redacted>")
    assert redact("nothing secret here: price=100.5 qty=0.3") == "nothing secret here: price=100.5 qty=0.3"


@pytest.mark.slow
@given(
    secret=st.text(string.ascii_letters + string.digits + "+/=_-", min_size=16, max_size=80),
    before=st.text(max_size=40),
    after=st.text(max_size=40),
)
def test_redact_removes_any_given_secret(secret, before, after):
    out = redact(f"{before}{secret}{after}{secret}", secret)
    assert secret not in out
