"""The web client's AI assistant in Debian's Chromium against a real Parley whose users may name
loopback inference servers (`[ai] user_endpoints = "any"`), with the repository's fake
OpenAI-compatible server (tests/ai/fake_inference.py) on loopback.

The browser scenario is web/e2e-ai/assistant.test.mjs: the person saves the fake's URL in the
settings (through the AI settings endpoint), the assistant appears, "Catch me up" streams a summary
into the page piece by piece, a question about the channel streams its answer, a thread is
summarized in its panel, a reply suggestion lands in the composer, smart search finds a message by
meaning, and an encrypted DM is summarized by the page itself calling the fake (which allows the
page's origin, as Ollama does with OLLAMA_ORIGINS). Here: what the fake was asked holds the
channel's messages, and the encrypted room's text reached it only from the browser.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

from tests.ai.fake_inference import FakeInference
from tests.e2e.conftest import start_server, stop_server
from tests.web.test_browser import CHROMIUM, WEB

REPLY = ["Ana ", "shipped ", "the ", "kestrel ", "release.\n", "Thanks, Ana!\n", "On it\n", "Nice work\n"]


async def test_ai_assistant_in_a_real_browser(tmp_path: Path) -> None:
    assert (WEB / "out" / "index.html").is_file(), "web/out is not built: run `make web-client` (make test does)"
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    node = shutil.which("node")
    assert node, "Node.js >= 20 is needed for the browser test"
    # Pieces a little apart, so the page shows the summary growing before it is done.
    fake = await FakeInference(reply=REPLY, chunk_delay_s=0.25).start()
    proc, base = await asyncio.to_thread(
        start_server, tmp_path, f"sqlite:///{tmp_path}/parley.db", PARLEY_WEB_CLIENT_DIR=str(WEB / "out"),
        PARLEY_AI__USER_ENDPOINTS="any", PARLEY_AI__INDEX_EMBEDDINGS="true")
    fake.cors_origins = (base.rstrip("/"),)  # the page's origin, like OLLAMA_ORIGINS
    try:
        env = {**os.environ, "PARLEY_URL": base, "FAKE_AI_URL": fake.url, "CHROMIUM_PATH": CHROMIUM,
               "FAKE_AI_REPLY": "".join(REPLY)}
        run = await asyncio.create_subprocess_exec(
            node, "--test", "--test-concurrency=1", "--test-reporter=spec", "e2e-ai/", cwd=WEB, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(run.communicate(), 600)
    finally:
        await asyncio.to_thread(stop_server, proc)
        await fake.stop()
    report = out.decode(errors="replace")
    print(report)
    assert run.returncode == 0, report
    counts = {k: int(v) for k, v in re.findall(r"ℹ (pass|fail|cancelled|skipped|todo) (\d+)", report)}
    assert counts.get("pass", 0) >= 3 and counts["fail"] == counts["cancelled"] == counts["skipped"] == 0, report
    # The summary's prompt held the channel's messages, read by the server for this person.
    prompts = [str(r.body) for r in fake.chats()]
    assert any("the kestrel release is out" in p for p in prompts), prompts
    assert any("dashboards look green in the thread" in p for p in prompts), prompts  # the thread's summary
    assert not any("secret room" in p for p in prompts), prompts
    assert any("Question: who shipped the kestrel release?" in p for p in prompts), prompts
    # The encrypted DM's text came from the browser (a CORS preflight, then a POST with the page's
    # Origin), never from the server, which only ever held its ciphertext.
    sealed = [r for r in fake.chats() if "launch word is heron" in str(r.body)]
    assert sealed and all(r.headers.get("origin") == base.rstrip("/") for r in sealed), sealed
    assert "authorization" not in sealed[0].headers
    assert any(r.method == "OPTIONS" and r.path == "/v1/chat/completions" for r in fake.requests)
    server_side = [r for r in fake.chats() if "origin" not in r.headers]
    assert server_side and not any("heron" in str(r.body) for r in server_side)
    log = (tmp_path / "server.log").read_text(errors="replace")
    assert "Traceback" not in log, log
