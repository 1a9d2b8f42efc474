"""Secrets and the files a config names: readable at every load, loaded once, redacted."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretBytes, SecretStr

from controller.cli import main
from controller.config import Config, load_config
from controller.config_secrets import SECRETS
from tests.unit.config_support import MINIMAL, problems_of, write

FIX = "(check the path and permissions)"


def test_password_from_file_env_and_credentials(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    text = MINIMAL + f'[mqtt]\npassword_file = "{secret}"\n'
    assert load_config(write(tmp_path, text), environ={}).mqtt.password.get_secret_value() == (
        "s3cret"
    )
    env = {"CURTAILD_MQTT__PASSWORD": "from-env"}
    config = load_config(write(tmp_path, text), environ=env)
    assert config.mqtt.password.get_secret_value() == "from-env"
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt_password").write_text("cred\n")
    config = load_config(write(tmp_path, MINIMAL), environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert config.mqtt.password.get_secret_value() == "cred"


def test_unreadable_password_file_is_one_clear_problem(tmp_path: Path) -> None:
    text = MINIMAL + '[mqtt]\npassword_file = "/nonexistent/pw"\n'
    expected = f"mqtt.password_file: cannot read /nonexistent/pw: No such file or directory {FIX}"
    assert problems_of(tmp_path, text) == [expected]
    # Set means it must be readable, even when the env supplies the password.
    assert problems_of(tmp_path, text, {"CURTAILD_MQTT__PASSWORD": "x"}) == [expected]


def test_password_file_that_is_not_text(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_bytes(b"\xff\xfe\n")
    problems = problems_of(tmp_path, MINIMAL + f'[mqtt]\npassword_file = "{secret}"\n')
    assert problems == [
        f"mqtt.password_file: {secret} is not UTF-8 text (write the password as text)"
    ]


def test_hmac_key_is_loaded_into_the_config(tmp_path: Path) -> None:
    key = tmp_path / "hmac.key"
    key.write_bytes(b"k\xffey\r\n\n")
    config = load_config(write(tmp_path, MINIMAL + f'[override]\nhmac_key_file = "{key}"\n'), {})
    assert config.override.hmac_key is not None
    assert config.override.hmac_key.get_secret_value() == b"k\xffey"
    assert load_config(write(tmp_path, MINIMAL), environ={}).override.hmac_key is None


def test_hmac_key_file_missing_empty_or_a_directory(tmp_path: Path) -> None:
    text = MINIMAL + '[override]\nhmac_key_file = "{}"\n'
    missing = tmp_path / "absent.key"
    assert problems_of(tmp_path, text.format(missing)) == [
        f"override.hmac_key_file: cannot read {missing}: No such file or directory {FIX}"
    ]
    empty = tmp_path / "empty.key"
    empty.write_bytes(b"\r\n")
    [problem] = problems_of(tmp_path, text.format(empty))
    assert problem.startswith(f"override.hmac_key_file: {empty} is empty")
    assert "signing key" in problem
    # Running as root, permissions do not stop a read; a directory does.
    assert problems_of(tmp_path, text.format(tmp_path)) == [
        f"override.hmac_key_file: cannot read {tmp_path}: Is a directory {FIX}"
    ]


def test_a_reload_rereads_every_file(tmp_path: Path) -> None:
    key = tmp_path / "hmac.key"
    key.write_text("one\n")
    path = write(tmp_path, MINIMAL + f'[override]\nhmac_key_file = "{key}"\n')
    assert load_config(path, environ={}).override.hmac_key == SecretBytes(b"one")
    key.unlink()
    assert problems_of(tmp_path, path.read_text())[0].startswith("override.hmac_key_file:")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[override]\nhmac_key = "abc"\n', "override.hmac_key: secrets are never read from the"),
        ('[mqtt]\npassword = "x"\n', "mqtt.password: secrets are never read from the config"),
        ('[ercot_api]\npassword = "x"\n', "ercot_api.password: secrets are never read"),
        ('[ercot_api]\nsubscription_key = "x"\n', "ercot_api.subscription_key: secrets are"),
    ],
)
def test_secrets_in_the_file_are_refused(tmp_path: Path, text: str, where: str) -> None:
    problems = problems_of(tmp_path, MINIMAL + text)
    assert len(problems) == 1
    assert problems[0].startswith(where)


def test_hmac_key_from_env_is_refused_other_secrets_accepted(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, MINIMAL, {"CURTAILD_OVERRIDE__HMAC_KEY": "abc"})
    assert problems == [
        (
            "env CURTAILD_OVERRIDE__HMAC_KEY: this secret is read only from override.hmac_key_file; "
            "unset the variable and set override.hmac_key_file"
        )
    ]
    env = {"CURTAILD_ERCOT_API__PASSWORD": "p", "CURTAILD_ERCOT_API__SUBSCRIPTION_KEY": "s"}
    config = load_config(write(tmp_path, MINIMAL), environ=env)
    assert config.ercot_api.password.get_secret_value() == "p"
    assert config.ercot_api.subscription_key.get_secret_value() == "s"


@pytest.mark.parametrize("key", ["tls_ca_file", "tls_cert_file", "tls_key_file"])
def test_unreadable_tls_file_names_key_and_path(tmp_path: Path, key: str) -> None:
    other = {"tls_cert_file": "tls_key_file", "tls_key_file": "tls_cert_file"}.get(key)
    pair = f'{other} = "{tmp_path / "x.pem"}"\n' if other else ""
    (tmp_path / "x.pem").write_text("not read: its partner is unreadable\n")
    problems = problems_of(tmp_path, MINIMAL + f'[mqtt]\n{key} = "/nonexistent/{key}"\n{pair}')
    assert problems == [
        f"mqtt.{key}: cannot read /nonexistent/{key}: No such file or directory {FIX}"
    ]


@pytest.mark.parametrize(("given", "missing"), [("tls_cert_file", "tls_key_file"),
                                                ("tls_key_file", "tls_cert_file")])  # fmt: skip
def test_client_certificate_needs_both_halves(
    tmp_path: Path, pki: dict[str, Path], given: str, missing: str
) -> None:
    problems = problems_of(tmp_path, MINIMAL + f'[mqtt]\n{given} = "{pki["a.pem"]}"\n')
    assert problems == [
        (
            f"mqtt.{given}: set without mqtt.{missing}; a client certificate needs both "
            "(set both, or neither for no client certificate)"
        )
    ]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two self-signed EC certificates with their keys, and key `a` encrypted, made by openssl."""
    where = tmp_path_factory.mktemp("pki")
    for name in ("a", "b"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-days", "1", "-subj", f"/CN=test-{name}",
                 "-keyout", str(where / f"{name}.key"), "-out", str(where / f"{name}.pem"))  # fmt: skip
    _openssl("pkey", "-in", str(where / "a.key"), "-aes256", "-passout", "pass:secret",
             "-out", str(where / "a-encrypted.key"))  # fmt: skip
    (where / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    return {path.name: path for path in where.iterdir()}


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def tls(pki: dict[str, Path], ca: str, cert: str, key: str) -> str:
    return (
        MINIMAL + f'[mqtt]\ntls_ca_file = "{pki[ca]}"\n'
        f'tls_cert_file = "{pki[cert]}"\ntls_key_file = "{pki[key]}"\n'
    )


def test_usable_tls_files_load(tmp_path: Path, pki: dict[str, Path]) -> None:
    config = load_config(write(tmp_path, tls(pki, "a.pem", "b.pem", "b.key")), environ={})
    assert config.mqtt.tls_cert_file == str(pki["b.pem"])


@pytest.mark.parametrize(
    ("files", "start"),
    [
        (("garbage.pem", "a.pem", "a.key"), "mqtt.tls_ca_file: <garbage.pem> holds no usable CA"),
        (("a.key", "a.pem", "a.key"), "mqtt.tls_ca_file: <a.key> holds no usable CA"),
        (("a.pem", "a.pem", "b.key"), "mqtt.tls_cert_file: <a.pem> with mqtt.tls_key_file <b.key>"),
        (("a.pem", "a.pem", "a-encrypted.key"), "mqtt.tls_cert_file: <a.pem> with mqtt.tls_key"),
    ],
)
def test_unusable_tls_material_is_found_at_load(
    tmp_path: Path, pki: dict[str, Path], files: tuple[str, str, str], start: str
) -> None:
    for name, path in pki.items():
        start = start.replace(f"<{name}>", str(path))
    [problem] = problems_of(tmp_path, tls(pki, *files))
    assert problem.startswith(start), problem


def test_every_file_problem_is_listed_with_the_cross_field_ones(tmp_path: Path) -> None:
    text = MINIMAL.replace("efficiency_j_per_th = 21.5", 'efficiency_j_per_th = 21.5\npdus = ["x"]')
    text += '[mqtt]\ntls_ca_file = "/nonexistent/ca"\ntls_cert_file = "/nonexistent/crt"\n'
    text += '[override]\nhmac_key_file = "/nonexistent/key"\n'
    problems = problems_of(tmp_path, text)
    assert [p.split(":")[0] for p in problems] == [
        "mqtt.tls_ca_file", "mqtt.tls_cert_file", "override.hmac_key_file", "mqtt.tls_cert_file",
        "pools.0.pdus.0",
    ]  # fmt: skip


def test_check_config_redacts_every_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pw").write_text("hunter2\n")
    (tmp_path / "hmac.key").write_text("sesame-key\n")
    text = MINIMAL + f'[mqtt]\npassword_file = "{tmp_path / "pw"}"\n'
    text += f'[override]\nhmac_key_file = "{tmp_path / "hmac.key"}"\n'
    path = write(tmp_path, text)
    env = {"CURTAILD_ERCOT_API__SUBSCRIPTION_KEY": "apikey-42"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    for secret in ("hunter2", "sesame", "apikey-42"):
        assert secret not in out
    sections = out.split("\n\n")
    assert 'password = "<redacted>"' in next(s for s in sections if s.startswith("[mqtt]"))
    assert 'hmac_key = "<redacted>"' in next(s for s in sections if s.startswith("[override]"))
    ercot = next(s for s in sections if s.startswith("[ercot_api]"))
    assert 'subscription_key = "<redacted>"' in ercot
    assert 'password = ""' in ercot
    assert "poi_limit_kw = 30000.0" in out


def test_every_secret_field_is_listed_for_redaction() -> None:
    found = set(_secret_fields(Config))
    assert found == set(SECRETS)


def _secret_fields(model: type[BaseModel], section: str = "") -> list[Any]:
    fields = []
    for name, field in model.model_fields.items():
        text = repr(field.annotation)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            fields += _secret_fields(field.annotation, name)
        elif SecretStr.__name__ in text or SecretBytes.__name__ in text:
            fields.append((section, name))
    return fields
