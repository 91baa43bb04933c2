"""Presence updates that overtake each other on the way (bus messages between workers, EDUs from
other servers): the change made latest wins, whatever order they arrive in; changes made on this
worker always apply; a remote update's last_active_ago places the user's last activity."""

from __future__ import annotations

from homeserver.ephemeral.presence import PresenceManager

NOW = 1_800_000_000_000


def _manager() -> tuple[PresenceManager, list[tuple[str, bool]]]:
    changes: list[tuple[str, bool]] = []
    return PresenceManager(True, lambda user, local: changes.append((user, local))), changes


def test_an_older_remote_update_arriving_late_changes_nothing() -> None:
    pm, changes = _manager()
    pm.set("@u:b", "unavailable", "newer", now_ms=NOW + 10, local=False, at_ms=NOW + 5)
    pm.set("@u:b", "online", "older", now_ms=NOW + 11, local=False, at_ms=NOW + 1)
    got = pm.get("@u:b", now_ms=NOW + 20)
    assert (got["presence"], got["status_msg"]) == ("unavailable", "newer")
    assert changes == [("@u:b", False)]


def test_updates_in_order_and_ties_apply() -> None:
    pm, _ = _manager()
    for i, (state, at) in enumerate([("online", NOW), ("unavailable", NOW), ("offline", NOW + 3)]):
        pm.set("@u:b", state, f"m{i}", now_ms=NOW + 10, local=False, at_ms=at)
        assert pm.get("@u:b", now_ms=NOW + 10)["status_msg"] == f"m{i}"


def test_local_changes_always_apply() -> None:
    # the clock of another worker may run ahead of ours: our own later change still applies
    pm, changes = _manager()
    pm.set("@me:a", "online", "from another worker", now_ms=NOW, local=False, at_ms=NOW + 60_000)
    pm.set("@me:a", "unavailable", "mine", now_ms=NOW + 1)
    assert pm.get("@me:a", now_ms=NOW + 2)["status_msg"] == "mine"
    assert changes == [("@me:a", False), ("@me:a", True)]
    assert pm.snapshot("@me:a")["updated_ts"] == NOW + 60_000  # still orders later remote updates


def test_last_active_from_the_update() -> None:
    pm, _ = _manager()
    pm.set("@u:b", "online", None, now_ms=NOW, local=False, at_ms=NOW, last_active_ts=NOW - 90_000)
    assert pm.get("@u:b", now_ms=NOW)["last_active_ago"] == 90_000
    # a last activity in the future (a peer's clock ahead) is clamped to now
    pm.set("@u:b", "online", "x", now_ms=NOW + 1, local=False, at_ms=NOW + 1, last_active_ts=NOW + 50_000)
    assert pm.get("@u:b", now_ms=NOW + 1)["last_active_ago"] == 0
