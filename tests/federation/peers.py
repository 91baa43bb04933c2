"""Real servers on loopback for federation tests: a test CA, Synapse and Parley with TLS.

Synapse comes from PyPI into bench/.venv-synapse (cached, git-ignored; about 30 s the first
time), the settings are those of docs/synapse-peer.md. Every process started here is stopped by
the fixture that started it.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.synapse_venv import ensure_synapse
from tests.e2e.conftest import free_port, spawn_server, wait_ready

_RC = {"per_second": 100000, "burst_count": 100000}
# Synapse's default ip_range_blacklist without loopback, which the peers here live on.
_BLOCKED = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "192.0.0.0/24",
            "169.254.0.0/16", "192.88.99.0/24", "198.18.0.0/15", "192.0.2.0/24", "198.51.100.0/24",
            "203.0.113.0/24", "224.0.0.0/4", "fe80::/10", "fc00::/7", "2001:db8::/32", "ff00::/8", "fec0::/10"]


@dataclass(frozen=True)
class TestCA:
    __test__ = False  # not a test class, despite its name

    ca_file: Path
    cert_file: Path  # leaf for IP 127.0.0.1 and DNS localhost
    key_file: Path


def make_test_ca(folder: Path) -> TestCA:
    """A CA and one leaf certificate for 127.0.0.1 / localhost, signed by it (PEM files)."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Parley federation test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                                  x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    out = TestCA(folder / "ca.pem", folder / "leaf.pem", folder / "leaf.key")
    out.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out.cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    out.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return out


@dataclass
class Peer:
    server_name: str
    client_base: str  # plain HTTP client API
    proc: subprocess.Popen[bytes]
    log: Path
    data: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _wait(proc: subprocess.Popen[bytes], base: str, log: Path, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited during start:\n" + log.read_text(errors="replace")[-3000:])
        try:
            if httpx.get(f"{base}/_matrix/client/versions", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{what} did not start within {limit:.0f} s:\n"
                               + log.read_text(errors="replace")[-3000:])
        time.sleep(0.05)  # readiness probe interval, not synchronization of test steps


def start_synapse(folder: Path, tls: TestCA) -> Peer:
    py = ensure_synapse()
    folder.mkdir(parents=True, exist_ok=True)
    fed_port, client_port = free_port(), free_port()
    name = f"127.0.0.1:{fed_port}"
    cfg = folder / "homeserver.yaml"
    subprocess.run([str(py), "-m", "synapse.app.homeserver", "--generate-config", "--server-name", name,
                    "--config-path", str(cfg), "--report-stats=no", "--data-directory", str(folder)],
                   check=True, capture_output=True, cwd=folder)
    overrides = {
        "listeners": [
            {"port": client_port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
             "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}]},
            {"port": fed_port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": True,
             "resources": [{"names": ["federation"], "compress": False}]},
        ],
        "tls_certificate_path": str(tls.cert_file), "tls_private_key_path": str(tls.key_file),
        "federation_verify_certificates": True, "federation_custom_ca_list": [str(tls.ca_file)],
        "ip_range_blacklist": _BLOCKED, "ip_range_whitelist": ["127.0.0.0/8", "::1/128"],
        "database": {"name": "sqlite3", "args": {"database": str(folder / "homeserver.db")}},
        "enable_registration": True, "enable_registration_without_verification": True,
        "report_stats": False, "enable_metrics": False, "url_preview_enabled": False,
        "bcrypt_rounds": 4, "trusted_key_servers": [], "suppress_key_server_warning": True,
        "federation": {"destination_min_retry_interval": "1s", "destination_max_retry_interval": "5s"},
        **{k: _RC for k in ("rc_message", "rc_registration", "rc_admin_redaction", "rc_joins_per_room",
                            "rc_key_requests", "rc_room_creation", "rc_profile")},
        "rc_login": {"address": _RC, "account": _RC, "failed_attempts": _RC},
        "rc_joins": {"local": _RC, "remote": _RC},
        "rc_federation": {"window_size": 1000, "sleep_limit": 100000, "sleep_delay": 1,
                          "reject_limit": 100000, "concurrent": 1000},
    }
    over = folder / "overrides.yaml"
    over.write_text(yaml.safe_dump(overrides))
    return _launch_synapse(py, folder, name, f"http://127.0.0.1:{client_port}")


def _launch_synapse(py: Path, folder: Path, name: str, client_base: str) -> Peer:
    log = folder / "synapse.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(py), "-m", "synapse.app.homeserver", "-c", str(folder / "homeserver.yaml"),
                                 "-c", str(folder / "overrides.yaml")],
                                stdout=out, stderr=subprocess.STDOUT, cwd=str(folder))
    peer = Peer(name, client_base, proc, log, folder)
    try:
        _wait(proc, peer.client_base, log, 120, "Synapse")
    except BaseException:
        peer.stop()
        raise
    return peer


def restart_synapse(peer: Peer) -> None:
    """Start a stopped Synapse again: same data, ports and name (`peer.proc` is replaced)."""
    peer.stop()
    peer.proc = _launch_synapse(ensure_synapse(), peer.data, peer.server_name, peer.client_base).proc


def start_parley(folder: Path, tls: TestCA, *, fed_port: int | None = None, client_port: int | None = None,
                 **env: str) -> Peer:
    folder.mkdir(parents=True, exist_ok=True)
    fed_port = fed_port or free_port()
    name = f"127.0.0.1:{fed_port}"
    proc, base = spawn_server(
        folder, f"sqlite:///{folder}/parley.db", name, port=client_port,
        PARLEY_FEDERATION__ENABLED="true", PARLEY_FEDERATION__LISTEN=f"127.0.0.1:{fed_port}",
        PARLEY_FEDERATION__TLS_CERTIFICATE_PATH=str(tls.cert_file),
        PARLEY_FEDERATION__TLS_PRIVATE_KEY_PATH=str(tls.key_file),
        PARLEY_FEDERATION__CA_FILE=str(tls.ca_file), PARLEY_FEDERATION__IP_RANGE_ALLOWLIST="127.0.0.0/8",
        PARLEY_LOG_LEVEL="INFO", **env)
    peer = Peer(name, base, proc, folder / "server.log", folder)
    try:
        wait_ready(proc, base, peer.log)
    except BaseException:
        peer.stop()
        raise
    return peer


def restart_parley(peer: Peer, tls: TestCA, **env: str) -> None:
    """Start a stopped Parley again on its data, ports and name (`peer.proc` is replaced)."""
    peer.stop()
    fed_port = int(peer.server_name.rsplit(":", 1)[1])
    client_port = int(peer.client_base.rsplit(":", 1)[1])
    peer.proc = start_parley(peer.data, tls, fed_port=fed_port, client_port=client_port, **env).proc


@contextmanager
def parley_and_synapse(folder: Path, tls: TestCA) -> Iterator[tuple[Peer, Peer]]:
    """A Parley and a Synapse of their own (for tests that stop or restart them), stopped after."""
    synapse = start_synapse(folder / "synapse", tls)
    try:
        parley = start_parley(folder / "parley", tls)
        try:
            yield parley, synapse
        finally:
            parley.stop()
    finally:
        synapse.stop()
