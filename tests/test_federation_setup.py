"""The [federation] config table, registration_shared_secret, key rotation and nonce lifetime."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from homeserver.accounts.shared_secret import NONCE_LIFETIME_MS, SharedSecretRegistration
from homeserver.app import Homeserver
from homeserver.cli import main
from homeserver.config import ConfigError, build_config, load_config
from homeserver.keys.signing_key import create_signing_key, read_key_file
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.signing import key_id, verify_key_b64


def test_federation_defaults_and_environment(tmp_path: Path) -> None:
    cfg = load_config(None, env={})
    assert cfg.federation.enabled is False and cfg.federation.listen is None
    assert cfg.registration_shared_secret is None
    cert, key, ca = (tmp_path / n for n in ("c.pem", "k.pem", "ca.pem"))
    for p in (cert, key, ca):
        p.write_text("x")
    cfg = load_config(None, env={
        "PARLEY_FEDERATION__ENABLED": "true", "PARLEY_FEDERATION__LISTEN": "0.0.0.0:8448",
        "PARLEY_FEDERATION__TLS_CERTIFICATE_PATH": str(cert), "PARLEY_FEDERATION__TLS_PRIVATE_KEY_PATH": str(key),
        "PARLEY_FEDERATION__CA_FILE": str(ca), "PARLEY_FEDERATION__IP_RANGE_ALLOWLIST": "127.0.0.0/8,100.64.0.0/10",
        "PARLEY_FEDERATION__DOMAIN_ALLOWLIST": "a.example,b.example:8448",
        "PARLEY_REGISTRATION_SHARED_SECRET": "xyz"})
    fed = cfg.federation
    assert fed.enabled and fed.listen == ("0.0.0.0", 8448)
    assert (fed.tls_certificate_path, fed.tls_private_key_path, fed.ca_file) == (str(cert), str(key), str(ca))
    assert fed.ip_range_allowlist == ("127.0.0.0/8", "100.64.0.0/10")
    assert fed.domain_allowlist == ("a.example", "b.example:8448")
    assert fed.allows_domain("a.example") and not fed.allows_domain("c.example")
    assert cfg.registration_shared_secret == "xyz"


def test_federation_paths_in_a_file_resolve_against_it(tmp_path: Path) -> None:
    (tmp_path / "tls").mkdir()
    for n in ("cert.pem", "key.pem"):
        (tmp_path / "tls" / n).write_text("x")
    conf = tmp_path / "parley.toml"
    conf.write_text('[federation]\nenabled = true\nlisten = "127.0.0.1:8448"\n'
                    'tls_certificate_path = "tls/cert.pem"\ntls_private_key_path = "tls/key.pem"\n')
    fed = load_config(str(conf), env={}).federation
    assert fed.tls_certificate_path == str(tmp_path / "tls" / "cert.pem")


@pytest.mark.parametrize(("raw", "key"), [
    ({"federation": {"enabled": "perhaps"}}, "federation.enabled"),
    ({"federation": {"listen": "8448"}}, "federation.listen"),
    ({"federation": {"listen": "0.0.0.0:8448"}}, "federation.listen"),  # no certificate
    ({"federation": {"tls_certificate_path": "/nonexistent/cert.pem"}}, "federation.tls_certificate_path"),
    ({"federation": {"ca_file": "/nonexistent/ca.pem"}}, "federation.ca_file"),
    ({"federation": {"ip_range_allowlist": ["10.0.0.0/33"]}}, "federation.ip_range_allowlist"),
    ({"federation": {"domain_allowlist": ["bad name!"]}}, "federation.domain_allowlist"),
    ({"federation": {"nonsense": 1}}, "federation.nonsense"),
    ({"federation": "yes"}, "federation"),
    ({"registration_shared_secret": 5}, "registration_shared_secret"),
])
def test_federation_config_errors(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        build_config(raw)
    assert e.value.key == key


def test_nonces_expire() -> None:
    reg = SharedSecretRegistration("s", None, None)  # type: ignore[arg-type]
    nonce = reg.new_nonce(now_ms=1_000_000)
    reg._check_nonce(nonce, 1_000_000 + NONCE_LIFETIME_MS)
    with pytest.raises(MatrixError):
        reg._check_nonce(nonce, 1_000_001 + NONCE_LIFETIME_MS)
    with pytest.raises(MatrixError):
        SharedSecretRegistration("other", None, None)._check_nonce(nonce, 1_000_000)  # type: ignore[arg-type]


def test_rotate_signing_key_keeps_the_old_key_and_sessions(tmp_path: Path) -> None:
    conf = tmp_path / "parley.toml"
    conf.write_text(f'server_name = "rot.example"\ndata_dir = "{tmp_path}"\n'
                    f'database = "sqlite:///{tmp_path}/parley.db"\nsigning_key_path = "{tmp_path}/signing.key"\n'
                    f'media_dir = "{tmp_path}/media"\n[federation]\nenabled = true\n')
    cfg = load_config(str(conf), env={})
    create_signing_key(cfg.signing_key_path)
    first, _ = read_key_file(cfg.signing_key_path)

    async def register() -> str:
        hs = await Homeserver.start(cfg)
        try:
            return str((await hs.accounts.register("erin", "pw-erin-123"))["access_token"])
        finally:
            await hs.close()

    token = asyncio.run(register())
    before = int(time.time() * 1000)
    assert main(["--config", str(conf), "rotate-signing-key"]) == 0
    current, retired = read_key_file(cfg.signing_key_path)
    assert key_id(current) != key_id(first) and [key_id(r.key) for r in retired] == [key_id(first)]
    assert retired[0].expired_ts >= before

    async def after() -> None:
        hs = await Homeserver.start(cfg)  # the database accepts the new key
        try:
            assert (await hs.accounts.authenticate(token)).user_id.startswith("@erin:")
            published = hs.federation.keys.own_response()
            assert list(published["verify_keys"]) == [key_id(current)]
            old = published["old_verify_keys"][key_id(first)]
            assert old == {"key": verify_key_b64(first), "expired_ts": retired[0].expired_ts}
            assert list(published["signatures"]["rot.example"]) == [key_id(current)]
        finally:
            await hs.close()

    asyncio.run(after())
    assert main(["--config", str(conf), "rotate-signing-key"]) == 0  # twice: both old keys kept
    assert len(read_key_file(cfg.signing_key_path)[1]) == 2
