"""The alerter end to end, everything real and on loopback:

- the local exchange on the simulator, behind the TCP fault proxy (tests/support/netfault.py);
- `orderflow paper` in its own process, publishing telemetry and journaling;
- `orderflow alerts run` in its own process, with four channels through apprise: email to an aiosmtpd
  server that requires AUTH, Telegram to a fake Bot API, SMS to a fake Twilio Messages endpoint and a
  JSON webhook (tests/support/alert_servers.py, tests/support/fake_telegram.py);
- apprise is pointed at the fakes by the config's ``endpoints:`` section, which sets the Telegram and
  Twilio plugins' base URL class attributes in the alerter's process (orderflow.alerts.endpoints); email
  and the webhook need no override (their URLs name the host).

The story: a `/kill reduce_only` from a chat that is not authorised changes nothing; from the
authorised chat, after its confirmation code, the engine goes to reduce_only and the kill-switch alert
goes out (warning: Telegram and the webhook, which answers 500 at first and gets it on a retry). Then the
market-data connection is cut and refused for 8 s: one feed incident, then its "resolved". Then the
engine is killed with SIGKILL: "engine down" reaches all four channels within 10 s. Each incident gives
exactly one message per channel it is routed to.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from orderflow.engine.control import read_control
from orderflow.execution.local.testing import running_local_exchange
from orderflow.telemetry.bus import FileReader
from orderflow.telemetry.schema import Heartbeat
from support.alert_servers import SmtpServer, TwilioServer, WebhookServer
from support.fake_telegram import FakeTelegram
from support.netfault import FaultProxy

ROOT = Path(__file__).resolve().parents[2]
CHAT = 4242
INTRUDER = 6666

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _wait(pred, timeout: float, what: str, every: float = 0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(OSError, ValueError, KeyError):
            got = pred()
            if got:
                return got
        time.sleep(every)
    pytest.fail(f"{what}: not within {timeout:.0f} s")


class Proxy:
    """The async fault proxy on a loop of its own, driven from the test's thread."""

    def __init__(self, host: str, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.proxy = FaultProxy(host, port)
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.proxy.__aenter__())
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def call(self, fn, *args):
        fut = asyncio.run_coroutine_threadsafe(self._call(fn, *args), self.loop)
        return fut.result(5)

    async def _call(self, fn, *args):
        return fn(*args)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.__aexit__(None, None, None), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _alerts_config(d: Path, smtp, tg, sms, hook) -> Path:
    d.mkdir()
    cfg = {
        "alerts": {
            "dashboard_url": "http://127.0.0.1:8080",
            "poll_s": 0.2,
            "channels": {
                "email": {"url": smtp.url().replace(f":{smtp.password}@", ":${SMTP_PASSWORD}@")},
                "telegram": {"url": f"tgram://${{TG_TOKEN}}/{CHAT}"},
                "sms": {"url": sms.url(token="${TWILIO_TOKEN}")},
                "webhook": {"url": hook.url("/hook", {"X-Orderflow": "e2e"})},
            },
            "routing": {
                "critical": ["sms", "telegram", "email", "webhook"],
                "warning": ["telegram", "webhook"],
                "info": ["email"],
            },
            "endpoints": {"telegram": tg.url, "twilio": sms.base},
            "retry": {"attempts": 8, "backoff_s": 1.0, "max_backoff_s": 4.0, "timeout_s": 5.0},
            "rules": {
                "stale_feed": {"lag_ms": 3000},
                "feed_gap": {"quiet_s": 5},
                "reconnect_storm": {"quiet_s": 5},
            },
            "anomaly": {"enabled": False},
            "telegram": {"enabled": True, "token": "${TG_TOKEN}", "chat_ids": [CHAT], "long_poll_s": 2},
            "reports": {"periods": ["daily"], "pdf": False, "out": str(d / "reports")},
        }
    }
    (d / "alerts.yaml").write_text(yaml.safe_dump(cfg))
    return d


def _texts_tg(tg) -> list[str]:
    return [t for t in tg.sent(CHAT) if "incident:" in t]


def _count(texts: list[str], needle: str) -> int:
    return sum(needle in t for t in texts)


def test_alerts_end_to_end_kill_switch_feed_fault_and_sigkill(tmp_path):
    from support.bundles import lr_bundle

    telemetry, db, kill = tmp_path / "telemetry", tmp_path / "journal.sqlite", tmp_path / "kill-switch"
    with (
        running_local_exchange(
            source="sim", seed=5, clock="realtime", speed=20, market="usdm", sim_hours=3.0, symbol="BTCUSDT"
        ) as ex,  # fmt: skip
        SmtpServer() as smtp,
        FakeTelegram() as tg,
        TwilioServer() as sms,
        WebhookServer() as hook,
    ):
        host, port = ex.rest_url.split("//")[1].split(":")
        proxy = Proxy(host, int(port))
        cfg_dir = _alerts_config(tmp_path / "alerts-config", smtp, tg, sms, hook)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "ORDERFLOW_KILL_FILE": str(kill)}
        env.pop("ORDERFLOW_SECRETS_FILE", None)
        bundle = lr_bundle(tmp_path / "bundle", 1.0, features=["ofi_e1", "ofi_w", "spread_bps"], schema="e2e")
        engine_log = open(tmp_path / "engine.log", "w")  # noqa: SIM115 - closed below
        alerter_log = open(tmp_path / "alerter.log", "w")  # noqa: SIM115
        engine = subprocess.Popen(
            [sys.executable, "-m", "orderflow.cli", "paper", "--minutes", "8", "--config",
             str(ROOT / "config" / "examples" / "ofi-only"), "--model", str(bundle), "--rest-url",
             proxy.proxy.http_url, "--ws-url", proxy.proxy.ws_url, "--telemetry", str(telemetry), "--db",
             str(db), "--on-stop", "keep"],
            env={**env, "ORDERFLOW_PAPER_API_KEY": ex.api_key, "ORDERFLOW_PAPER_API_SECRET": ex.api_secret},
            stdout=engine_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        secrets = {"SMTP_PASSWORD": smtp.password, "TG_TOKEN": tg.token, "TWILIO_TOKEN": sms.auth_token}
        alerter = subprocess.Popen(
            [sys.executable, "-m", "orderflow.cli", "alerts", "run", "--config", str(cfg_dir), "--telemetry",
             str(telemetry), "--db", str(db), "--kill-file", str(kill)],
            env={**env, **secrets}, stdout=alerter_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        reader = FileReader(telemetry)
        beats: list = []

        def heartbeats():
            for r in reader.runs():
                beats.extend(e for e in reader.read(r) if isinstance(e, Heartbeat))
            return beats

        try:
            _wait(
                lambda: any(b.state == "running" for b in heartbeats()), 180, "the engine's first heartbeat"
            )
            run_id = beats[-1].run_id
            _wait(lambda: tg.count("getUpdates") >= 1, 60, "the alerter's Telegram poller")
            hook.status = 500  # the webhook is down when the first alert comes

            # 1. /kill from an intruder: ignored; from the operator, after the code: reduce_only
            tg.say(INTRUDER, "/kill reduce_only", user="mallory")
            time.sleep(3)
            assert tg.sent(INTRUDER) == [] and not kill.exists()
            tg.say(CHAT, "/kill reduce_only", user="alice")
            reply = _wait(
                lambda: [t for t in tg.sent(CHAT) if "/confirm" in t], 30, "the confirmation request"
            )
            code = re.search(r"/confirm (\d+)", reply[-1]).group(1)
            tg.say(INTRUDER, f"/confirm {code}", user="mallory")
            time.sleep(1)
            assert not kill.exists()
            tg.say(CHAT, f"/confirm {code}", user="alice")
            _wait(lambda: read_control(path=kill).mode == "reduce_only", 20, "the kill switch file")
            assert read_control(path=kill).who.startswith(f"telegram:{CHAT}:")
            _wait(lambda: any(b.state == "degraded" for b in heartbeats()), 20, "the engine in reduce_only")
            _wait(lambda: _count(_texts_tg(tg), "kill switch set to reduce_only"), 20, "the kill alert")
            time.sleep(2)
            hook.status = 200  # back: the retry delivers it
            _wait(lambda: any("kill switch" in m["title"] for m in hook.messages), 20, "the webhook retry")

            # 2. the market-data connection cut, reconnects refused for 8 s
            proxy.call(proxy.proxy.block, "market", 8.0)
            assert proxy.call(proxy.proxy.drop, "market") >= 1
            feed_key = f"incident: feed:run={run_id}:BTCUSDT"
            _wait(lambda: _count(_texts_tg(tg), feed_key), 40, "the feed alert")
            _wait(lambda: [t for t in _texts_tg(tg) if feed_key in t and "[RESOLVED]" in t], 60,
                  "the feed's resolved message")  # fmt: skip

            # 3. SIGKILL: engine down within 10 s on all four channels
            assert engine.poll() is None, "the engine stopped by itself"
            engine.send_signal(signal.SIGKILL)
            t_kill = time.monotonic()
            engine.wait(10)
            _wait(lambda: sms.messages, 15, "the SMS")
            sms_s = time.monotonic() - t_kill
            _wait(lambda: smtp.messages, 10, "the email")
            _wait(lambda: _count(_texts_tg(tg), "engine down"), 10, "the Telegram message")
            _wait(lambda: any("engine down" in m["title"] for m in hook.messages), 10, "the webhook")
            print(f"engine down reached SMS {sms_s:.1f} s after the SIGKILL")
            assert sms_s < 10.0
            time.sleep(3)  # anything duplicated would arrive by now

            tgm = _texts_tg(tg)
            hooks = [m["title"] + "\n" + m["message"] for m in hook.messages]
            for texts in (tgm, hooks):
                assert _count(texts, "kill switch set to reduce_only") == 1, texts
                assert _count(texts, feed_key) == 2, texts  # trigger + resolved
                assert _count(texts, f"incident: engine_down:run={run_id}") == 1, texts
            sms_bodies = [m["body"] for m in sms.messages]
            assert len(sms_bodies) == 1 and "engine down" in sms_bodies[0], sms_bodies
            mails = smtp.messages
            assert len(mails) == 1 and "engine down" in mails[0].subject, [m.subject for m in mails]
            assert "silence_s=" in mails[0].text and f"#view=system&run={run_id}" in mails[0].text
            assert mails[0].login == "alerts" and smtp.failed_logins == 0  # it logged in with AUTH
        finally:
            for p in (engine, alerter):
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(20)
                    except subprocess.TimeoutExpired:
                        p.kill()
            engine_log.close()
            alerter_log.close()
            proxy.close()
            print("alerter log:\n" + (tmp_path / "alerter.log").read_text()[-4000:])
            print("telegram alerts:\n" + "\n---\n".join(_texts_tg(tg)))

    # the journal has every message and its delivery per channel; the webhook's first tries failed
    from orderflow.alerts.store import AlertStore

    store = AlertStore.open(str(db))
    try:
        journaled = store.alerts()
    finally:
        store.close()
    kill_alert = next(a for a in journaled if a["rule"] == "kill_switch" and a["kind"] == "trigger")
    by_channel = {d["channel"]: d for d in kill_alert["deliveries"]}
    assert set(by_channel) == {"telegram", "webhook"}
    assert by_channel["webhook"]["state"] == "sent" and by_channel["webhook"]["attempts"] >= 2
    assert all(d["state"] == "sent" for a in journaled for d in a["deliveries"]), journaled
