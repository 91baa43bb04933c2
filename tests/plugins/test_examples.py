"""The example plugins (plugins/) end to end against a real server process, through a plain
HTTP client: a slash command with a public answer and votes tallied from reactions, a bot that
joins on invite, answers when mentioned and posts a persisted reminder, an ephemeral reply
received as a to-device notice, and the command list for the composer."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from tests.plugins.conftest import ADMIN, EXT, REPO, SERVER_NAME, PluginServer, until


async def test_poll_command_and_reaction_tally(plugin_server: PluginServer) -> None:
    admin = await plugin_server.register("admin")
    assert admin.user_id == ADMIN
    bob = await plugin_server.register("bob")
    await plugin_server.install(admin, REPO / "plugins" / "poll")
    await plugin_server.wait_running(admin, "poll")
    bot = f"@poll:{SERVER_NAME}"
    room = await admin.create_room(invite=[bot, bob.user_id])
    await bob.call("POST", f"/_matrix/client/v3/join/{quote(room)}", {})
    await plugin_server.bot_joined(admin, room, bot)

    listed = await bob.call("GET", f"{EXT}/rooms/{quote(room)}/commands")
    assert listed["commands"] == [{"command": "poll", "description": "Start a poll",
                                   "usage": "Question | Option | Option", "plugin": "poll"}]
    queued = await bob.command(room, "poll", "Lunch? | Pizza | Sushi")
    assert queued["plugin"] == "poll"
    poll = await bob.message_from(room, bot, "Poll: Lunch?")
    assert poll["content"]["body"] == "Poll: Lunch?\n1️⃣ Pizza\n2️⃣ Sushi"

    path = f"/_matrix/client/v3/rooms/{quote(room)}/send/m.reaction/vote1"
    await bob.call("PUT", path, {"m.relates_to": {"rel_type": "m.annotation", "event_id": poll["event_id"],
                                                  "key": "2️⃣"}})
    tally = await bob.message_from(room, bot, "Tally for Lunch?")
    assert tally["content"] == {"msgtype": "m.notice", "body": "Tally for Lunch?: Pizza: 0, Sushi: 1"}

    # Unknown commands and rooms without the plugin: Matrix errors, not 500s.
    err = await bob.command(room, "nope", expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    other = await bob.create_room()
    assert (await bob.call("GET", f"{EXT}/rooms/{quote(other)}/commands"))["commands"] == []
    err = await bob.command(other, "poll", "a | b | c", expect=404)
    assert err["errcode"] == "M_NOT_FOUND"


async def test_remind_bot_answers_and_replies_ephemerally(plugin_server: PluginServer) -> None:
    admin = await plugin_server.register("admin")
    await plugin_server.install(admin, REPO / "plugins" / "remind")
    await plugin_server.wait_running(admin, "remind")
    bot = f"@remindbot:{SERVER_NAME}"
    room = await admin.create_room(invite=[bot])
    await plugin_server.bot_joined(admin, room, bot)

    await admin.send_text(room, f"hello {bot}")
    answer = await admin.message_from(room, bot, f"{ADMIN}: you have 0 pending")
    assert answer["content"]["msgtype"] == "m.notice"

    since = (await admin.call("GET", "/_matrix/client/v3/sync?timeout=0"))["next_batch"]
    await admin.command(room, "remind", "1s stand up")
    # The confirmation goes to the caller's devices only, as a to-device notice.
    async def notice() -> dict[str, object] | None:
        out = await admin.call("GET", f"/_matrix/client/v3/sync?timeout=1000&since={since}")
        for ev in out.get("to_device", {}).get("events", []):
            if ev["type"] == "org.parley.plugin.notice":
                return dict(ev)
        return None
    got = await until(notice)
    assert got["sender"] == bot
    assert got["content"]["room_id"] == room
    assert got["content"]["body"] == "OK, I will remind you in 1s."
    # ...and never reaches the room's timeline.
    assert not [e for e in await admin.messages(room) if "remind you in" in e.get("content", {}).get("body", "")]
    reminder = await admin.message_from(room, bot, f"{ADMIN}: reminder: stand up")
    assert reminder["type"] == "m.room.message"

    async def empty_store() -> bool:
        state = plugin_server.tmp / "plugin-work" / "remind" / "data" / "state.json"
        return state.exists() and '"reminders": {}' in state.read_text()
    await until(empty_store)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_tutorial_in_the_docs_works(plugin_server: PluginServer) -> None:
    """docs/plugins.md's /poll manifest and code, copied out of the page, run as written."""
    doc = (REPO / "docs" / "plugins.md").read_text()
    manifest = re.search(r"```toml\n(name = \"poll\".*?)```", doc, re.S)
    code = re.search(r"```python\n(from parley_plugin.*?)```", doc, re.S)
    assert manifest is not None and code is not None
    folder = plugin_server.tmp / "tutorial" / "poll"
    folder.mkdir(parents=True)
    (folder / "manifest.toml").write_text(manifest.group(1))
    (folder / "plugin.py").write_text(code.group(1))

    admin = await plugin_server.register("admin")
    await plugin_server.install(admin, folder)
    await plugin_server.wait_running(admin, "poll")
    bot = f"@poll:{SERVER_NAME}"
    room = await admin.create_room(invite=[bot])
    await plugin_server.bot_joined(admin, room, bot)
    await admin.command(room, "poll", "Tea? | Green | Black")
    poll = await admin.message_from(room, bot, "Poll: Tea?")
    path = f"/_matrix/client/v3/rooms/{quote(room)}/send/m.reaction/v1"
    await admin.call("PUT", path, {"m.relates_to": {"rel_type": "m.annotation", "event_id": poll["event_id"],
                                                    "key": "1️⃣"}})
    tally = await admin.message_from(room, bot, "Tally for Tea?")
    assert tally["content"]["body"] == "Tally for Tea?: Green: 1, Black: 0"
