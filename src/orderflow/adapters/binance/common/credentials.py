"""Binance API credentials from the environment or an owner-only TOML secrets file (formats in
:mod:`orderflow.secrets`). Every key and secret loaded is registered for log redaction."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from orderflow.adapters.binance.common.signing import Credentials
from orderflow.secrets import SECRETS_FILE_ENV, SecretsError, check_owner_only, register_secret


def _from_values(
    prefix: str, where: str, key: str | None, secret: str | None, key_path: str | None, passphrase: str | None
) -> Credentials:
    if not key:
        raise SecretsError(f"{where}: no API key ({prefix}_API_KEY / api_key)")
    register_secret(key)
    try:
        if key_path:
            pem = check_owner_only(key_path).read_bytes()
            register_secret(*(ln for ln in pem.decode(errors="replace").splitlines() if "-----" not in ln))
            return Credentials.ed25519(key, pem, passphrase)
        if not secret:
            raise SecretsError(f"{where}: no API secret ({prefix}_API_SECRET / api_secret, or a private key)")
        register_secret(secret, *(ln for ln in secret.splitlines() if "-----" not in ln))
        return Credentials.from_secret(key, secret)
    except ValueError as e:  # messages from the signers never contain key material
        raise SecretsError(f"{where}: {e}") from None


def _load_file(path: Path, prefix: str) -> Credentials:
    check_owner_only(path)
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SecretsError(f"secrets file {path}: not valid TOML ({type(e).__name__})") from None
    table = data.get(prefix.lower())
    if not isinstance(table, dict):
        raise SecretsError(f"secrets file {path}: no [{prefix.lower()}] table")
    unknown = set(table) - {"api_key", "api_secret", "private_key_path", "private_key_passphrase"}
    if unknown:
        raise SecretsError(f"secrets file {path}: [{prefix.lower()}] has unknown key(s) {sorted(unknown)}")
    return _from_values(
        prefix,
        f"secrets file {path} [{prefix.lower()}]",
        table.get("api_key"),
        table.get("api_secret"),
        table.get("private_key_path"),
        table.get("private_key_passphrase"),
    )


def load_credentials(prefix: str = "BINANCE", secrets_file: str | Path | None = None) -> Credentials:
    """Credentials (API key + signer) for ``prefix``, from, in order: ``secrets_file`` if given; the
    environment if ``<PREFIX>_API_KEY`` is set; the file named by ``$ORDERFLOW_SECRETS_FILE``. Every
    key and secret loaded is registered for redaction. Raises :class:`SecretsError` saying what is
    missing or unsafe."""
    prefix = prefix.upper().rstrip("_")
    if secrets_file is not None:
        return _load_file(Path(secrets_file).expanduser(), prefix)
    env = os.environ
    if env.get(f"{prefix}_API_KEY"):
        return _from_values(
            prefix,
            "environment",
            env.get(f"{prefix}_API_KEY"),
            env.get(f"{prefix}_API_SECRET"),
            env.get(f"{prefix}_PRIVATE_KEY_PATH"),
            env.get(f"{prefix}_PRIVATE_KEY_PASSPHRASE"),
        )
    if env.get(SECRETS_FILE_ENV):
        return _load_file(Path(env[SECRETS_FILE_ENV]).expanduser(), prefix)
    raise SecretsError(
        f"no credentials: set {prefix}_API_KEY and {prefix}_API_SECRET (or {prefix}_PRIVATE_KEY_PATH), "
        f"or name an owner-only TOML secrets file with ${SECRETS_FILE_ENV}"
    )
