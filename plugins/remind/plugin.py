"""A reminder bot: joins rooms it is invited to (the SDK does that), answers when mentioned, and
`/remind 10m text` posts `text` in the room after 10 minutes. Reminders are kept in the
plugin's store, so they survive restarts of the plugin and of the server."""

import asyncio
import re
import time
import uuid

from parley_plugin import Command, Event, Plugin

plugin = Plugin()
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
WHEN = re.compile(r"^(\d{1,6})([smhd])\s+(.+)$", re.S)
_timers: dict[str, asyncio.Task[None]] = {}


def _schedule(rid: str, reminder: dict) -> None:
    async def fire() -> None:
        await asyncio.sleep(max(0.0, reminder["due"] - time.time()))
        await plugin.room(reminder["room_id"]).send_text(f"{reminder['user']}: reminder: {reminder['text']}")
        plugin.store.data["reminders"].pop(rid, None)
        plugin.store.save()

    _timers[rid] = asyncio.ensure_future(fire())


@plugin.on_start
async def resume() -> None:
    for rid, reminder in plugin.store.data.setdefault("reminders", {}).items():
        _schedule(rid, reminder)


@plugin.command("remind")
async def remind(cmd: Command) -> None:
    m = WHEN.match(cmd.args.strip())
    if m is None:
        await cmd.reply("Usage: /remind <number>s|m|h|d <text>, e.g. /remind 10m stretch", ephemeral=True)
        return
    seconds = int(m.group(1)) * UNITS[m.group(2)]
    rid = uuid.uuid4().hex
    reminder = {"room_id": cmd.room_id, "user": cmd.sender, "text": m.group(3), "due": time.time() + seconds}
    plugin.store.data.setdefault("reminders", {})[rid] = reminder
    plugin.store.save()
    _schedule(rid, reminder)
    await cmd.reply(f"OK, I will remind you in {m.group(1)}{m.group(2)}.", ephemeral=True)


@plugin.on("m.room.message")
async def answer(ev: Event) -> None:
    body = str(ev.content.get("body", ""))
    if plugin.user_id in body or body.lower().startswith("remindbot"):
        mine = [r for r in plugin.store.data.get("reminders", {}).values() if r["user"] == ev.sender]
        await ev.room.send_text(f"{ev.sender}: you have {len(mine)} pending reminder(s). "
                                "Try /remind 10m stretch.", notice=True)
