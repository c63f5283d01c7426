"""Point apprise's Telegram and Twilio plugins at other servers: a self-hosted Telegram Bot API server
(``telegram-bot-api --local``) or the loopback fakes of the tests.

How the override works: apprise keeps each service's API address in a *class attribute* of its plugin,
and every plugin instance (one per channel URL) reads it when it sends. :func:`set_endpoints` assigns
those class attributes in this process, so it applies to every apprise notification sent from here
afterwards, channel URLs unchanged:

- ``telegram``: ``NotifyTelegram.notify_url`` (``https://api.telegram.org/bot``; the plugin appends
  ``<token>/<method>``) becomes ``<base>/bot``;
- ``twilio``: ``NotifyTwilio.notify_sms_url`` and ``notify_call_url``
  (``https://api.twilio.com/2010-04-01/Accounts/{sid}/Messages.json`` and ``.../Calls.json``) get
  ``<base>`` in place of ``https://api.twilio.com``.

:func:`reset_endpoints` puts apprise's own addresses back. Nothing here touches the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from apprise.plugins.telegram import NotifyTelegram
from apprise.plugins.twilio import NotifyTwilio

TWILIO_API = "https://api.twilio.com"
_DEFAULTS: dict[tuple[type, str], str] = {
    (NotifyTelegram, "notify_url"): NotifyTelegram.notify_url,
    (NotifyTwilio, "notify_sms_url"): NotifyTwilio.notify_sms_url,
    (NotifyTwilio, "notify_call_url"): NotifyTwilio.notify_call_url,
}
KEYS = ("telegram", "twilio")


def _base(key: str, value: str) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ValueError(f"endpoint {key!r}: {value!r} is not an http(s) base URL like http://127.0.0.1:8081")
    return value.rstrip("/")


def set_endpoints(endpoints: Mapping[str, str]) -> None:
    """Send apprise's Telegram and/or Twilio requests to ``endpoints[key]`` (a base URL such as
    ``http://127.0.0.1:8081``) instead of the public APIs; keys ``telegram`` and ``twilio``. All values
    are checked before any is applied: an unknown key or a value that is not an http(s) URL raises
    ``ValueError`` naming it."""
    for key in endpoints:
        if key not in KEYS:
            raise ValueError(f"endpoint {key!r}: unknown service (known: {', '.join(KEYS)})")
    bases = {key: _base(key, value) for key, value in endpoints.items()}
    if "telegram" in bases:
        NotifyTelegram.notify_url = f"{bases['telegram']}/bot"
    if "twilio" in bases:
        for attr in ("notify_sms_url", "notify_call_url"):
            default = _DEFAULTS[(NotifyTwilio, attr)]
            if not default.startswith(TWILIO_API):  # a newer apprise moved it: say so, never guess
                raise RuntimeError(f"apprise's NotifyTwilio.{attr} is {default!r}, not under {TWILIO_API}")
            setattr(NotifyTwilio, attr, bases["twilio"] + default[len(TWILIO_API) :])


def reset_endpoints() -> None:
    """Restore apprise's own API addresses (``api.telegram.org``, ``api.twilio.com``)."""
    for (cls, attr), value in _DEFAULTS.items():
        setattr(cls, attr, value)


def current_endpoints() -> dict[str, str]:
    """The API addresses the plugins use now (for a start-up log line and the tests)."""
    return {
        "telegram": NotifyTelegram.notify_url,
        "twilio": NotifyTwilio.notify_sms_url,
    }


__all__ = ["KEYS", "current_endpoints", "reset_endpoints", "set_endpoints"]
