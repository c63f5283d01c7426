"""Signing of Binance SIGNED requests, secret redaction, and error-code mapping."""

from __future__ import annotations

import base64
from urllib.parse import unquote

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orderflow.adapters.binance.common import errors as E
from orderflow.adapters.binance.common.signing import (
    Credentials,
    Ed25519Signer,
    HmacSigner,
    encode_params,
    redact,
)
from orderflow.adapters.binance.trading.decode import decode_user_event

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
QUERY = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    "&recvWindow=5000&timestamp=1499827319559"
)
PARAMS = {
    "symbol": "LTCBTC",
    "side": "BUY",
    "type": "LIMIT",
    "timeInForce": "GTC",
    "quantity": 1,
    "price": "0.1",
    "recvWindow": 5000,
    "timestamp": 1499827319559,
}


def test_hmac_matches_binance_documented_example():
    assert (
        HmacSigner(SECRET).sign(QUERY) == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    )


def test_encode_params_and_signed_payload_match_documented_request():
    creds = Credentials.hmac(API_KEY, SECRET)
    assert encode_params(PARAMS) == QUERY
    assert (
        creds.signed_payload(PARAMS)
        == QUERY + "&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    )


def test_non_ascii_symbol_is_percent_encoded_before_signing():
    p = dict(PARAMS, symbol="１２３４５６")
    payload = encode_params(p)
    assert payload.startswith("symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY")
    assert (
        HmacSigner(SECRET).sign(payload) == "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"
    )


def test_booleans_and_none_are_encoded_as_binance_expects():
    assert (
        encode_params({"reduceOnly": True, "x": None, "closePosition": False})
        == "reduceOnly=true&closePosition=false"
    )


def test_ed25519_signature_verifies_and_is_url_encoded():
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    signer = Ed25519Signer(pem)
    payload = (
        "symbol=BTCUSDT&side=SELL&type=LIMIT&timeInForce=GTC&quantity=1&price=0.2"
        "&timestamp=1668481559918&recvWindow=5000"
    )
    sig = signer.sign(payload)
    assert "+" not in sig and "/" not in sig and "=" not in sig  # percent-encoded base64
    raw = base64.b64decode(unquote(sig))
    assert len(raw) == 64
    key.public_key().verify(raw, payload.encode())  # raises if wrong
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    assert Ed25519Signer(base64.b64encode(seed)).sign_raw(payload) == signer.sign_raw(payload)
    assert Credentials.from_secret("k" * 64, pem).signer.kind == "ed25519"
    assert Credentials.from_secret("k" * 64, SECRET).signer.kind == "hmac"


def test_bad_ed25519_key_error_does_not_echo_the_key():
    with pytest.raises(ValueError) as ei:
        Ed25519Signer("-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----")
    assert "TOPSECRET" not in str(ei.value)


def test_repr_and_redact_hide_key_secret_and_signature():
    creds = Credentials.hmac(API_KEY, SECRET)
    text = repr(creds) + str(creds.signer)
    assert API_KEY not in text and SECRET not in text
    url = f"http://x/api/v3/order?{creds.signed_payload(PARAMS)} key={API_KEY}"
    red = redact(url, API_KEY)
    assert API_KEY not in red and "c8db5682" not in red and "signature=<redacted>" in red


@pytest.mark.parametrize(
    ("status", "code", "msg", "cls", "retryable"),
    [
        (400, -1021, "Timestamp for this request is outside of the recvWindow.", E.TimestampError, True),
        (400, -1022, "Signature for this request is not valid.", E.SignatureError, False),
        (400, -1121, "Invalid symbol.", E.UnknownSymbol, False),
        (400, -1013, "Filter failure: PRICE_FILTER", E.FilterError, False),
        (400, -4014, "Price not increased by tick size.", E.FilterError, False),
        (400, -4164, "Order's notional must be no smaller than 100", E.FilterError, False),
        (400, -2010, "Account has insufficient balance for requested action.", E.InsufficientBalance, False),
        (400, -2019, "Margin is insufficient.", E.InsufficientBalance, False),
        (400, -2010, "Order would immediately match and take.", E.PostOnlyRejected, False),
        (400, -2010, "Duplicate order sent.", E.DuplicateOrder, False),
        (400, -2011, "Unknown order sent.", E.UnknownOrder, False),
        (400, -2013, "Order does not exist.", E.UnknownOrder, False),
        (400, -1102, "Mandatory parameter 'quantity' was not sent.", E.BadRequest, False),
        (400, -1100, "Illegal characters found in parameter.", E.BadRequest, False),
        (503, -1007, "Timeout waiting for response from backend server.", E.ExchangeUnavailable, True),
    ],
)
def test_error_codes_map_to_typed_errors(status, code, msg, cls, retryable):
    err = E.error_from_response(status, code, msg, "/api/v3/order", "BTCUSDT")
    assert type(err) is cls
    assert err.retryable is retryable
    assert str(code) in str(err) and msg in str(err)


def test_filter_error_from_exchange_names_the_filter():
    err = E.error_from_response(400, -1013, "Filter failure: LOT_SIZE")
    assert isinstance(err, E.FilterError) and err.filter == "LOT_SIZE"
    assert E.error_from_response(400, -4014, "x").filter == "PRICE_FILTER"


@pytest.mark.parametrize(
    ("code", "msg", "name"),
    [
        (-4016, "Limit price can't be higher than 67850.3.", "PERCENT_PRICE"),
        (-4024, "Limit price can't be lower than 61387.8.", "PERCENT_PRICE"),
        (-4131, "The counterparty's best price does not meet the PERCENT_PRICE filter.", "PERCENT_PRICE"),
        (-2025, "Reach max open order limit.", "MAX_NUM_ORDERS"),
        (-4045, "Reach max stop order limit.", "MAX_NUM_ALGO_ORDERS"),
        (-1013, "Filter failure: PERCENT_PRICE_BY_SIDE", "PERCENT_PRICE_BY_SIDE"),
        (-1013, "Filter failure: MAX_NUM_ALGO_ORDERS", "MAX_NUM_ALGO_ORDERS"),
        (-1013, "Filter failure: MAX_POSITION", "MAX_POSITION"),
    ],
)
def test_every_filter_the_local_exchange_enforces_is_a_named_filter_error(code, msg, name):
    err = E.error_from_response(400, code, msg)
    assert isinstance(err, E.FilterError) and err.filter == name


def test_decode_spot_execution_report_cancel_uses_original_client_id():
    raw = (
        b'{"e":"executionReport","E":1499405658658,"s":"ETHBTC","c":"cancel-1","S":"BUY","o":"LIMIT",'
        b'"f":"GTC","q":"1.0","p":"0.1","P":"0","F":"0","g":-1,"C":"of-abc-1","x":"CANCELED","X":"CANCELED",'
        b'"r":"NONE","i":4293153,"l":"0","z":"0.4","L":"0","n":"0","N":null,"T":1499405658657,"t":-1,'
        b'"I":1,"w":false,"m":false,"M":false,"O":1,"Z":"0.04","Y":"0","Q":"0"}'
    )
    u = decode_user_event(raw, "binance-spot", 5, futures=False)
    assert u.client_order_id == "of-abc-1" and u.status.value == "CANCELED" and u.filled_qty == 0.4
    assert u.ts_event == 1499405658657 * 1_000_000 and u.filled_quote == pytest.approx(0.04)


def test_decode_futures_order_trade_update_partial_fill():
    raw = (
        b'{"e":"ORDER_TRADE_UPDATE","E":1568879465651,"T":1568879465650,"o":{"s":"BTCUSDT","c":"of-x-2",'
        b'"S":"SELL","o":"LIMIT","f":"GTX","q":"0.010","p":"7000","ap":"7000","sp":"0","x":"TRADE",'
        b'"X":"PARTIALLY_FILLED","i":8886774,"l":"0.004","z":"0.004","L":"7000","N":"USDT","n":"0.0056",'
        b'"T":1568879465650,"t":12,"b":"0","a":"0","m":true,"R":false,"wt":"CONTRACT_PRICE","ot":"LIMIT",'
        b'"ps":"BOTH","cp":false,"rp":"0"}}'
    )
    u = decode_user_event(raw, "binance-usdm", 5, futures=True)
    assert (u.client_order_id, u.last_fill_qty, u.last_fill_price, u.fee, u.fee_asset) == (
        "of-x-2",
        0.004,
        7000.0,
        0.0056,
        "USDT",
    )
    assert u.is_maker and u.execution.value == "TRADE" and u.status.value == "PARTIALLY_FILLED"


def test_websocket_api_signature_matches_binance_documented_examples():
    # "Signing request" examples of Binance's spot WebSocket API docs (HMAC): parameters sorted by name
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
    creds = Credentials.hmac(key, secret)
    ascii_params = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
                    "quantity": "0.01000000", "price": "52000.00", "recvWindow": 100,
                    "timestamp": 1645423376532, "apiKey": key}  # fmt: skip
    assert (
        creds.ws_api_signature(ascii_params)
        == "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24"
    )
    utf8_params = {**ascii_params, "symbol": "１２３４５６", "side": "BUY", "quantity": "1.00000000",
                   "price": "0.10000000", "recvWindow": 5000}  # fmt: skip
    assert (
        creds.ws_api_signature(utf8_params)
        == "b33892ae8e687c939f4468c6268ddd4c40ac1af18ad19a064864c47bae0752cd"
    )


def test_websocket_api_ed25519_signature_is_plain_base64_over_sorted_params():
    pk = Ed25519PrivateKey.generate()
    pem = pk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())  # fmt: skip
    creds = Credentials.ed25519("k" * 64, pem)
    sig = creds.ws_api_signature({"timestamp": 1747385641636, "apiKey": "k" * 64})
    raw = base64.b64decode(sig, validate=True)  # not percent-encoded: JSON carries it
    pk.public_key().verify(raw, f"apiKey={'k' * 64}&timestamp=1747385641636".encode())


def test_decode_websocket_api_wrapped_events_and_stream_end():
    wrapped = b'{"subscriptionId":0,"event":{"e":"eventStreamTerminated","E":1728973001334}}'
    assert decode_user_event(wrapped, "binance-spot", 1, False) == "eventStreamTerminated"
    assert (
        decode_user_event(b'{"event":{"e":"serverShutdown","E":1}}', "binance-spot", 1, False)
        == "serverShutdown"
    )


def test_decode_funding_fee_account_update_keeps_the_balance_change():
    # a USD-M cross-margin funding: ACCOUNT_UPDATE with reason FUNDING_FEE carries the balance only
    raw = (
        b'{"e":"ACCOUNT_UPDATE","E":1700002800001,"T":1700002800001,"a":{"m":"FUNDING_FEE",'
        b'"B":[{"a":"USDT","wb":"100002.48898118","cw":"100002.48898118","bc":"2.48898118"}]}}'
    )
    ev = decode_user_event(raw, "binance-usdm", 5, True)
    assert ev.reason == "FUNDING_FEE" and ev.positions == ()
    assert ev.changes == (("USDT", 2.48898118),)
    assert ev.balances[0].total == pytest.approx(100002.48898118)
