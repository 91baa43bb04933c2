"""Asking a question about a channel, in-process on SQLite and PostgreSQL: the prompt holds the
question and exactly the messages the asker may read; JSON, SSE and job answers; errors."""

from __future__ import annotations

from tests.ai.fake_inference import FakeInference
from tests.ai.test_ai_api import AI, room_with_history, sse_frames, wait_job
from tests.conftest import MatrixClient

QUESTION = "When is the database failover?"


async def test_ask_prompt_holds_the_question_and_only_readable_messages(client: MatrixClient,
                                                                          fake: FakeInference) -> None:
    fake.reply = ["At ", "14:00, ", "said alice."]
    alice, bob, room, _ = await room_with_history(client)
    out = await bob.ok("POST", f"{AI}/rooms/{room}/ask", {"question": QUESTION})
    assert out == {"answer": "At 14:00, said alice.", "message_count": 2, "model": "llama3.2"}
    messages = fake.chats()[-1].body["messages"]
    prompt = messages[-1]["content"]
    assert QUESTION in prompt and "question about a team chat channel" in messages[0]["content"]
    assert "database failover at 14:00" in prompt and "ack, I will watch the replicas" in prompt
    # Sent before bob joined a joined-only room, and another room's message: never in his prompt.
    assert "SECRET" not in prompt and "OTHER" not in prompt
    # alice was there when she wrote it: her prompt holds it.
    await alice.ok("POST", f"{AI}/rooms/{room}/ask", {"question": QUESTION})
    assert "SECRET before bob joined" in fake.chats()[-1].body["messages"][-1]["content"]
    # A stranger to the room is refused, and nothing of hers reaches the endpoint.
    eve = await client.register("eve")
    before = len(fake.chats())
    r = await eve.post(f"{AI}/rooms/{room}/ask", {"question": QUESTION})
    assert r.status_code == 403 and len(fake.chats()) == before


async def test_ask_streams_over_sse_and_runs_as_a_job(client: MatrixClient, fake: FakeInference) -> None:
    fake.reply = [f"a{i} " for i in range(12)]
    _, bob, room, _ = await room_with_history(client)
    r = await bob.request("POST", f"{AI}/rooms/{room}/ask", {"question": QUESTION, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    frames = sse_frames(r.text)
    assert frames[0] == ("ai.start", {"model": "llama3.2", "message_count": 2})
    assert [d["text"] for e, d in frames if e == "ai.token"] == fake.reply
    assert frames[-1] == ("ai.done", {"text": "".join(fake.reply)})
    fake.reply = ["From the job."]
    job_id = (await bob.ok("POST", f"{AI}/rooms/{room}/ask", {"question": "who acked?", "background": True}))["job_id"]
    job = await wait_job(bob, job_id)
    assert job["kind"] == "ask" and job["status"] == "done"
    assert job["result"] == {"answer": "From the job.", "message_count": 2, "model": "llama3.2"}
    prompt = fake.chats()[-1].body["messages"][-1]["content"]
    assert "Question: who acked?" in prompt and "SECRET" not in prompt


async def test_settings_tell_clients_the_default_summary_model(client: MatrixClient) -> None:
    bob = await client.register("bob")
    s = await bob.ok("GET", f"{AI}/settings")
    assert s["server"]["summary_model"] == "llama3.2" and "summary" not in s["models"]


async def test_ask_errors(client: MatrixClient, fake: FakeInference) -> None:
    alice, bob, room, _ = await room_with_history(client)
    for body in ({}, {"question": ""}, {"question": "   "}, {"question": 5}, {"question": "x" * 2001},
                 {"question": "q", "since_ts": "yesterday"}, {"question": "q", "stream": "yes"}):
        r = await bob.post(f"{AI}/rooms/{room}/ask", body)
        assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_PARAM", body
    r = await bob.post(f"{AI}/rooms/{room}/ask", {"question": "q", "background": True, "since_ts": 10**14})
    assert r.status_code == 400 and r.json()["errcode"] == "ORG.PARLEY.AI_NOTHING_TO_SUMMARIZE"
    enc = await alice.create_room(initial_state=[
        {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
    await alice.send_text(enc, "not for the server")
    for extra in ({}, {"stream": True}, {"background": True}):
        r = await alice.post(f"{AI}/rooms/{enc}/ask", {"question": QUESTION, **extra})
        assert r.status_code == 403 and r.json()["errcode"] == "ORG.PARLEY.AI_ENCRYPTED_ROOM", extra
    assert fake.chats() == []
