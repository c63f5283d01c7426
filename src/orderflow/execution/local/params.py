"""Request parameters as Binance parses them: mandatory parameters (-1102), decimal syntax (-1100),
parameters the endpoint does not read (-1104), enums (-1115 / -1116 / -1117), booleans."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from orderflow.execution.local import errors as E

_DECIMAL = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_INT = re.compile(r"^-?[0-9]{1,20}$")
_CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
SIGNED_EXTRA = frozenset({"timestamp", "recvWindow", "signature"})


class Params:
    """Read-once view of a request's parameters (query string first, then the form body)."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)

    def check_known(self, known: Iterable[str]) -> None:
        allowed = set(known) | SIGNED_EXTRA
        sent = [k for k in self.values if self.values[k] != ""]
        unread = [k for k in sent if k not in allowed]
        if unread:
            raise E.unread_params(len(sent) - len(unread), len(sent))

    def get(self, name: str) -> str | None:
        v = self.values.get(name)
        return None if v is None or v == "" else v

    def req(self, name: str) -> str:
        v = self.get(name)
        if v is None:
            raise E.mandatory(name)
        return v

    def decimal(self, name: str, required: bool = False) -> float | None:
        v = self.req(name) if required else self.get(name)
        if v is None:
            return None
        if not _DECIMAL.match(v):
            raise E.illegal_chars(name)
        return float(v)

    def integer(self, name: str, default: int | None = None) -> int | None:
        v = self.get(name)
        if v is None:
            return default
        if not _INT.match(v):
            raise E.illegal_chars(name, "^[0-9]{1,20}$")
        return int(v)

    def boolean(self, name: str) -> bool:
        v = self.get(name)
        if v is None:
            return False
        if v.lower() not in ("true", "false"):
            raise E.invalid_param(name, v)
        return v.lower() == "true"

    def client_id(self, name: str) -> str | None:
        v = self.get(name)
        if v is not None and not _CLIENT_ID.match(v):
            raise E.illegal_chars(name, "^[\\.A-Z\\:/a-z0-9_-]{1,36}$")
        return v

    def symbol(self) -> str:
        return self.req("symbol").upper()
