"""Example: a bot that answers encrypted DMs.

    python -m e2ee.bot --homeserver http://127.0.0.1:8008 --user bot --password ... \
        --store bot-keys.db --passphrase ...

It accepts invites, and answers each decrypted text message with an encrypted
"You said: ..." in the same room. Its keys live in a passphrase-sealed store, so a restart keeps
its identity and sessions.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
from typing import Any
from urllib.parse import quote

import httpx

from e2ee.client import V3, E2EEClient
from e2ee.machine import OlmMachine
from e2ee.store import CryptoStore


async def step(client: E2EEClient, timeout_ms: int = 30_000) -> list[str]:
    """One sync round: join pending invites, answer new encrypted messages; returns the event
    IDs of the answers sent."""
    resp, _ = await client.sync(timeout_ms)
    for room_id in (resp.get("rooms") or {}).get("invite", {}):
        await client._call("POST", f"{V3}/join/{quote(room_id)}", {})
    clear = client.retry_waiting()  # messages whose room key came after them
    for room_id, room in (resp.get("rooms") or {}).get("join", {}).items():
        events: list[dict[str, Any]] = (room.get("timeline") or {}).get("events", [])
        clear += [(room_id, ev) for ev in client.decrypt_timeline(room_id, events)]
    sent = []
    for room_id, ev in clear:
        if not ev.get("encrypted") or ev.get("sender") == client.machine.user_id:
            continue
        body = (ev.get("content") or {}).get("body")
        if ev.get("type") == "m.room.message" and isinstance(body, str):
            sent.append(await client.send_encrypted(room_id, {"msgtype": "m.notice", "body": f"You said: {body}"}))
    return sent


async def main_async(args: argparse.Namespace) -> None:
    async with httpx.AsyncClient(base_url=args.homeserver, timeout=60) as http:
        login = await http.post(f"{V3}/login", json={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": args.user},
            "password": args.password, "device_id": args.device_id})
        login.raise_for_status()
        data = login.json()
        store = CryptoStore(args.store, args.passphrase)
        client = E2EEClient(http, data["access_token"], OlmMachine(data["user_id"], data["device_id"], store))
        await client.upload_keys()
        while True:
            await step(client)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--homeserver", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password")
    p.add_argument("--device-id", default="E2EEBOT")
    p.add_argument("--store", default="e2ee-bot.db")
    p.add_argument("--passphrase")
    args = p.parse_args()
    args.password = args.password or getpass.getpass("password: ")
    args.passphrase = args.passphrase or getpass.getpass("key store passphrase: ")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
