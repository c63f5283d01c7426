"""The alerter's Telegram bot against a fake Bot API server on loopback (real sockets, real journal file,
real kill-switch file): commands, authorised chats, the confirmed /kill, the durable offset, the single
poller lease, error backoff and token redaction. The fake itself is checked against the API's shapes
and against apprise's Telegram plugin, which the alerter's channels send through."""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from orderflow.alerts.store import AlertStore
from orderflow.alerts.telegram import (
    LEASE_KEY,
    OFFSET_KEY,
    TelegramBot,
    TelegramError,
    split_text,
)
from orderflow.engine.control import read_control, write_control
from support.fake_telegram import CONFLICT, DEFAULT_TOKEN, FakeTelegram

ME = 4242  # the operator's private chat
TEAM = -100777  # an authorised group
STRANGER = 9999


class FileCommands:
    """The service's side, for real: the kill switch is a file written with ``write_control``."""

    def __init__(self, kill_path: Path) -> None:
        self.kill_path = kill_path
        self.calls: list[tuple[str, ...]] = []
        self.positions_text = "BTCUSDT long 0.010 @ 64000.0"

    def status(self) -> str:
        self.calls.append(("status",))
        return f"engine running; kill switch {read_control(path=self.kill_path).mode}"

    def positions(self) -> str:
        self.calls.append(("positions",))
        return self.positions_text

    def report(self, period: str) -> str:
        self.calls.append(("report", period))
        return f"{period} report: pnl +12.50 USDT"

    def kill(self, mode: str, who: str, why: str) -> str:
        self.calls.append(("kill", mode, who, why))
        write_control(mode, who, why, path=self.kill_path)
        return f"kill switch set to {mode}"


class Clock:
    def __init__(self) -> None:
        self.ns = 1_700_000_000 * 10**9

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> None:
        self.ns += int(seconds * 1e9)


@pytest.fixture()
def fake():
    with FakeTelegram() as tg:
        yield tg


@pytest.fixture()
def journal(tmp_path):
    store = AlertStore.open(str(tmp_path / "j.sqlite"))
    yield store
    store.close()


@pytest.fixture()
def cmds(tmp_path):
    return FileCommands(tmp_path / "kill-switch")


def make_bot(fake, store, cmds, chats=(ME, TEAM), **kw) -> TelegramBot:
    kw.setdefault("long_poll_s", 1.0)
    kw.setdefault("timeout_s", 2.0)
    kw.setdefault("backoff_s", (0.05, 0.4))
    return TelegramBot(fake.url, kw.pop("token", fake.token), chats, cmds, store, **kw)


def code_in(text: str) -> str:
    m = re.search(r"/confirm (\d{6})", text)
    assert m, text
    return m.group(1)


@pytest.fixture()
def running(fake):
    """Start ``bot.run`` in a thread; on teardown stop it and check it ended by itself (never raised).
    The fake stops first so that an open long poll ends at once instead of after its second."""
    started: list[tuple[threading.Thread, threading.Event]] = []

    def start(bot: TelegramBot) -> threading.Thread:
        stop = threading.Event()
        t = threading.Thread(target=bot.run, args=(stop,), daemon=True)
        t.start()
        started.append((t, stop))
        return t

    yield start
    for _, stop in started:
        stop.set()
    fake.stop()
    for t, _ in started:
        t.join(10)
        assert not t.is_alive()


# -- commands -------------------------------------------------------------------------------------
def test_status_positions_and_reports_are_answered(fake, journal, cmds):
    bot = make_bot(fake, journal, cmds)
    for text in ("/status", "/positions", "/report", "/report Weekly", "/report yearly", "/report monthly"):
        fake.say(ME, text)
    assert bot.poll_once(0) == 6
    assert fake.sent(ME) == [
        "engine running; kill switch off",
        "BTCUSDT long 0.010 @ 64000.0",
        "daily report: pnl +12.50 USDT",
        "weekly report: pnl +12.50 USDT",
        "unknown report period 'yearly': use /report daily|weekly|monthly",
        "monthly report: pnl +12.50 USDT",
    ]
    assert [c for c in cmds.calls if c[0] == "report"] == [
        ("report", "daily"),
        ("report", "weekly"),
        ("report", "monthly"),
    ]


def test_commands_addressed_to_this_bot_are_answered_and_to_another_bot_ignored(fake, journal, cmds):
    bot = make_bot(fake, journal, cmds)
    fake.say(TEAM, "/status@orderflow_test_bot", user="bob")
    fake.say(TEAM, "/status@SomeOtherBot", user="bob")
    fake.say(TEAM, "/positions@ORDERFLOW_TEST_BOT", user="bob")
    assert bot.poll_once(0) == 3
    assert fake.sent(TEAM) == ["engine running; kill switch off", "BTCUSDT long 0.010 @ 64000.0"]


def test_help_unknown_commands_and_plain_text(fake, journal, cmds):
    bot = make_bot(fake, journal, cmds)
    fake.say(ME, "/help")
    fake.say(ME, "/launch")
    fake.say(ME, "hello bot")  # not a command: no answer
    bot.poll_once(0)
    help_text, unknown = fake.sent(ME)
    assert "/kill reduce_only|halt|off" in help_text and "/report [daily|weekly|monthly]" in help_text
    assert unknown == "unknown command /launch; /help lists the commands"


def test_a_failing_command_is_answered_and_the_bot_goes_on(fake, journal, cmds):
    def broken() -> str:
        raise RuntimeError("journal unavailable")

    cmds.status = broken
    bot = make_bot(fake, journal, cmds)
    fake.say(ME, "/status")
    fake.say(ME, "/positions")
    assert bot.poll_once(0) == 2
    assert fake.sent(ME) == [
        "/status failed: RuntimeError: journal unavailable",
        "BTCUSDT long 0.010 @ 64000.0",
    ]


def test_a_long_answer_is_split_under_telegrams_limit(fake, journal, cmds):
    lines = [f"position {i:04d}: BTCUSDT long 0.010 @ 64000.0 upnl +1.25" for i in range(200)]
    cmds.positions_text = "\n".join(lines)  # 200 * 53 - 1 = 10599 characters
    bot = make_bot(fake, journal, cmds)
    fake.say(ME, "/positions")
    bot.poll_once(0)
    pieces = fake.sent(ME)  # the fake refuses a text over 4096 (400 message is too long)
    assert len(pieces) == 3 and all(len(p) <= 4096 for p in pieces)
    assert "".join(pieces) == cmds.positions_text
    assert all(p.endswith("\n") for p in pieces[:-1])  # cut at line ends


def test_split_text_counts_utf16_units_and_never_cuts_a_surrogate_pair():
    text = "\U0001f680" * 3000  # 3000 rockets = 6000 UTF-16 units
    pieces = split_text(text)
    assert [len(p) for p in pieces] == [2048, 952]
    assert "".join(pieces) == text
    assert split_text("") == [""] and split_text("short") == ["short"]


# -- who may command ------------------------------------------------------------------------------
def test_unauthorised_chat_is_ignored_and_logged(fake, journal, cmds, caplog):
    bot = make_bot(fake, journal, cmds)
    fake.say(STRANGER, "/status", user="mallory")
    fake.say(STRANGER, "/kill halt", user="mallory")
    with caplog.at_level(logging.WARNING, logger="orderflow.alerts.telegram"):
        assert bot.poll_once(0) == 2
    assert fake.sent(STRANGER) == [] and fake.count("sendMessage") == 0
    assert cmds.calls == []
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2
    assert "chat 9999" in warned[0] and "mallory" in warned[0] and "'/status'" in warned[0]
    assert "'/kill halt'" in warned[1]


def test_kill_needs_a_confirmation_then_writes_the_kill_file(fake, journal, cmds):
    bot = make_bot(fake, journal, cmds)
    fake.say(ME, "/kill reduce_only")
    bot.poll_once(0)
    (ask,) = fake.sent(ME)
    assert "reduce_only" in ask and "within 60 s" in ask
    assert not cmds.kill_path.exists() and cmds.calls == []  # asking does nothing

    code = code_in(ask)
    fake.say(ME, f"/confirm {code}")
    fake.say(ME, f"/confirm {code}")  # one time only
    bot.poll_once(0)
    assert fake.sent(ME)[1:] == ["kill switch set to reduce_only", f"wrong code '{code}': nothing done"]
    c = read_control(path=cmds.kill_path)
    assert (c.mode, c.who) == ("reduce_only", "telegram:4242:alice")
    assert c.why == "/kill reduce_only confirmed in Telegram"


def test_kill_usage_and_wrong_code(fake, journal, cmds):
    bot = make_bot(fake, journal, cmds)
    fake.say(ME, "/kill")
    fake.say(ME, "/kill everything")
    fake.say(ME, "/kill halt")
    fake.say(ME, "/confirm 000000x")
    fake.say(ME, "/confirm")
    bot.poll_once(0)
    usage1, usage2, _ask, wrong, usage3 = fake.sent(ME)
    assert usage1 == usage2 == "usage: /kill reduce_only|halt|off"
    assert wrong == "wrong code '000000x': nothing done"
    assert usage3.startswith("usage: /confirm <code>")
    assert not cmds.kill_path.exists() and cmds.calls == []


def test_the_kill_flow_from_an_unauthorised_chat_changes_nothing(fake, journal, cmds):
    bot = make_bot(fake, journal, cmds)
    write_control("off", "test", "start", path=cmds.kill_path)
    before = cmds.kill_path.read_text()
    fake.say(ME, "/kill halt")
    bot.poll_once(0)
    code = code_in(fake.sent(ME)[0])
    fake.say(STRANGER, "/kill halt", user="mallory")
    fake.say(STRANGER, f"/confirm {code}", user="mallory")  # even with a valid code
    bot.poll_once(0)
    assert fake.sent(STRANGER) == [] and cmds.calls == []
    assert cmds.kill_path.read_text() == before
    fake.say(ME, f"/confirm {code}")  # the operator's code is still good
    bot.poll_once(0)
    assert read_control(path=cmds.kill_path).mode == "halt"


def test_a_code_confirmed_from_another_authorised_chat_does_nothing(fake, journal, cmds):
    bot = make_bot(fake, journal, cmds)
    fake.say(ME, "/kill halt")
    bot.poll_once(0)
    code = code_in(fake.sent(ME)[0])
    fake.say(TEAM, f"/confirm {code}", user="bob")
    bot.poll_once(0)
    assert fake.sent(TEAM) == ["that code was given to another chat: nothing done"]
    assert not cmds.kill_path.exists() and cmds.calls == []


def test_an_expired_code_is_refused(fake, journal, cmds):
    clock = Clock()
    bot = make_bot(fake, journal, cmds, clock=clock, confirm_s=30.0)
    fake.say(ME, "/kill halt")
    bot.poll_once(0)
    code = code_in(fake.sent(ME)[0])
    clock.advance(30.5)
    fake.say(ME, f"/confirm {code}")
    bot.poll_once(0)
    assert fake.sent(ME)[1] == f"code {code} expired: nothing done; send /kill halt again"
    assert not cmds.kill_path.exists() and cmds.calls == []
    fake.say(ME, "/kill halt")  # a fresh code works
    bot.poll_once(0)
    clock.advance(29.0)
    fake.say(ME, f"/confirm {code_in(fake.sent(ME)[2])}")
    bot.poll_once(0)
    assert fake.sent(ME)[3] == "kill switch set to halt"


# -- restarts and the single poller ---------------------------------------------------------------
def test_a_restart_neither_replays_old_updates_nor_forgets_a_pending_confirmation(fake, tmp_path, cmds):
    clock = Clock()
    first = AlertStore.open(str(tmp_path / "j.sqlite"))
    bot = make_bot(fake, first, cmds, clock=clock)
    fake.say(ME, "/status")
    last = fake.say(ME, "/kill reduce_only")
    assert bot.poll_once(0) == 2
    code = code_in(fake.sent(ME)[1])
    assert first.get_state(OFFSET_KEY) == str(last + 1)
    first.close()  # the process dies: no clean release of the lease

    clock.advance(5)  # the dead bot's lease (2 * 1 s + 2 s) has expired
    second = AlertStore.open(str(tmp_path / "j.sqlite"))
    again = make_bot(fake, second, cmds, clock=clock)
    assert len(fake.pending_updates()) == 2  # the server still holds them: only the stored offset acks them
    assert again.poll_once(0) == 0
    assert fake.pending_updates() == [] and len(fake.sent(ME)) == 2
    fake.say(ME, f"/confirm {code}")
    assert again.poll_once(0) == 1
    assert fake.sent(ME)[2] == "kill switch set to reduce_only"
    assert read_control(path=cmds.kill_path).mode == "reduce_only"
    second.close()


def test_an_offset_older_than_six_days_is_not_sent(fake, journal, cmds):
    """After a week without updates Telegram numbers the next one afresh: an old offset would hide it."""
    clock = Clock()
    bot = make_bot(fake, journal, cmds, clock=clock)
    fake.say(ME, "/status")
    bot.poll_once(0)
    bot.poll_once(0)
    assert fake.calls[-1][1]["offset"] == int(journal.get_state(OFFSET_KEY) or 0)
    clock.advance(6 * 86400 + 1)
    bot.poll_once(0)
    assert "offset" not in fake.calls[-1][1]


def test_failed_replies_are_retried_unless_telegram_refuses_them(fake, journal, cmds, caplog):
    bot = make_bot(fake, journal, cmds)
    fake.fail("sendMessage", 500, times=2)
    fake.say(ME, "/status")
    bot.poll_once(0)
    assert fake.sent(ME) == ["engine running; kill switch off"] and fake.count("sendMessage") == 3
    fake.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")
    fake.say(ME, "/status")
    with caplog.at_level(logging.WARNING, logger="orderflow.alerts.telegram"):
        assert bot.poll_once(0) == 1  # the update is done with: the offset moves on
    assert fake.count("sendMessage") == 4 and len(fake.sent(ME)) == 1
    assert "reply to chat 4242 not sent: telegram sendMessage: Forbidden: bot was blocked" in caplog.text


def test_a_second_bot_on_the_same_journal_is_refused_while_the_lease_lives(fake, journal, cmds, caplog):
    clock = Clock()
    one = make_bot(fake, journal, cmds, clock=clock)
    two = make_bot(fake, journal, cmds, clock=clock)
    assert one.poll_once(0) == 0 and one.has_lease
    polls = fake.count("getUpdates")
    fake.say(ME, "/status")
    with caplog.at_level(logging.WARNING, logger="orderflow.alerts.telegram"):
        assert two.poll_once(0) == 0
        assert two.poll_once(0) == 0
    assert fake.count("getUpdates") == polls and not two.has_lease  # never polled
    refusals = [r.getMessage() for r in caplog.records if "holds the getUpdates lease" in r.getMessage()]
    assert len(refusals) == 1 and f"pid {os.getpid()}" in refusals[0]  # said once
    assert one.poll_once(0) == 1  # the holder goes on

    clock.advance(3.9)  # still live: expiry is 2 * long_poll_s + timeout_s = 4 s after the last poll
    assert two.poll_once(0) == 0
    clock.advance(0.2)  # the holder stopped renewing (hung or dead): taken over
    fake.say(ME, "/positions")
    assert two.poll_once(0) == 1 and two.has_lease
    assert one.poll_once(0) == 0 and not one.has_lease
    assert fake.sent(ME) == ["engine running; kill switch off", "BTCUSDT long 0.010 @ 64000.0"]


def test_a_clean_stop_releases_the_lease(fake, journal, cmds):
    one = make_bot(fake, journal, cmds)
    stop = threading.Event()
    t = threading.Thread(target=one.run, args=(stop,))
    t.start()
    fake.wait(lambda: fake.count("getUpdates") >= 1, 5, "the first poll")
    assert json.loads(journal.get_state(LEASE_KEY) or "{}")["pid"] == os.getpid()
    stop.set()
    fake.stop()  # cuts the open long poll
    t.join(5)
    assert not t.is_alive() and journal.get_state(LEASE_KEY) is None
    fake.start()
    two = make_bot(fake, journal, cmds)
    fake.say(ME, "/status")
    assert two.poll_once(0) == 1


def test_the_lease_of_a_dead_process_on_this_host_is_taken_at_once(fake, journal, cmds):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(gone.stdout)
    far = time.time_ns() + 3600 * 10**9
    pidns = os.readlink("/proc/self/ns/pid")
    lease = {"owner": "x", "pid": dead_pid, "host": socket.gethostname(), "expires_ns": far, "pidns": pidns}
    elsewhere = dict(lease, pidns="pid:[1]")  # a container with the same host name: its pids are not ours
    journal.set_state(LEASE_KEY, json.dumps(elsewhere), 0)
    bot = make_bot(fake, journal, cmds)
    assert bot.poll_once(0) == 0 and not bot.has_lease
    journal.set_state(LEASE_KEY, json.dumps(lease), 0)
    fake.say(ME, "/status")
    assert bot.poll_once(0) == 1
    live = dict(lease, pid=os.getppid())  # a live process: its lease holds until it expires
    journal.set_state(LEASE_KEY, json.dumps(live), 0)
    assert bot.poll_once(0) == 0 and not bot.has_lease


# -- errors and backoff ---------------------------------------------------------------------------
def test_run_survives_409_500_and_429_with_backoff(fake, journal, cmds, running, caplog):
    fake.fail("getUpdates", 500, times=3)
    fake.fail("getUpdates", 409)
    fake.fail("getUpdates", 429, retry_after=1)
    bot = make_bot(fake, journal, cmds, backoff_s=(0.05, 1.0))
    fake.say(ME, "/status")
    with caplog.at_level(logging.WARNING, logger="orderflow.alerts.telegram"):
        running(bot)
        fake.wait_sent(ME, 1, timeout=8)
    t = fake.call_times("getUpdates")
    gaps = [b - a for a, b in itertools.pairwise(t)][:5]
    # backoff 0.05, 0.1, 0.2 after the 500s (x 1..1.25 jitter), 0.4 after the 409, then retry_after 1 s
    assert 0.05 <= gaps[0] < gaps[1] < gaps[2] < gaps[3] and gaps[3] >= 0.4
    assert gaps[4] >= 1.0
    text = caplog.text
    assert text.count("Internal Server Error (HTTP 500)") == 3
    assert "another process polls this bot token" in text and "retry after 1 (HTTP 429)" in text


def test_run_survives_refused_connections_and_a_restarted_server(fake, journal, cmds, running, caplog):
    bot = make_bot(fake, journal, cmds)
    with caplog.at_level(logging.WARNING, logger="orderflow.alerts.telegram"):
        thread = running(bot)
        fake.wait(lambda: fake.count("getUpdates") >= 1, 5, "the first poll")
        fake.stop()  # connection refused from now on; the open long poll is cut
        time.sleep(1.0)
        fake.say(ME, "/status")
        fake.start()
        assert fake.wait_sent(ME, 1, timeout=8) == ["engine running; kill switch off"]
    assert thread.is_alive()
    assert "ConnectionError" in caplog.text


def test_two_pollers_on_one_token_get_409_and_neither_crashes(fake, tmp_path, cmds, running, caplog):
    """Two alerters on different journals (no shared lease): Telegram's 409 is the only guard left."""
    a, b = (AlertStore.open(str(tmp_path / f"{n}.sqlite")) for n in "ab")
    with caplog.at_level(logging.WARNING, logger="orderflow.alerts.telegram"):
        ta, tb = running(make_bot(fake, a, cmds)), running(make_bot(fake, b, cmds))
        fake.wait(lambda: fake.conflicts >= 2, 8, "two conflicts")
        assert ta.is_alive() and tb.is_alive()
    assert "another process polls this bot token" in caplog.text and CONFLICT in caplog.text


# -- the token stays secret -----------------------------------------------------------------------
def test_the_token_never_reaches_the_logs_or_errors(fake, journal, cmds, caplog):
    bot = make_bot(fake, journal, cmds)
    with caplog.at_level(logging.DEBUG):
        fake.say(ME, "/status")
        bot.poll_once(0)  # urllib3 logs each request line (with the URL) at DEBUG
        fake.stop()
        with pytest.raises(TelegramError) as err:
            bot.poll_once(0)
        fake.start()
        wrong = make_bot(fake, journal, cmds, token="987654321:AAWrongTokenForTheFakeServer_zz")
        journal.set_state(LEASE_KEY, "", 0)
        with pytest.raises(TelegramError, match="Unauthorized"):
            wrong.poll_once(0)
    assert fake.token not in str(err.value) and "ConnectionError" in str(err.value)
    assert "<redacted:" in str(err.value)  # the URL was there, masked
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/getUpdates" in logged  # the request lines are logged ...
    assert fake.token not in logged and fake.token.split(":")[1] not in logged  # ... without the token
    assert "987654321:AAWrongTokenForTheFakeServer_zz" not in logged


def test_bad_arguments_are_refused_by_name(fake, journal, cmds):
    with pytest.raises(ValueError, match="token"):
        TelegramBot(fake.url, "nocolon", [ME], cmds, journal)
    with pytest.raises(ValueError, match="chat_ids"):
        TelegramBot(fake.url, fake.token, [], cmds, journal)
    with pytest.raises(ValueError, match="confirm_s=0"):
        TelegramBot(fake.url, fake.token, [ME], cmds, journal, confirm_s=0)


# -- the fake server itself -----------------------------------------------------------------------
def api(fake, method, token=None, **params):
    r = requests.post(f"{fake.url}/bot{token or fake.token}/{method}", json=params, timeout=5)
    return r.status_code, r.json()


def test_the_fake_answers_in_the_api_shapes(fake):
    assert api(fake, "getMe")[1]["result"]["username"] == "orderflow_test_bot"
    assert api(fake, "getMe", token="1:nope") == (
        401,
        {"ok": False, "error_code": 401, "description": "Unauthorized"},
    )
    assert api(fake, "noSuchMethod")[0] == 404
    status, sent = api(fake, "sendMessage", chat_id=ME, text="hi", parse_mode="HTML")
    assert status == 200 and set(sent["result"]) >= {"message_id", "chat", "date", "text"}
    too_long = api(fake, "sendMessage", chat_id=ME, text="x" * 4097)
    assert too_long == (
        400,
        {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"},
    )
    form = requests.post(f"{fake.url}/bot{fake.token}/sendMessage", data={"chat_id": str(ME), "text": "form"})
    assert form.json()["result"]["chat"]["id"] == ME
    assert fake.sent(ME) == ["hi", "form"]

    first, second = fake.say(ME, "/status"), fake.say(ME, "/positions")
    got = api(fake, "getUpdates", timeout=0)[1]["result"]
    assert [u["update_id"] for u in got] == [first, second]
    assert got[0]["message"]["chat"] == {
        "id": ME,
        "type": "private",
        "first_name": "alice",
        "username": "alice",
    }
    assert [u["update_id"] for u in api(fake, "getUpdates", offset=second)[1]["result"]] == [second]
    assert api(fake, "getUpdates", offset=second + 1)[1]["result"] == [] and fake.pending_updates() == []


def test_the_fake_long_polls_and_a_second_poll_terminates_the_first_with_409(fake):
    answers: list[tuple[int, dict]] = []
    t = threading.Thread(target=lambda: answers.append(api(fake, "getUpdates", timeout=5)))
    t.start()
    fake.wait(lambda: fake.count("getUpdates") == 1, 2, "the long poll")
    time.sleep(0.1)
    started = time.monotonic()
    assert api(fake, "getUpdates", timeout=0) == (200, {"ok": True, "result": []})
    t.join(5)
    assert time.monotonic() - started < 1.0  # the first did not wait its 5 s
    assert answers == [(409, {"ok": False, "error_code": 409, "description": CONFLICT})]
    assert fake.conflicts == 1

    t = threading.Thread(target=lambda: answers.append(api(fake, "getUpdates", timeout=5)))
    t.start()  # a lone long poll is answered as soon as an update arrives
    fake.wait(lambda: fake.count("getUpdates") == 3, 2, "the long poll")
    time.sleep(0.1)
    started = time.monotonic()
    uid = fake.say(ME, "/status")
    t.join(5)
    assert time.monotonic() - started < 1.0
    assert [u["update_id"] for u in answers[1][1]["result"]] == [uid]


def test_the_fake_serves_apprises_telegram_plugin(fake, tmp_path):
    apprise = pytest.importorskip("apprise")
    notifier = apprise.Apprise.instantiate(f"tgram://{DEFAULT_TOKEN}/{ME}/{TEAM}/")
    notifier.notify_url = fake.apprise_url
    sink = apprise.Apprise()
    sink.add(notifier)
    html = apprise.NotifyFormat.HTML
    assert sink.notify(title="drawdown", body="<b>BTCUSDT</b> down 3.1 %", body_format=html)
    for chat in (ME, TEAM):
        (msg,) = fake.messages(chat)
        assert "BTCUSDT" in msg["text"] and "drawdown" in msg["text"] and msg["parse_mode"] == "HTML"
    pdf = tmp_path / "daily.pdf"
    pdf.write_bytes(b"%PDF-1.4 report")
    assert sink.notify(body="daily report", attach=str(pdf))
    doc = fake.messages(ME)[-1]
    assert doc["document"]["file_name"] == "daily.pdf" and doc["document"]["file_size"] == 15
    assert fake.count("sendDocument") == 2
