"""Alert delivery end to end: apprise sends over real sockets to the loopback servers of
tests/support/alert_servers.py (SMTP with AUTH, a JSON webhook, a Twilio fake), from a Deliverer over a
temporary SQLite journal. Apprise finds the servers by URL (``mailto://...@127.0.0.1:PORT``,
``json://127.0.0.1:PORT``); Twilio's API base is pointed at its fake with
``set_endpoints({"twilio": server.base})``, which sets the class attribute ``NotifyTwilio.notify_sms_url``
in this process (reset after each test)."""

from __future__ import annotations

import logging
import time

import pytest

from orderflow.alerts.delivery import Deliverer, RetryConfig, send_once
from orderflow.alerts.endpoints import reset_endpoints, set_endpoints
from orderflow.alerts.store import AlertStore, Message
from support.alert_servers import SmtpServer, TwilioServer, WebhookServer, free_port, wait_until

FAST = RetryConfig(attempts=3, backoff_s=0.2, max_backoff_s=1.0, timeout_s=1.0)


@pytest.fixture()
def journal(tmp_path):
    store = AlertStore.open(str(tmp_path / "j.sqlite"))
    yield store
    store.close()


@pytest.fixture()
def smtp():
    with SmtpServer() as server:
        yield server


@pytest.fixture()
def hook():
    with WebhookServer() as server:
        yield server


@pytest.fixture()
def twilio():
    with TwilioServer() as server:
        set_endpoints({"twilio": server.base})
        yield server
    reset_endpoints()


@pytest.fixture()
def deliverers():
    """Deliverers a test starts; stopped at the end even when the test fails."""
    made: list[Deliverer] = []
    yield made
    for d in made:
        d.stop(2.0)


def _start(made: list[Deliverer], *args, **kwargs) -> Deliverer:
    d = Deliverer(*args, **kwargs)
    made.append(d)
    d.start()
    return d


def _record(store: AlertStore, channels, title="Engine down", body="no heartbeat", severity="critical"):
    msg = Message("trigger", "engine_down", severity, f"engine_down:{title}", title, body, {"age_s": 30})
    return store.record(msg, list(channels), time.time_ns())


def _delivery(store: AlertStore, alert_id: int, channel: str) -> dict:
    (row,) = [a for a in store.alerts() if a["id"] == alert_id]
    (d,) = [d for d in row["deliveries"] if d["channel"] == channel]
    return d


def _settled(store: AlertStore, alert_id: int, channel: str, state: str, timeout: float = 5.0) -> dict:
    assert wait_until(lambda: _delivery(store, alert_id, channel)["state"] == state, timeout), _delivery(
        store, alert_id, channel
    )
    return _delivery(store, alert_id, channel)


# -- email ------------------------------------------------------------------------------------------
def test_email_arrives_with_subject_and_body(journal, deliverers, smtp):
    d = _start(deliverers, journal, {"mail": smtp.url(to="ops@example.com")}, FAST)
    alert = _record(journal, ["mail"], "Engine down", "no heartbeat for 30 s\nrun 7")
    d.kick()
    (mail,) = smtp.wait(1)
    assert mail.subject == "Engine down"
    assert mail.text.replace("\r\n", "\n").strip() == "no heartbeat for 30 s\nrun 7"
    assert (mail.sender, mail.recipients) == ("alerter@example.com", ("ops@example.com",))
    assert mail.login == "alerts"
    assert _settled(journal, alert, "mail", "sent") == {
        "channel": "mail",
        "state": "sent",
        "attempts": 1,
        "last_error": None,
    }


def test_wrong_smtp_password_is_refused_retried_then_failed_unleaked(journal, deliverers, smtp, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "wrong-password-4711"
    d = _start(deliverers, journal, {"mail": smtp.url(password=secret)}, FAST)
    alert = _record(journal, ["mail"])
    d.kick()
    row = _settled(journal, alert, "mail", "failed")
    assert row["attempts"] == FAST.attempts
    # smtplib tries AUTH PLAIN then LOGIN on each attempt; the server refuses both
    assert smtp.failed_logins == 2 * FAST.attempts
    assert smtp.messages == []
    assert "535" in row["last_error"] and "Authentication credentials invalid" in row["last_error"]
    ours = [r for r in caplog.records if r.name == "orderflow.alerts.delivery"]
    retries = [r for r in ours if r.levelno == logging.WARNING]
    assert [f"try {i} of 3 failed" in r.getMessage() for i, r in enumerate(retries, 1)] == [True, True]
    assert "channel 'mail'" in retries[0].getMessage() and f"alert {alert}" in retries[0].getMessage()
    assert secret not in row["last_error"]
    assert all(secret not in r.getMessage() for r in caplog.records)


def test_smtp_down_then_up_is_retried_and_delivered(journal, deliverers, smtp):
    smtp.down()
    retry = RetryConfig(attempts=5, backoff_s=0.3, timeout_s=1.0)
    d = _start(deliverers, journal, {"mail": smtp.url()}, retry)
    alert = _record(journal, ["mail"])
    d.kick()
    assert wait_until(lambda: _delivery(journal, alert, "mail")["attempts"] >= 1, 3.0)
    assert "Connection refused" in _delivery(journal, alert, "mail")["last_error"]
    smtp.up()
    row = _settled(journal, alert, "mail", "sent")
    assert row["attempts"] >= 2 and row["last_error"] is None
    assert [m.subject for m in smtp.messages] == ["Engine down"]


# -- webhook ------------------------------------------------------------------------------------------
def test_webhook_json_with_custom_header(journal, deliverers, hook):
    url = hook.url("/alerts", headers={"X-Orderflow-Channel": "ops", "Authorization": "Bearer hook-token-99"})
    d = _start(deliverers, journal, {"hook": url}, FAST)
    _record(journal, ["hook"], "Drawdown 3%", "equity 9700 USDT", severity="warning")
    d.kick()
    (body,) = hook.wait(1)
    req = hook.requests.items()[0]
    assert (req.method, req.path) == ("POST", "/alerts")
    assert req.headers["X-Orderflow-Channel"] == "ops"
    assert req.headers["Authorization"] == "Bearer hook-token-99"
    assert req.headers["Content-Type"] == "application/json"
    assert (body["title"], body["message"], body["type"]) == ("Drawdown 3%", "equity 9700 USDT", "warning")


def test_webhook_500_is_retried_with_doubling_backoff_until_it_recovers(journal, deliverers, hook):
    hook.status = 500
    retry = RetryConfig(attempts=6, backoff_s=0.15, max_backoff_s=2.0, timeout_s=1.0)
    d = _start(deliverers, journal, {"hook": hook.url()}, retry)
    alert = _record(journal, ["hook"])
    d.kick()
    assert len(hook.requests.wait(3, 5.0)) >= 3
    assert "error=500" in _delivery(journal, alert, "hook")["last_error"]
    t = [r.at for r in hook.requests.items()[:3]]
    assert t[1] - t[0] >= 0.15 and t[2] - t[1] >= 0.3  # 0.15 s, then doubled
    assert t[2] - t[1] > 1.5 * (t[1] - t[0]) - 0.1
    hook.status = 200
    row = _settled(journal, alert, "hook", "sent")
    assert row["last_error"] is None and row["attempts"] == len(hook.requests.items()) >= 4
    assert len(hook.messages) == 1


def test_a_hang_longer_than_the_timeout_fails_within_it(journal, deliverers, hook):
    hook.hold_s = 5.0
    retry = RetryConfig(attempts=2, backoff_s=5.0, timeout_s=0.5)
    d = _start(deliverers, journal, {"hook": hook.url()}, retry)
    alert = _record(journal, ["hook"])
    t0 = time.monotonic()
    d.kick()
    assert wait_until(lambda: _delivery(journal, alert, "hook")["attempts"] == 1, 3.0)
    took = time.monotonic() - t0
    assert 0.5 <= took < 1.5, took
    row = _delivery(journal, alert, "hook")
    assert row["state"] == "pending" and "Read timed out" in row["last_error"]


def test_attempts_exhausted_leaves_the_delivery_failed_with_its_error(journal, deliverers, hook):
    hook.status = 500
    d = _start(deliverers, journal, {"hook": hook.url()}, FAST)
    alert = _record(journal, ["hook"])
    d.kick()
    row = _settled(journal, alert, "hook", "failed")
    assert row["attempts"] == 3
    assert "Internal server error" in row["last_error"] and "error=500" in row["last_error"]
    time.sleep(0.3)
    assert len(hook.requests.items()) == 3  # no try after the last


# -- Twilio -------------------------------------------------------------------------------------------------
def test_twilio_sms_arrives_with_to_from_body(journal, deliverers, twilio):
    url = twilio.url(sender="+15550001111", to=("+15552223333",))
    d = _start(deliverers, journal, {"sms": url}, FAST)
    alert = _record(journal, ["sms"], "Kill switch", "trading halted")
    d.kick()
    (msg,) = twilio.wait(1)
    assert (msg["to"], msg["from"], msg["status"]) == ("+15552223333", "+15550001111", "queued")
    assert msg["body"].replace("\r\n", "\n") == "Kill switch\ntrading halted"  # SMS folds the title in
    assert msg["sid"].startswith("SM") and msg["account_sid"] == twilio.account_sid
    req = twilio.requests.items()[0]
    assert req.path == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    assert req.headers["Authorization"].startswith("Basic ")
    assert _settled(journal, alert, "sms", "sent")["attempts"] == 1
    assert twilio.failed_auth == 0


def test_twilio_wrong_token_gets_401_and_the_token_stays_secret(journal, deliverers, twilio, caplog):
    caplog.set_level(logging.DEBUG)
    token = "0badc0de0badc0de0badc0de0badc0de"
    d = _start(deliverers, journal, {"sms": twilio.url(token=token)}, FAST)
    alert = _record(journal, ["sms"])
    d.kick()
    row = _settled(journal, alert, "sms", "failed")
    assert twilio.failed_auth == 3 and twilio.messages == []
    assert "Authenticate" in row["last_error"] and "20003" in row["last_error"]
    assert token not in row["last_error"]
    assert all(token not in r.getMessage() for r in caplog.records)


def test_telegram_token_is_masked_in_apprise_debug_lines_and_the_error(caplog):
    """apprise's connection error names the request path, /bot<token>/sendMessage: masked."""
    token = "123456789:AAHmaskmemaskmemaskme"
    set_endpoints({"telegram": f"http://127.0.0.1:{free_port()}"})  # nothing listens there
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    keep = Keep(logging.DEBUG)
    logging.getLogger("apprise").addHandler(keep)
    try:
        from orderflow.alerts.delivery import check_channel_url, url_secrets

        url = f"tgram://{token}/42"
        check_channel_url("tg", url)
        ok, err = send_once(url, "t", "b", timeout_s=1.0, secrets=url_secrets(url))
    finally:
        logging.getLogger("apprise").removeHandler(keep)
        reset_endpoints()
    assert not ok and "Connection refused" in err and "/bot<redacted:" in err
    assert token not in err
    assert any("/bot<redacted:" in line for line in seen)
    assert all(token not in line for line in seen)


# -- isolation, restart, polling ------------------------------------------------------------------------
def test_a_hung_channel_does_not_delay_a_healthy_one(journal, deliverers, hook, smtp):
    hook.hold_s = 5.0
    retry = RetryConfig(attempts=3, backoff_s=1.0, timeout_s=3.0)
    d = _start(deliverers, journal, {"hook": hook.url(), "mail": smtp.url()}, retry)
    _record(journal, ["hook"], "first")
    d.kick()
    assert hook.requests.wait(1, 2.0), "the hook channel never tried"  # it now hangs for timeout_s
    alert = _record(journal, ["hook", "mail"])
    t0 = time.monotonic()
    d.kick()
    assert smtp.wait(1, 2.0), "the healthy channel waited for the hung one"
    took = time.monotonic() - t0
    assert took < 2.0, took
    assert _settled(journal, alert, "mail", "sent", 1.0)["attempts"] == 1
    assert len(hook.requests.items()) == 1  # still in its first send
    assert _delivery(journal, alert, "hook") == {
        "channel": "hook",
        "state": "pending",
        "attempts": 0,
        "last_error": None,
    }


def test_pending_deliveries_left_by_a_crashed_deliverer_are_sent_once(deliverers, tmp_path, hook):
    path = str(tmp_path / "j.sqlite")
    first = AlertStore.open(path)
    hook.status = 500
    retry = RetryConfig(attempts=5, backoff_s=0.3, timeout_s=1.0)
    a = _start(deliverers, first, {"hook": hook.url()}, retry)
    tried = _record(first, ["hook"], "tried once")
    a.kick()
    assert wait_until(lambda: _delivery(first, tried, "hook")["attempts"] == 1, 3.0)
    assert a.stop(2.0)
    never = _record(first, ["hook"], "never tried")  # journaled while no alerter runs
    first.close()
    hook.status = 200
    time.sleep(0.4)  # past the 0.3 s retry the stopped deliverer had planned
    assert len(hook.requests.items()) == 1  # the stopped one sends nothing more

    second = AlertStore.open(path)
    try:
        _start(deliverers, second, {"hook": hook.url()}, retry)
        assert _settled(second, tried, "hook", "sent")["attempts"] == 2
        assert _settled(second, never, "hook", "sent")["attempts"] == 1
        time.sleep(0.3)
        assert sorted(m["title"] for m in hook.messages) == ["never tried", "tried once"]
    finally:
        deliverers[-1].stop(2.0)
        second.close()


def test_a_delivery_recorded_without_a_kick_is_found_by_polling(journal, deliverers, hook):
    _start(deliverers, journal, {"hook": hook.url()}, FAST, poll_s=0.3)
    time.sleep(0.1)  # the worker has polled once and sleeps
    _record(journal, ["hook"], "from another process")
    assert [m["title"] for m in hook.wait(1, 1.5)] == ["from another process"]


# -- digests and send_test ----------------------------------------------------------------------------------
def test_digest_batches_due_messages_at_most_every_digest_s(journal, deliverers, hook):
    ids = [_record(journal, ["hook"], f"alert {i}", f"body {i}") for i in range(3)]
    d = _start(deliverers, journal, {"hook": hook.url()}, FAST, digest_s={"hook": 0.6})
    (first,) = hook.wait(1)
    assert first["title"] == "3 alerts"
    assert first["message"].startswith("- alert 0\n- alert 1\n- alert 2\n\nalert 0\nbody 0")
    assert all(_settled(journal, i, "hook", "sent")["attempts"] == 1 for i in ids)
    t_first = hook.requests.items()[0].at
    more = [_record(journal, ["hook"], f"late {i}") for i in range(2)]
    d.kick()
    assert len(hook.wait(2, 3.0)) == 2
    second = hook.requests.items()[1]
    assert second.json()["title"] == "2 alerts"
    assert second.at - t_first >= 0.55  # held back to the digest interval despite the kick
    assert all(_settled(journal, i, "hook", "sent")["attempts"] == 1 for i in more)


def test_send_test_reports_each_channel(journal, hook, smtp, twilio):
    hook.status = 500
    dead = f"json://127.0.0.1:{free_port()}/x"
    d = Deliverer(
        journal,
        {"mail": smtp.url(), "hook": hook.url(), "sms": twilio.url(), "dead": dead},
        RetryConfig(timeout_s=1.0),
    )
    t0 = time.monotonic()
    out = d.send_test("orderflow test", "if you read this, the channel works")
    assert time.monotonic() - t0 < 3.0
    assert out["mail"] == (True, "") and out["sms"] == (True, "")
    assert out["hook"][0] is False and "error=500" in out["hook"][1]
    assert out["dead"][0] is False and "Connection refused" in out["dead"][1]
    assert [m.subject for m in smtp.messages] == ["orderflow test"]
    assert len(twilio.messages) == 1
    assert journal.alerts() == []  # a test send is not journaled here
