"""User endpoints under the `public-only` policy cannot reach the server's own network: not by
address, not by a name that resolves there, not by a redirect."""

from __future__ import annotations

import pytest

from homeserver.ai.client import InferenceClient
from homeserver.ai.endpoint import Endpoint
from homeserver.config_ai import AIConfig
from homeserver.outbound import AddressPolicy
from homeserver.protocol.errors import MatrixError
from tests.ai.fake_inference import FakeInference

NAMES = {"llm.internal.example": ["10.20.30.40"], "mixed.example": ["93.184.216.34", "192.168.1.9"],
         "loop.example": ["127.0.0.1"]}


async def fake_dns(host: str, port: int) -> list[str]:
    if host in NAMES:
        return NAMES[host]
    raise MatrixError(502, "M_UNKNOWN", "Could not resolve the host")


async def refused(url: str, policy: AddressPolicy) -> MatrixError:
    c = InferenceClient(AIConfig(retries=0, connect_timeout_s=2.0))
    try:
        with pytest.raises(MatrixError) as e:
            await c.models(Endpoint(url, "openai", "user-token", policy))
    finally:
        await c.close()
    return e.value


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:11434", "http://10.1.2.3:8000", "http://10.255.255.254", "http://169.254.169.254",
    "http://[::1]:11434", "http://[::ffff:10.0.0.1]", "http://localhost:11434",
    "http://llm.internal.example:8080", "http://mixed.example", "http://loop.example:1234",
])
async def test_private_addresses_are_refused(url: str) -> None:
    resolver = fake_dns if "example" in url else None
    policy = AddressPolicy((), resolver) if resolver else AddressPolicy(())
    err = await refused(url, policy)
    assert (err.status, err.errcode) == (403, "M_FORBIDDEN")


async def test_allowlisted_name_is_pinned_to_the_checked_address(fake: FakeInference) -> None:
    """A name that resolves into the allow-list is reached at the checked address, with the
    name kept in the Host header."""
    policy = AddressPolicy(("127.0.0.1/32",), fake_dns)
    c = InferenceClient(AIConfig(retries=0))
    try:
        models = await c.models(Endpoint(f"http://loop.example:{fake.port}", "openai", "tok", policy))
    finally:
        await c.close()
    assert "llama3.2" in models
    assert fake.requests[-1].headers["host"] == f"loop.example:{fake.port}"


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1:8080/v1/models",
                                    "http://llm.internal.example/v1/models"])
async def test_redirects_into_the_private_network_are_refused(fake: FakeInference, target: str) -> None:
    fake.redirects["/v1/models"] = target
    policy = AddressPolicy(("127.0.0.1/32",), fake_dns)
    err = await refused(fake.url, policy)
    assert (err.status, err.errcode) == (403, "M_FORBIDDEN")
    assert [r.path for r in fake.requests] == ["/v1/models"]  # the fake was asked; the target never


async def test_redirect_within_allowed_addresses_is_followed_without_the_token(fake: FakeInference) -> None:
    other = await FakeInference().start()
    try:
        fake.redirects["/v1/models"] = f"{other.url}/v1/models"
        c = InferenceClient(AIConfig(retries=0))
        try:
            models = await c.models(Endpoint(fake.url, "openai", "tok", AddressPolicy(("127.0.0.1/32",))))
        finally:
            await c.close()
        assert "llama3.2" in models
        assert fake.requests[0].headers["authorization"] == "Bearer tok"
        assert "authorization" not in other.requests[0].headers
    finally:
        await other.stop()
