"""Throwaway certificates for TLS tests, made with the openssl CLI as deploy/README.md shows.

A CA, a broker certificate for 127.0.0.1 (IP SAN: clients check the name they dial) and a
client certificate, all ECDSA P-256 (fast to make), valid for a day. The commands are the ones
the README gives a site operator, so the steps documented there are the steps proven here.
Everything lands in one world-readable directory: mosquitto started as root drops to user
mosquitto and must still read its certificate and key (a real site uses 0640 root:mosquitto).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

OPENSSL_MISSING = "openssl is not installed: run `sudo apt-get install openssl`"

SERVER_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {sans}
"""

CLIENT_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
"""


@dataclass(frozen=True, slots=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class Pki:
    """One site's CA and what it signed; `other_ca` is a CA nobody here trusts."""

    dir: Path
    ca: CertPair
    broker: CertPair
    client: CertPair
    other_ca: CertPair

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def find_openssl() -> str | None:
    return shutil.which("openssl")


def make_pki(openssl: str, broker_ip: str = "127.0.0.1") -> Pki:
    """A fresh CA, broker and client certificates, and an unrelated CA, in a new directory."""
    directory = Path(tempfile.mkdtemp(prefix="curtaild-pki-"))
    directory.chmod(0o755)  # user mosquitto must traverse it
    ca = make_ca(openssl, directory, "site-ca", "curtaild test site CA")
    broker = issue(openssl, ca, directory, "broker", broker_ip, SERVER_EXTENSIONS.format(
        sans=f"IP:{broker_ip}"))  # fmt: skip
    client = issue(openssl, ca, directory, "client", "curtaild", CLIENT_EXTENSIONS)
    other_ca = make_ca(openssl, directory, "other-ca", "some other CA")
    for path in directory.iterdir():
        path.chmod(0o644)  # throwaway keys: readable by user mosquitto after its privilege drop
    return Pki(directory, ca, broker, client, other_ca)


def make_ca(openssl: str, directory: Path, name: str, common_name: str) -> CertPair:
    pair = CertPair(directory / f"{name}.crt", directory / f"{name}.key")
    _run([openssl, "req", "-x509", "-new", "-nodes",
          "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
          "-keyout", str(pair.key), "-out", str(pair.cert), "-days", "1",
          "-subj", f"/CN={common_name}",
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])  # fmt: skip
    return pair


def issue(
    openssl: str, ca: CertPair, directory: Path, name: str, common_name: str, extensions: str
) -> CertPair:
    """A key, a request and the certificate `ca` signs for it with `extensions`."""
    pair = CertPair(directory / f"{name}.crt", directory / f"{name}.key")
    csr, ext = directory / f"{name}.csr", directory / f"{name}.ext"
    ext.write_text(extensions, encoding="utf-8")
    _run([openssl, "req", "-new", "-nodes",
          "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
          "-keyout", str(pair.key), "-out", str(csr), "-subj", f"/CN={common_name}"])  # fmt: skip
    _run([openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
          "-CAcreateserial", "-days", "1", "-out", str(pair.cert), "-extfile", str(ext)])  # fmt: skip
    return pair


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed: {result.stderr.strip()}")
