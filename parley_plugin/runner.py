"""The first code a plugin process runs: read the server's hello from stdin, confine this
process (sandbox.py), then import the plugin's entry file and serve hooks.

The channel is JSON lines: the server writes hooks to our stdin, we write to a private copy of
the original stdout; fd 1 itself is pointed at stderr so a plugin's print() lands in the
server's log instead of corrupting the channel. Protocol: spec/plugins.md."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

from parley_plugin import sandbox


def _load(entry: Path) -> Any:
    spec = importlib.util.spec_from_file_location("parley_plugin_entry", entry)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {entry}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["parley_plugin_entry"] = module
    spec.loader.exec_module(module)
    return module.plugin


async def _main(hello: dict[str, Any], channel: Any) -> None:
    from parley_plugin.client import Client
    from parley_plugin.plugin import Store

    plugin = _load(Path(hello["code_dir"]) / hello["entry"])
    plugin.api = Client(hello["server_url"], hello["token"])
    plugin.user_id = hello["user_id"]
    plugin.settings = hello.get("settings", {})
    plugin.store = Store(Path("state.json"))
    plugin._out = channel
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await plugin._serve(reader)


def main() -> None:
    channel = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    line = b""
    while not line.endswith(b"\n"):  # unbuffered: the rest of stdin belongs to the hook reader
        chunk = os.read(0, 1)
        if not chunk:
            raise SystemExit("no hello from the server")
        line += chunk
    hello = json.loads(line)
    applied = sandbox.confine(hello["limits"], [hello["sdk_dir"], hello["code_dir"]], [os.getcwd()],
                              None if hello.get("network") else [int(hello["server_port"])])
    channel.write((json.dumps({"type": "confined", **applied}) + "\n").encode())
    asyncio.run(_main(hello, channel))


if __name__ == "__main__":
    main()
