"""/poll Question | Option A | Option B: posts the poll; reactions 1️⃣ 2️⃣ ... are votes (one per
person, the latest counts) and each vote posts the tally."""

from parley_plugin import Command, Event, Plugin

plugin = Plugin()
NUMBERS = ["1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣", "6️⃣", "7️⃣", "8️⃣", "9️⃣"]


@plugin.command("poll")
async def start_poll(cmd: Command) -> None:
    parts = [p.strip() for p in cmd.args.split("|") if p.strip()]
    limit = min(int(plugin.settings.get("max_options", 9)), len(NUMBERS))
    if len(parts) < 3 or len(parts) - 1 > limit:
        await cmd.reply(f"Usage: /poll Question | Option | Option (2 to {limit} options)", ephemeral=True)
        return
    question, options = parts[0], parts[1:]
    lines = [f"Poll: {question}"] + [f"{NUMBERS[i]} {opt}" for i, opt in enumerate(options)]
    event_id = await cmd.room.send_text("\n".join(lines))
    for i in range(len(options)):
        await cmd.room.react(event_id, NUMBERS[i])  # one click to vote
    plugin.store.data.setdefault("polls", {})[event_id] = {
        "room_id": cmd.room_id, "question": question, "options": options, "votes": {}}
    plugin.store.save()


@plugin.on("m.reaction")
async def vote(ev: Event) -> None:
    relates = ev.content.get("m.relates_to", {})
    poll = plugin.store.data.get("polls", {}).get(relates.get("event_id"))
    key = relates.get("key")
    if poll is None or key not in NUMBERS[:len(poll["options"])]:
        return
    poll["votes"][ev.sender] = NUMBERS.index(key)
    plugin.store.save()
    counts = [0] * len(poll["options"])
    for choice in poll["votes"].values():
        counts[choice] += 1
    tally = ", ".join(f"{opt}: {n}" for opt, n in zip(poll["options"], counts, strict=True))
    await ev.room.send_text(f"Tally for {poll['question']}: {tally}", notice=True)
