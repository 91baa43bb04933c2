"""The plugin service in-process, on SQLite and PostgreSQL: installation and management,
capability tokens checked on every call (paths, event types, rooms), room admins' choices, the
command list, and bad input answered with Matrix errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from homeserver.app import Homeserver
from homeserver.config_plugins import PluginsConfig
from homeserver.plugins.scope import decide
from parley_plugin.manifest import ManifestError, parse_manifest
from tests.conftest import SERVER_NAME, MatrixClient
from tests.plugins.conftest import FIXTURES, REPO

EXT = "/_matrix/client/unstable/org.parley.plugins"
ADMIN_API = "/_parley/admin/v1/plugins"
BOT = f"@poll:{SERVER_NAME}"


@pytest.fixture
def config_overrides(tmp_path: Path) -> dict[str, Any]:
    return {"plugins": PluginsConfig(dir=str(tmp_path / "plugins")), "admins": (f"@root:{SERVER_NAME}",)}


async def _setup(hs: Homeserver, client: MatrixClient) -> tuple[MatrixClient, MatrixClient, str, str]:
    root = await client.register("root")
    member = await client.register("member")
    await root.ok("POST", f"{ADMIN_API}/install", {"path": str(REPO / "plugins" / "poll")})
    await root.ok("PUT", f"{ADMIN_API}/poll/enabled", {"enabled": True})
    room = await root.create_room(invite=[BOT, member.user_id])
    await member.ok("POST", f"/_matrix/client/v3/join/{room}", {})
    token = await hs.plugins.issue_token("poll")
    return root, member, room, token


async def test_token_grants_only_the_manifest(hs: Homeserver, client: MatrixClient) -> None:
    root, member, room, token = await _setup(hs, client)
    who = await client.ok("GET", "/_matrix/client/v3/account/whoami", token=token)
    assert who["user_id"] == BOT
    # Invited: it may join, but not yet read or send.
    r = await client.get(f"/_matrix/client/v3/rooms/{room}/messages?dir=b", token=token)
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN"
    await client.ok("POST", f"/_matrix/client/v3/join/{room}", {}, token=token)
    await client.ok("GET", f"/_matrix/client/v3/rooms/{room}/messages?dir=b", token=token)
    await client.ok("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t1",
                    {"msgtype": "m.text", "body": "hi"}, token=token)
    for method, path, body in [
        ("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.encrypted/t2", {}),
        ("PUT", f"/_matrix/client/v3/rooms/{room}/state/m.room.name", {"name": "x"}),
        ("POST", f"/_matrix/client/v3/rooms/{room}/invite", {"user_id": member.user_id}),
        ("GET", "/_matrix/client/v3/sync", None),
        ("GET", "/_matrix/client/v3/devices", None),
        ("POST", "/_matrix/client/v3/createRoom", {}),
        ("PUT", f"/_matrix/client/v3/profile/{member.user_id}/displayname", {"displayname": "x"}),
    ]:
        r = await client.request(method, path, body, token=token)
        assert r.status_code == 403, (path, r.status_code, r.text)
        assert r.json()["errcode"] == "M_FORBIDDEN"
    other = await member.create_room()
    r = await client.get(f"/_matrix/client/v3/rooms/{other}/state", token=token)
    assert r.status_code == 403
    # A new process gets a new token; the old one, and a disabled plugin's, stop working.
    await hs.plugins.issue_token("poll")
    r = await client.get("/_matrix/client/v3/account/whoami", token=token)
    assert r.status_code == 401 and r.json()["errcode"] == "M_UNKNOWN_TOKEN"
    fresh = await hs.plugins.issue_token("poll")
    await root.ok("PUT", f"{ADMIN_API}/poll/enabled", {"enabled": False})
    assert (await client.get("/_matrix/client/v3/account/whoami", token=fresh)).status_code == 401


async def test_commands_and_room_admin_choice(hs: Homeserver, client: MatrixClient) -> None:
    root, member, room, token = await _setup(hs, client)
    await client.ok("POST", f"/_matrix/client/v3/join/{room}", {}, token=token)
    listed = await member.ok("GET", f"{EXT}/rooms/{room}/commands")
    assert [c["command"] for c in listed["commands"]] == ["poll"]
    r = await member.post(f"{EXT}/rooms/{room}/commands/poll", {"args": "a | b | c"})
    assert r.status_code == 202 and r.json()["plugin"] == "poll"
    assert len(await hs.plugins.store.pending_commands("poll", 10)) == 1
    # Only room admins choose the room's plugins.
    r = await member.put(f"{EXT}/rooms/{room}/plugins/poll", {"enabled": False})
    assert r.status_code == 403
    await root.ok("PUT", f"{EXT}/rooms/{room}/plugins/poll", {"enabled": False})
    assert (await member.ok("GET", f"{EXT}/rooms/{room}/commands"))["commands"] == []
    assert (await member.ok("GET", f"{EXT}/rooms/{room}/plugins"))["plugins"] == [
        {"plugin": "poll", "enabled": False, "room_choice": False}]
    r = await client.get(f"/_matrix/client/v3/rooms/{room}/messages?dir=b", token=token)
    assert r.status_code == 403
    await root.ok("PUT", f"{EXT}/rooms/{room}/plugins/poll", {"enabled": True})
    await client.ok("GET", f"/_matrix/client/v3/rooms/{room}/messages?dir=b", token=token)


async def test_bad_input_gets_matrix_errors(hs: Homeserver, client: MatrixClient) -> None:
    root, member, room, _ = await _setup(hs, client)
    outsider = await client.register("outsider")
    cases = [
        (member, "POST", f"{EXT}/rooms/{room}/commands/poll", {"args": 5}, 400, "M_INVALID_PARAM"),
        (member, "POST", f"{EXT}/rooms/{room}/commands/poll", {"args": "x" * 5000}, 400, "M_INVALID_PARAM"),
        (outsider, "POST", f"{EXT}/rooms/{room}/commands/poll", {"args": ""}, 403, "M_FORBIDDEN"),
        (outsider, "GET", f"{EXT}/rooms/{room}/commands", None, 403, "M_FORBIDDEN"),
        (member, "GET", f"{EXT}/rooms/not-a-room/commands", None, 400, "M_INVALID_PARAM"),
        (root, "PUT", f"{EXT}/rooms/{room}/plugins/poll", {"enabled": "yes"}, 400, "M_BAD_JSON"),
        (root, "PUT", f"{EXT}/rooms/{room}/plugins/nope", {"enabled": True}, 404, "M_NOT_FOUND"),
        (member, "GET", ADMIN_API, None, 403, "M_FORBIDDEN"),
        (root, "POST", f"{ADMIN_API}/install", {"path": "/nonexistent"}, 400, "M_INVALID_PARAM"),
        (root, "POST", f"{ADMIN_API}/install", {}, 400, "M_BAD_JSON"),
        (root, "POST", f"{ADMIN_API}/install", {"name": "nope"}, 404, "M_NOT_FOUND"),
        (root, "PUT", f"{ADMIN_API}/poll/settings", {"max_options": "many"}, 400, "M_INVALID_PARAM"),
        (root, "PUT", f"{ADMIN_API}/poll/settings", {"unknown": 1}, 400, "M_INVALID_PARAM"),
        (root, "PUT", f"{ADMIN_API}/nope/enabled", {"enabled": True}, 404, "M_NOT_FOUND"),
    ]
    for who, method, path, body, status, errcode in cases:
        r = await who.request(method, path, body)
        assert (r.status_code, r.json().get("errcode")) == (status, errcode), (path, body, r.text)
    out = await root.ok("PUT", f"{ADMIN_API}/poll/settings", {"max_options": 3})
    assert out["settings"] == {"max_options": 3}
    plugins = (await root.ok("GET", ADMIN_API))["plugins"]
    assert plugins[0]["name"] == "poll" and plugins[0]["enabled"] and plugins[0]["settings"] == {"max_options": 3}


async def test_install_by_name_of_a_discovered_folder(hs: Homeserver, client: MatrixClient, tmp_path: Path) -> None:
    import shutil

    root = await client.register("root")
    shutil.copytree(FIXTURES / "probe", tmp_path / "plugins" / "probe")
    listed = (await root.ok("GET", ADMIN_API))["plugins"]
    assert [(p["name"], p["installed"]) for p in listed] == [("probe", False)]
    await root.ok("POST", f"{ADMIN_API}/install", {"name": "probe"})
    listed = (await root.ok("GET", ADMIN_API))["plugins"]
    assert [(p["name"], p["installed"], p["enabled"]) for p in listed] == [("probe", True, False)]


def test_scope_decisions() -> None:
    m = parse_manifest({"name": "p", "version": "1", "permissions": {"send": ["m.room.message"]}})
    v3 = "/_matrix/client/v3"
    assert decide(m, "@p:x", "GET", f"{v3}/account/whoami") is not None
    g = decide(m, "@p:x", "POST", f"{v3}/join/!r:x")
    assert g is not None and g.joining and g.room_id == "!r:x"
    assert decide(m, "@p:x", "POST", f"{v3}/join/#alias:x") is None  # aliases could name any room
    assert decide(m, "@p:x", "PUT", f"{v3}/rooms/!r:x/send/m.room.message/1") is not None
    assert decide(m, "@p:x", "PUT", f"{v3}/rooms/!r:x/send/m.reaction/1") is None
    assert decide(m, "@p:x", "PUT", f"{v3}/rooms/!r:x/state/m.room.topic/") is None
    assert decide(m, "@p:x", "POST", f"{v3}/rooms/!r:x/kick") is None
    assert decide(m, "@p:x", "GET", f"{v3}/user/@p:x/filter/1") is None
    assert decide(m, "@p:x", "PUT", f"{v3}/profile/@p:x/displayname") is not None
    assert decide(m, "@p:x", "PUT", f"{v3}/profile/@q:x/displayname") is None
    assert m.notifications == ""  # notification hooks only when asked for
    assert parse_manifest({"name": "p", "version": "1",
                           "permissions": {"notifications": "highlight"}}).notifications == "highlight"


@pytest.mark.parametrize("raw, why", [
    ({"version": "1"}, "name"),
    ({"name": "Bad Name", "version": "1"}, "name"),
    ({"name": "p"}, "version"),
    ({"name": "p", "version": "1", "entry": "../x.py"}, "entry"),
    ({"name": "p", "version": "1", "permissions": {"bot": "Not Valid"}}, "bot"),
    ({"name": "p", "version": "1", "permissions": {"rooms": ["#alias:x"]}}, "rooms"),
    ({"name": "p", "version": "1", "permissions": {"commands": [{"name": "/x"}]}}, "commands"),
    ({"name": "p", "version": "1", "settings": {"k": {"type": "float"}}}, "settings.k"),
    ({"name": "p", "version": "1", "settings": {"k": {"type": "integer", "default": "x"}}}, "setting"),
    ({"name": "p", "version": "1", "permissions": {"notifications": "every"}}, "notifications"),
])
def test_manifest_errors(raw: dict[str, Any], why: str) -> None:
    with pytest.raises(ManifestError, match=why):
        parse_manifest(raw)


def test_reinstalling_the_same_version_gives_a_new_revision(tmp_path: Path) -> None:
    """The host restarts a running plugin when its installed copy's revision changes: a
    reinstall of edited code under the same version must count as a change."""
    import shutil

    from homeserver.plugins.registry import Registry

    src = tmp_path / "src"
    shutil.copytree(REPO / "plugins" / "poll", src)
    registry = Registry(tmp_path / "plugins")
    first = registry.install_folder(src)
    running = first.revision  # what the host keeps for the process it started
    again = registry.get("poll")
    assert again is not None and again.revision == running  # nothing changed: no restart
    (src / "plugin.py").write_text((src / "plugin.py").read_text() + "\n# edited\n")
    second = registry.install_folder(src)
    assert second.manifest == first.manifest
    assert second.revision != running
