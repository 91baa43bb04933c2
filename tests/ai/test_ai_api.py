"""AI endpoints in-process, on SQLite and PostgreSQL: settings, summaries (JSON and SSE),
what the prompts hold, reply suggestions, errors."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest

from homeserver.app import Homeserver
from tests.ai.fake_inference import FakeInference
from tests.conftest import MatrixClient

AI = "/_matrix/client/unstable/org.parley.ai"


def sse_frames(text: str) -> list[tuple[str, Any]]:
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((fields["event"], orjson.loads(fields["data"])))
    return out


async def room_with_history(client: MatrixClient) -> tuple[MatrixClient, MatrixClient, str, list[str]]:
    """alice's room: one message bob may never read (history 'joined', sent before he joined),
    then two after he joined. Another room of alice's holds a message bob must never see."""
    alice = await client.register("alice")
    bob = await client.register("bob")
    room = await alice.create_room(preset="public_chat", initial_state=[
        {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "joined"}}])
    await alice.send_text(room, "SECRET before bob joined")
    other = await alice.create_room(preset="public_chat")
    await alice.send_text(other, "OTHER room chatter")
    await bob.ok("POST", f"/_matrix/client/v3/join/{room}", {})
    ids = [await alice.send_text(room, "database failover at 14:00"),
           await bob.send_text(room, "ack, I will watch the replicas")]
    return alice, bob, room, ids


async def test_settings_roundtrip_never_returns_the_token(client: MatrixClient, hs: Homeserver) -> None:
    bob = await client.register("bob")
    s = await bob.ok("GET", f"{AI}/settings")
    assert s["endpoint"] is None and s["has_token"] is False and s["available"] is True
    await bob.ok("PUT", f"{AI}/settings", {"endpoint": "http://127.0.0.1:11434", "api_style": "ollama",
                                           "token": "sk-very-secret", "models": {"summary": "qwen2.5"}})
    s = await bob.ok("GET", f"{AI}/settings")
    assert s["endpoint"] == "http://127.0.0.1:11434" and s["api_style"] == "ollama"
    assert s["has_token"] is True and s["models"] == {"summary": "qwen2.5"}
    assert "sk-very-secret" not in orjson.dumps(s).decode()
    row = await hs.ai.store.get_settings(bob.user_id)
    assert row is not None and row.token_sealed and "sk-very-secret" not in row.token_sealed
    assert hs.ai.settings.unseal(row.token_sealed) == "sk-very-secret"
    # Leaving the token out keeps it; null removes it.
    await bob.ok("PUT", f"{AI}/settings", {"endpoint": "http://127.0.0.1:11434", "api_style": "ollama"})
    assert (await bob.ok("GET", f"{AI}/settings"))["has_token"] is True
    await bob.ok("PUT", f"{AI}/settings", {"endpoint": None, "token": None})
    assert (await bob.ok("GET", f"{AI}/settings"))["has_token"] is False
    await bob.ok("DELETE", f"{AI}/settings")
    for bad in ({"api_style": "gpt"}, {"endpoint": "ftp://x"}, {"endpoint": 5}, {"models": {"nope": "x"}},
                {"token": ""}, {"endpoint": "http://user:pw@host"}):
        r = await bob.put(f"{AI}/settings", bad)
        assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_PARAM", bad


@pytest.mark.parametrize("policy", ["off", "public-only"])
async def test_user_endpoint_policy(client: MatrixClient, hs: Homeserver, policy: str) -> None:
    hs.ai.settings.cfg = replace(hs.ai.settings.cfg, user_endpoints=policy)
    bob = await client.register("bob")
    r = await bob.put(f"{AI}/settings", {"endpoint": "http://10.0.0.7:11434"})
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN"


async def test_summary_holds_exactly_what_the_user_may_read(client: MatrixClient, fake: FakeInference) -> None:
    _, bob, room, _ = await room_with_history(client)
    out = await bob.ok("POST", f"{AI}/rooms/{room}/summarize", {})
    assert out["summary"] == "The team fixed the outage." and out["message_count"] == 2
    prompt = fake.chats()[-1].body["messages"][-1]["content"]
    assert "database failover at 14:00" in prompt and "ack, I will watch the replicas" in prompt
    assert "SECRET" not in prompt and "OTHER" not in prompt
    assert prompt.index("database failover") < prompt.index("ack, I will")
    assert fake.chats()[-1].headers["authorization"] == "Bearer org-secret"
    # A stranger to the room gets nothing summarized.
    eve = await client.register("eve")
    r = await eve.post(f"{AI}/rooms/{room}/summarize", {})
    assert r.status_code == 403 and not any("eve" in str(c.body) for c in fake.chats())


async def test_summary_since_time_and_read_marker(client: MatrixClient, fake: FakeInference) -> None:
    alice, bob, room, ids = await room_with_history(client)
    await bob.ok("POST", f"/_matrix/client/v3/rooms/{room}/read_markers", {"m.fully_read": ids[0]})
    out = await bob.ok("POST", f"{AI}/rooms/{room}/summarize", {"since": "read_marker"})
    assert out["message_count"] == 1
    prompt = fake.chats()[-1].body["messages"][-1]["content"]
    assert "ack, I will watch" in prompt and "database failover" not in prompt
    later = int(time.time() * 1000) + 1
    while int(time.time() * 1000) <= later:  # the next message must carry a later timestamp
        await asyncio.sleep(0.002)
    await alice.send_text(room, "all clear")
    out = await bob.ok("POST", f"{AI}/rooms/{room}/summarize", {"since_ts": later})
    assert out["message_count"] == 1 and "all clear" in fake.chats()[-1].body["messages"][-1]["content"]


async def test_summary_streams_over_sse_in_order(client: MatrixClient, fake: FakeInference) -> None:
    fake.reply = [f"w{i} " for i in range(30)]
    _, bob, room, _ = await room_with_history(client)
    r = await bob.request("POST", f"{AI}/rooms/{room}/summarize", {"stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    frames = sse_frames(r.text)
    assert frames[0] == ("ai.start", {"model": "llama3.2", "message_count": 2})
    assert [d["text"] for e, d in frames if e == "ai.token"] == fake.reply
    assert frames[-1] == ("ai.done", {"text": "".join(fake.reply)})


async def test_thread_summary(client: MatrixClient, fake: FakeInference) -> None:
    alice, bob, room, ids = await room_with_history(client)
    await bob.ok("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t1", {
        "msgtype": "m.text", "body": "in thread: rollback done",
        "m.relates_to": {"rel_type": "m.thread", "event_id": ids[0]}})
    await alice.send_text(room, "unrelated main timeline")
    out = await bob.ok("POST", f"{AI}/rooms/{room}/summarize", {"thread_id": ids[0]})
    assert out["message_count"] == 2
    prompt = fake.chats()[-1].body["messages"][-1]["content"]
    assert "rollback done" in prompt and "database failover" in prompt and "unrelated" not in prompt


async def test_encrypted_room_is_refused(client: MatrixClient, fake: FakeInference) -> None:
    alice = await client.register("alice")
    room = await alice.create_room(initial_state=[
        {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
    r = await alice.post(f"{AI}/rooms/{room}/summarize", {})
    assert r.status_code == 403 and r.json()["errcode"] == "ORG.PARLEY.AI_ENCRYPTED_ROOM"
    assert fake.chats() == []


async def test_reply_suggestions(client: MatrixClient, fake: FakeInference) -> None:
    fake.reply = ["1. Sounds good\n", "2. I'm on it\n", "3. \"Can we talk at 3?\"\n", "4. extra"]
    _, bob, room, ids = await room_with_history(client)
    out = await bob.ok("POST", f"{AI}/rooms/{room}/suggest_replies", {"event_id": ids[0]})
    assert out == {"suggestions": ["Sounds good", "I'm on it", "Can we talk at 3?"]}
    prompt = fake.chats()[-1].body["messages"][-1]["content"]
    assert "database failover" in prompt and "SECRET" not in prompt


async def test_errors_are_matrix_errors(client: MatrixClient, fake: FakeInference, hs: Homeserver) -> None:
    _, bob, room, ids = await room_with_history(client)
    await bob.ok("PUT", f"{AI}/settings", {"models": {"summary": "missing-model"}})
    r = await bob.post(f"{AI}/rooms/{room}/summarize", {"stream": True})
    assert r.status_code == 404 and r.json()["errcode"] == "ORG.PARLEY.AI_MODEL_NOT_FOUND"
    for body in ({"since_ts": "yesterday"}, {"since": "forever"}, {"thread_id": "nope"}, {"stream": "yes"}):
        r = await bob.post(f"{AI}/rooms/{room}/summarize", body)
        assert r.status_code == 400, body
    r = await bob.post(f"{AI}/rooms/!bad/summarize", {})
    assert r.status_code == 400
    r = await bob.post(f"{AI}/rooms/{room}/suggest_replies", {"event_id": 3})
    assert r.status_code == 400
    hs.ai.settings.cfg = replace(hs.ai.settings.cfg, endpoint=None)
    await bob.ok("DELETE", f"{AI}/settings")
    r = await bob.post(f"{AI}/rooms/{room}/summarize", {})
    assert r.status_code == 404 and r.json()["errcode"] == "ORG.PARLEY.AI_NOT_CONFIGURED"


async def test_hung_endpoint_times_out_without_blocking_others(client: MatrixClient, fake: FakeInference,
                                                               hs: Homeserver) -> None:
    _, bob, room, _ = await room_with_history(client)
    hs.ai.client.http.timeout = httpx.Timeout(30.0, connect=5.0, read=5.0)
    fake.hang = True
    hung = asyncio.create_task(bob.post(f"{AI}/rooms/{room}/summarize", {"stream": True}))
    await asyncio.wait_for(fake.stream_started.wait(), 10)
    # Meanwhile the server answers other requests, including other AI work on another endpoint.
    other = await FakeInference().start()
    try:
        await bob.ok("PUT", f"{AI}/settings", {"endpoint": other.url})
        out = await bob.ok("POST", f"{AI}/rooms/{room}/summarize", {})
        assert out["summary"] == "The team fixed the outage."
        assert not hung.done()  # answered while the hung request still waits for its read timeout
    finally:
        await other.stop()
    r = await asyncio.wait_for(hung, 30)
    assert r.status_code == 504 and r.json()["errcode"] == "ORG.PARLEY.AI_TIMEOUT"


async def test_models_listed_from_the_endpoint(client: MatrixClient, fake: FakeInference) -> None:
    bob = await client.register("bob")
    out = await bob.ok("GET", f"{AI}/models")
    assert set(out["models"]) >= {"llama3.2", "qwen2.5", "nomic-embed-text"}
    await bob.ok("PUT", f"{AI}/settings", {"endpoint": fake.url, "api_style": "ollama"})
    out = await bob.ok("GET", f"{AI}/models")
    assert "llama3.2:latest" in out["models"] and fake.requests[-1].path == "/api/tags"


async def wait_job(bob: MatrixClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        job = await bob.ok("GET", f"{AI}/jobs/{job_id}")
        if job["status"] not in ("queued", "running"):
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.05)


async def test_topics_and_background_summary_as_jobs(client: MatrixClient, fake: FakeInference) -> None:
    fake.reply = ["- Databases\n", "- On-call\n", "Incidents"]
    _, bob, room, _ = await room_with_history(client)
    assert (await bob.ok("GET", f"{AI}/rooms/{room}/topics"))["labels"] == []
    job_id = (await bob.ok("POST", f"{AI}/rooms/{room}/topics", {}))["job_id"]
    job = await wait_job(bob, job_id)
    assert job["status"] == "done" and job["result"]["labels"] == ["Databases", "On-call", "Incidents"]
    topics = await bob.ok("GET", f"{AI}/rooms/{room}/topics")
    assert topics["labels"] == ["Databases", "On-call", "Incidents"] and topics["job"]["job_id"] == job_id
    prompt = fake.chats()[-1].body["messages"][-1]["content"]
    assert "database failover" in prompt and "SECRET" not in prompt and "OTHER" not in prompt
    # Labels refresh by themselves once the channel has grown (here without the 10-minute pause).
    import homeserver.ai.service as ai_service

    before = len(fake.chats())
    assert (await bob.ok("GET", f"{AI}/rooms/{room}/topics"))["job"]["job_id"] == job_id  # nothing newer yet
    await bob.send_text(room, "new topic: hiring plans")
    old, ai_service.TOPICS_REFRESH_MS = ai_service.TOPICS_REFRESH_MS, 0
    try:
        refreshed = (await bob.ok("GET", f"{AI}/rooms/{room}/topics"))["job"]
    finally:
        ai_service.TOPICS_REFRESH_MS = old
    assert refreshed["job_id"] != job_id
    assert (await wait_job(bob, refreshed["job_id"]))["status"] == "done"
    assert len(fake.chats()) == before + 1 and "hiring plans" in fake.chats()[-1].body["messages"][-1]["content"]
    # Someone else cannot read bob's job.
    eve = await client.register("eve")
    assert (await eve.get(f"{AI}/jobs/{job_id}")).status_code == 404
    fake.reply = ["Summary in the background."]
    job_id = (await bob.ok("POST", f"{AI}/rooms/{room}/summarize", {"background": True}))["job_id"]
    job = await wait_job(bob, job_id)
    assert job["result"] == {"summary": "Summary in the background.", "message_count": 3, "model": "llama3.2"}
