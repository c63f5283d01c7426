"""`orderflow alerts test|run` from the command line: bad configuration refused at start in one line that
names it; secrets from the environment or the owner-only secrets file; a test message to every channel
with each one's result (real SMTP with AUTH, a webhook and the fake Twilio on loopback)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from orderflow.cli import main
from support.alert_servers import SmtpServer, TwilioServer, WebhookServer


def _cfg(d: Path, alerts: dict) -> str:
    d.mkdir(exist_ok=True)
    (d / "alerts.yaml").write_text(yaml.safe_dump({"alerts": alerts}))
    return str(d)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("ORDERFLOW_DB", str(tmp_path / "journal.sqlite"))
    monkeypatch.setenv("ORDERFLOW_TELEMETRY", str(tmp_path / "telemetry"))
    monkeypatch.delenv("ORDERFLOW_SECRETS_FILE", raising=False)


@pytest.mark.parametrize(
    ("alerts", "env", "needle"),
    [
        ({"rules": {"engine_down": {"silense_s": 3}}}, {}, "alerts.rules.engine_down.silense_s: unknown key"),
        ({"rules": {"no_such_rule": {}}}, {}, "alerts.rules.no_such_rule: unknown key"),
        ({"anomaly": {"metrics": {"spreed": {"z": 3}}}}, {}, "unknown anomaly metric 'spreed'"),
        ({"channels": {"ops": {"url": "mailto://"}}}, {}, "channel 'ops': malformed URL"),
        ({"channels": {"ops": {"url": "nosuchservice://x/y"}}}, {}, "channel 'ops': malformed URL"),
        (
            {"channels": {"sms": {"url": "twilio://AC123:${TWILIO_TOKEN}@15550001111/15552223333"}}},
            {},
            "channel 'sms': secret ${TWILIO_TOKEN} is not set",
        ),
        ({"routing": {"critical": ["pager"]}}, {}, "routing.critical names channel 'pager'"),
        ({"endpoints": {"telegramm": "http://127.0.0.1:1"}}, {}, "telegramm"),
        (
            {"telegram": {"enabled": True, "chat_ids": [1]}},
            {},
            "telegram.token: secret ${TELEGRAM_BOT_TOKEN}",
        ),
    ],
)
def test_bad_configuration_is_refused_at_start_in_one_line_naming_it(
    tmp_path, capsys, monkeypatch, alerts, env, needle
):
    monkeypatch.delenv("TWILIO_TOKEN", raising=False)
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    rc = main(["alerts", "run", "--config", _cfg(tmp_path / "cfg", alerts), "--minutes", "0.01"])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert needle in err, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "journal.sqlite").exists()  # refused before anything was opened


def test_alerts_test_sends_to_every_channel_and_reports_each(tmp_path, capsys, monkeypatch):
    with SmtpServer() as smtp, WebhookServer() as hook, TwilioServer() as sms:
        monkeypatch.setenv("SMTP_PASSWORD", smtp.password)
        secrets = tmp_path / "secrets.toml"  # the Twilio token from the owner-only secrets file
        secrets.write_text(f'[alerts]\ntwilio_token = "{sms.auth_token}"\n')
        secrets.chmod(0o600)
        monkeypatch.setenv("ORDERFLOW_SECRETS_FILE", str(secrets))
        hook.status = 500
        alerts = {
            "channels": {
                "email": {"url": smtp.url().replace(smtp.password, "${SMTP_PASSWORD}")},
                "sms": {"url": sms.url(token="${TWILIO_TOKEN}")},
                "webhook": {"url": hook.url()},
            },
            "endpoints": {"twilio": sms.base},
            "retry": {"timeout_s": 3},
        }
        rc = main(["alerts", "test", "--config", _cfg(tmp_path / "cfg", alerts)])
        out = capsys.readouterr().out
        lines = {ln.split()[0]: ln for ln in out.strip().splitlines()}
        assert rc == 1  # one channel failed
        assert lines["email"].split()[1] == "sent" and lines["sms"].split()[1] == "sent"
        assert lines["webhook"].split()[1] == "FAILED:" and "500" in lines["webhook"]
        (mail,) = smtp.wait(1)
        assert mail.subject == "orderflow test message" and mail.login == "alerts"
        (text,) = sms.wait(1)
        assert "this channel works" in text["body"]
        assert smtp.password not in out and sms.auth_token not in out
        hook.status = 200
        assert main(["alerts", "test", "--config", _cfg(tmp_path / "cfg", alerts)]) == 0


def test_a_secrets_file_readable_by_others_is_refused(tmp_path, capsys, monkeypatch):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[alerts]\ntoken = "x"\n')
    secrets.chmod(0o644)
    monkeypatch.setenv("ORDERFLOW_SECRETS_FILE", str(secrets))
    alerts = {"channels": {"hook": {"url": "jsons://example.com/x?+X-Token=${TOKEN}"}}}
    rc = main(["alerts", "test", "--config", _cfg(tmp_path / "cfg", alerts)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "mode 0644" in err and len(err.splitlines()) == 1, err
    assert os.environ.get("TOKEN") is None
