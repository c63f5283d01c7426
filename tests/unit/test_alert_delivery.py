"""The alerter's delivery settings, URL checks, secrets, endpoint overrides and digests (no network; the
sends to real loopback servers are in tests/integration/test_alert_delivery_servers.py)."""

from __future__ import annotations

import re

import pydantic
import pytest
from apprise import Apprise, NotifyType

from orderflow.alerts.delivery import (
    Deliverer,
    RetryConfig,
    check_channel_url,
    compose_digest,
    notify_type,
    url_secrets,
)
from orderflow.alerts.endpoints import current_endpoints, reset_endpoints, set_endpoints
from orderflow.alerts.store import AlertStore, Due


@pytest.fixture(autouse=True)
def _endpoints():
    yield
    reset_endpoints()


# -- RetryConfig --------------------------------------------------------------------------------------
def test_retry_defaults():
    r = RetryConfig()
    assert (r.attempts, r.backoff_s, r.max_backoff_s, r.timeout_s) == (8, 2.0, 300.0, 10.0)


@pytest.mark.parametrize(
    ("tries", "delay"),
    [
        (1, 2.0),  # after the first failure: backoff_s
        (2, 4.0),  # doubling
        (3, 8.0),
        (8, 256.0),  # 2 * 2**7
        (9, 300.0),  # 512 capped at max_backoff_s
        (40, 300.0),
    ],
)
def test_retry_delay_doubles_up_to_the_cap(tries, delay):
    assert RetryConfig().delay_s(tries) == delay


def test_retry_config_is_strict_and_frozen():
    with pytest.raises(pydantic.ValidationError, match="attemps"):
        RetryConfig(attemps=3)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError, match=re.escape("max_backoff_s 1.0 is below backoff_s 5.0")):
        RetryConfig(backoff_s=5.0, max_backoff_s=1.0)
    with pytest.raises(pydantic.ValidationError):
        RetryConfig(attempts=0)
    with pytest.raises(pydantic.ValidationError):
        RetryConfig().attempts = 3  # type: ignore[misc]


# -- channel URLs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "mailto://alerts:pw123456@127.0.0.1:2525?mode=insecure&to=ops@example.com&from=al@example.com",
        "json://127.0.0.1:8080/hook?+X-Orderflow=1",
        "jsons://hooks.example.com/alert",
        "twilio://AC0123abcd:0123456789abcdef@15550001111/15552223333",
        "tgram://123456789:AAHsecretsecret/987654",
    ],
)
def test_good_channel_urls_pass(url):
    check_channel_url("c", url)


@pytest.mark.parametrize(
    ("url", "shown", "secret"),
    [
        # a token that does not match Twilio's shape: apprise's own message quotes it; it is masked
        ("twilio://AC0123abcd:bad-token!@15550001111/15552223333", "twilio://15550001111", "bad-token!"),
        ("nonsense://user:hunter2hunter2@host", "nonsense://host", "hunter2hunter2"),
        ("mailto://", "mailto://", None),
        ("json://", "json://", None),
        ("not a url", "(no scheme)", None),
        ("", "(no scheme)", None),
    ],
)
def test_malformed_channel_url_is_one_line_without_its_secret(url, shown, secret):
    with pytest.raises(ValueError) as err:
        check_channel_url("pager", url)
    text = str(err.value)
    assert text.startswith(f"channel 'pager': malformed URL {shown}"), text
    assert "\n" not in text
    if secret:
        assert secret not in text


def test_telegram_bot_token_is_never_shown():
    token = "AAHtokentokentoken-without-its-bot-id"
    # a token apprise refuses (no "<bot id>:" prefix): the message names the channel, not the token
    with pytest.raises(ValueError) as err:
        check_channel_url("tg", f"tgram://{token}/42")
    assert token not in str(err.value)
    assert str(err.value).startswith("channel 'tg': malformed URL tgram://<redacted:")


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("mailto://user:p%40ss-word@mail.example.com", {"p%40ss-word", "p@ss-word"}),
        ("twilio://AC01:0123456789abcdef@15550001111/1555", {"0123456789abcdef"}),
        ("tgram://123456789:AAHsecret/42", {"123456789:AAHsecret"}),
        (
            "json://h/x?+Authorization=Bearer%20tok123456&+X-Plain=visible",
            {"Bearer tok123456", "tok123456", "Bearer%20tok123456"},  # as written and decoded
        ),
        ("json://h/x?token=abcdef123", {"abcdef123"}),
        ("json://host/path", set()),
    ],
)
def test_url_secrets(url, secrets):
    assert set(url_secrets(url)) == secrets


# -- endpoints ------------------------------------------------------------------------------------------
def test_set_endpoints_points_the_plugins_elsewhere():
    set_endpoints({"telegram": "http://127.0.0.1:8081/", "twilio": "http://127.0.0.1:9090"})
    tg = Apprise.instantiate("tgram://123456789:AAHtoken/42")
    tw = Apprise.instantiate("twilio://AC01:0123456789abcdef@15550001111/15552223333")
    assert tg is not None and tw is not None
    assert tg.notify_url == "http://127.0.0.1:8081/bot"  # the plugin appends <token>/sendMessage
    assert (
        tw.notify_sms_url.format(sid="AC01") == "http://127.0.0.1:9090/2010-04-01/Accounts/AC01/Messages.json"
    )
    assert (
        tw.notify_call_url.format(sid="AC01") == "http://127.0.0.1:9090/2010-04-01/Accounts/AC01/Calls.json"
    )
    reset_endpoints()
    assert current_endpoints() == {
        "telegram": "https://api.telegram.org/bot",
        "twilio": "https://api.twilio.com/2010-04-01/Accounts/{sid}/Messages.json",
    }


@pytest.mark.parametrize(
    ("endpoints", "message"),
    [
        ({"slack": "http://127.0.0.1:1"}, "endpoint 'slack': unknown service"),
        ({"telegram": "127.0.0.1:8081"}, "endpoint 'telegram': '127.0.0.1:8081' is not an http(s) base URL"),
        ({"twilio": "ftp://127.0.0.1"}, "endpoint 'twilio': 'ftp://127.0.0.1' is not an http(s) base URL"),
        ({"twilio": "http://h?x=1"}, "endpoint 'twilio': 'http://h?x=1' is not an http(s) base URL"),
    ],
)
def test_bad_endpoints_are_refused_and_nothing_changes(endpoints, message):
    before = current_endpoints()
    with pytest.raises(ValueError, match=re.escape(message)):
        set_endpoints({"telegram": "http://127.0.0.1:5555", **endpoints})
    assert current_endpoints() == before


# -- digests and message types ----------------------------------------------------------------------------
def _due(i: int, title: str, body: str, severity: str = "warning") -> Due:
    return Due(i, 100 + i, "sms", 0, title, body, severity, "trigger")


def test_digest_lists_titles_then_joins_bodies():
    title, body = compose_digest([_due(1, "Drawdown 3%", "equity 9700"), _due(2, "Feed gap", "BTCUSDT 12 s")])
    assert title == "2 alerts"
    assert body == "- Drawdown 3%\n- Feed gap\n\nDrawdown 3%\nequity 9700\n\nFeed gap\nBTCUSDT 12 s"
    assert compose_digest([_due(1, "One", "only")]) == ("One", "only")


@pytest.mark.parametrize(
    ("severity", "kind", "expected"),
    [
        ("critical", "trigger", NotifyType.FAILURE),
        ("warning", "escalation", NotifyType.WARNING),
        ("info", "report", NotifyType.INFO),
        ("critical", "resolved", NotifyType.SUCCESS),
        ("whatever", "trigger", NotifyType.INFO),
    ],
)
def test_notify_type(severity, kind, expected):
    assert notify_type(severity, kind) == expected


# -- Deliverer construction ---------------------------------------------------------------------------
def test_deliverer_checks_its_channels(tmp_path):
    store = AlertStore.open(f"sqlite:///{tmp_path / 'j.sqlite'}")
    try:
        with pytest.raises(ValueError, match="channel 'sms': malformed URL twilio://15550001111"):
            Deliverer(store, {"sms": "twilio://AC01:bad-token!@15550001111/1555"}, RetryConfig())
        with pytest.raises(ValueError, match="digest_s names channel 'mail', which is not configured"):
            Deliverer(store, {"hook": "json://127.0.0.1:1/x"}, RetryConfig(), digest_s={"mail": 60})
        with pytest.raises(ValueError, match="channel 'hook': digest_s -1 must be >= 0"):
            Deliverer(store, {"hook": "json://127.0.0.1:1/x"}, RetryConfig(), digest_s={"hook": -1})
        d = Deliverer(store, {"hook": "json://127.0.0.1:1/x"}, RetryConfig())
        assert d.channels == ("hook",)
        assert d.stop(0.1)  # never started: nothing to wait for
    finally:
        store.close()
