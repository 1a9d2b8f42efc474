"""Secrets and the files a config names (CONTRACT section 1 and 7 Config).

Every `*_file` that is set must be readable, at start and on reload, and the secrets are read
here, once: `mqtt.password` and `override.hmac_key` are in the returned Config, so components
built from a loaded config do no I/O that can fail. Problems are returned, not raised, so that
`check-config` lists them with every other problem.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretBytes, SecretStr

from controller.config_model import Config, MqttConfig
from controller.errors import ConfigError
from controller.feeds.override import load_hmac_key

# Every secret field, as (section, key), with where it comes from instead of the config file.
# config_render redacts exactly these; a test checks that every secret-typed field is listed.
SECRETS: dict[tuple[str, str], str] = {
    ("mqtt", "password"): (
        "mqtt.password_file, env CURTAILD_MQTT__PASSWORD or the systemd credential mqtt_password"
    ),
    ("override", "hmac_key"): "override.hmac_key_file",
    ("ercot_api", "password"): (
        "ercot_api.password_file, env CURTAILD_ERCOT_API__PASSWORD or the credential ercot_password"
    ),
    ("ercot_api", "subscription_key"): (
        "ercot_api.subscription_key_file, env CURTAILD_ERCOT_API__SUBSCRIPTION_KEY or the "
        "credential ercot_subscription_key"
    ),
}
# Secrets a variable may not set either: the override key is defined as a file's bytes (2.3).
_FILE_ONLY = frozenset({("override", "hmac_key")})
_FIX = "(check the path and permissions)"


def take_misplaced_secrets(raw: dict[str, Any], env: dict[str, Any]) -> list[str]:
    """Remove secrets written where they are never read from; one problem for each.

    `raw` is the TOML file's data and `env` the environment's, both changed in place, so that
    the rest of the config is still validated and checked.
    """
    problems = []
    for (section, key), instead in SECRETS.items():
        table = raw.get(section)
        if isinstance(table, dict) and key in table:
            del table[key]
            problems.append(
                f"{section}.{key}: secrets are never read from the config file; use {instead}"
            )
        table = env.get(section)
        if (section, key) in _FILE_ONLY and isinstance(table, dict) and key in table:
            del table[key]
            problems.append(
                f"env CURTAILD_{section.upper()}__{key.upper()}: this secret is read only from "
                f"{instead}; unset the variable and set {instead}"
            )
    return problems


def load_files(config: Config, environ: Mapping[str, str]) -> tuple[Config, list[str]]:
    """Check every file the daemon reads and load its secrets into the config.

    The `[ercot_api]` files are the feeder's (CONTRACT 2.6): it runs as its own unit, perhaps
    as another user, so the daemon does not require them to be readable by itself.
    """
    mqtt = config.mqtt
    named = {
        "mqtt.password_file": mqtt.password_file,
        "mqtt.tls_ca_file": mqtt.tls_ca_file,
        "mqtt.tls_cert_file": mqtt.tls_cert_file,
        "mqtt.tls_key_file": mqtt.tls_key_file,
        "override.hmac_key_file": config.override.hmac_key_file,
    }
    unreadable = {key: _unreadable(key, path) for key, path in named.items() if path}
    problems = [problem for problem in unreadable.values() if problem]
    ok = {key for key, path in named.items() if path and not unreadable[key]}
    problems += _tls_problems(mqtt, ok)
    password, problem = _mqtt_password(mqtt, environ, "mqtt.password_file" in ok)
    problems += [problem] if problem else []
    hmac_key = None
    if "override.hmac_key_file" in ok:
        try:
            hmac_key = SecretBytes(load_hmac_key(config.override.hmac_key_file))
        except ConfigError as exc:  # readable, so empty: the key would sign nothing
            problems += [f"{p} (write the overrides' signing key into it)" for p in exc.problems]
    override = config.override.model_copy(update={"hmac_key": hmac_key})
    mqtt = mqtt.model_copy(update={"password": password})
    return config.model_copy(update={"mqtt": mqtt, "override": override}), problems


def _unreadable(key: str, path: str) -> str | None:
    try:
        with Path(path).open("rb"):
            return None
    except OSError as exc:
        return f"{key}: cannot read {path}: {exc.strerror} {_FIX}"


def _tls_problems(mqtt: MqttConfig, readable: set[str]) -> list[str]:
    """A client certificate needs its key and the reverse; unusable PEM is found now, not at
    every reconnect. An encrypted key is refused: nothing would supply its passphrase."""
    problems = []
    if bool(mqtt.tls_cert_file) != bool(mqtt.tls_key_file):
        given, missing = (
            ("tls_cert_file", "tls_key_file")
            if mqtt.tls_cert_file
            else ("tls_key_file", "tls_cert_file")
        )
        problems.append(
            f"mqtt.{given}: set without mqtt.{missing}; a client certificate needs both "
            "(set both, or neither for no client certificate)"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if "mqtt.tls_ca_file" in readable:
        try:
            context.load_verify_locations(cafile=mqtt.tls_ca_file)
        except ssl.SSLError as exc:
            problems.append(
                f"mqtt.tls_ca_file: {mqtt.tls_ca_file} holds no usable CA certificate "
                f"({exc.reason or exc}); give the PEM file of the CA that signed the broker's "
                "certificate"
            )
    if {"mqtt.tls_cert_file", "mqtt.tls_key_file"} <= readable:
        try:
            context.load_cert_chain(mqtt.tls_cert_file, mqtt.tls_key_file, password=_no_passphrase)
        except ssl.SSLError as exc:
            problems.append(
                f"mqtt.tls_cert_file: {mqtt.tls_cert_file} with mqtt.tls_key_file "
                f"{mqtt.tls_key_file} is not a usable client certificate ({exc.reason or exc}); "
                "give PEM files, the key unencrypted and matching the certificate"
            )
    return problems


def _no_passphrase() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key.
    return b""


def _mqtt_password(
    mqtt: MqttConfig, environ: Mapping[str, str], file_readable: bool
) -> tuple[SecretStr, str | None]:
    """The password and a problem, if any. Precedence: env CURTAILD_MQTT__PASSWORD (already in
    `mqtt`), then mqtt.password_file, then $CREDENTIALS_DIRECTORY/mqtt_password (systemd
    LoadCredential=)."""
    if mqtt.password.get_secret_value():
        return mqtt.password, None
    if mqtt.password_file:
        if not file_readable:  # reported with the other unreadable files
            return mqtt.password, None
        return _read_password("mqtt.password_file", Path(mqtt.password_file))
    creds = environ.get("CREDENTIALS_DIRECTORY")
    if not creds or not (Path(creds) / "mqtt_password").is_file():
        return mqtt.password, None
    return _read_password("$CREDENTIALS_DIRECTORY/mqtt_password", Path(creds) / "mqtt_password")


def _read_password(key: str, path: Path) -> tuple[SecretStr, str | None]:
    try:
        return SecretStr(path.read_text(encoding="utf-8").rstrip("\r\n")), None
    except OSError as exc:
        return SecretStr(""), f"{key}: cannot read {path}: {exc.strerror} {_FIX}"
    except UnicodeDecodeError:
        return SecretStr(""), f"{key}: {path} is not UTF-8 text (write the password as text)"


# The feeder's secrets (CONTRACT 2.6): (field, its *_file key, the systemd credential name).
_ERCOT_SECRETS = (
    ("password", "password_file", "ercot_password"),
    ("subscription_key", "subscription_key_file", "ercot_subscription_key"),
)


def load_ercot_api_secrets(config: Config, environ: Mapping[str, str]) -> tuple[Config, list[str]]:
    """`curtaild feed-ercot`'s account: the username, and the password and subscription key
    from env CURTAILD_ERCOT_API__* (already in the config), else the `*_file`, else the systemd
    credential. Every one is required; a problem names where each may come from."""
    api = config.ercot_api
    problems = [] if api.username else [
        "ercot_api.username: not set; the ERCOT API account's e-mail address goes here"
    ]  # fmt: skip
    found: dict[str, SecretStr] = {}
    creds = environ.get("CREDENTIALS_DIRECTORY")
    for key, file_key, credential in _ERCOT_SECRETS:
        value: SecretStr = getattr(api, key)
        path = getattr(api, file_key)
        problem = None
        if not value.get_secret_value() and path:
            value, problem = _read_password(f"ercot_api.{file_key}", Path(path))
        elif not value.get_secret_value() and creds and (Path(creds) / credential).is_file():
            value, problem = _read_password(f"credential {credential}", Path(creds) / credential)
        if problem is None and not value.get_secret_value():
            problem = f"ercot_api.{key}: not set; use {SECRETS[('ercot_api', key)]}"
        problems += [problem] if problem else []
        found[key] = value
    return config.model_copy(update={"ercot_api": api.model_copy(update=found)}), problems
