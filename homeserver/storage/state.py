"""Room state stored as deltas (state groups), current state, and memberships.

A state group is "its parent group plus these entries". Message events share the group of the
state before them; each state event adds a group holding just its own entry. Every
`SNAPSHOT_EVERY` links a full copy is written instead, so reading a state never walks more
than that many groups.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

import orjson

from homeserver.storage.database import Conn, Database, chunks, placeholders
from homeserver.storage.ids import Counter

StateKey = tuple[str, str]
StateMap = dict[StateKey, str]

SNAPSHOT_EVERY = 64


class StateStore:
    def __init__(self, db: Database, group_ids: Counter, cache_size: int = 500) -> None:
        self.db = db
        self._ids = group_ids
        self._cache: OrderedDict[int, StateMap] = OrderedDict()
        self._cache_size = cache_size

    def _remember(self, group: int, state: StateMap) -> None:
        self._cache[group] = state
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def get_state(self, group: int, c: Conn | None = None) -> StateMap:
        """Full state map of a group (callers must not mutate it)."""
        cached = self._cache.get(group)
        if cached is not None:
            self._cache.move_to_end(group)
            return cached
        conn_fetch = c.fetch if c is not None else self.db.fetch
        chain: list[int] = []
        base: StateMap | None = None
        g: int | None = group
        while g is not None:
            if g in self._cache:
                base = self._cache[g]
                break
            chain.append(g)
            row = await conn_fetch("SELECT prev_group FROM state_groups WHERE id = $1", g)
            g = row[0]["prev_group"] if row else None
        state: StateMap = dict(base) if base else {}
        if chain:
            params = ",".join(f"${i + 1}" for i in range(len(chain)))
            rows = await conn_fetch(
                f"SELECT group_id, type, state_key, event_id FROM state_group_entries"
                f" WHERE group_id IN ({params})",
                *chain,
            )
            by_group: dict[int, list[tuple[StateKey, str]]] = {}
            for r in rows:
                by_group.setdefault(r["group_id"], []).append(
                    ((r["type"], r["state_key"]), r["event_id"])
                )
            for gid in reversed(chain):  # oldest first, newest overrides
                for key, eid in by_group.get(gid, ()):
                    state[key] = eid
        self._remember(group, state)
        return state

    async def values_at_groups(
        self, groups: Iterable[int], keys: list[StateKey]
    ) -> dict[int, dict[StateKey, str]]:
        """A few keys of many groups' states, without building whole state maps.

        Cached groups answer from memory; the rest walk their delta chains in one recursive
        query, and for each key the entry nearest the group wins.
        """
        out: dict[int, dict[StateKey, str]] = {}
        todo: list[int] = []
        for g in set(groups):
            cached = self._cache.get(g)
            if cached is not None:
                out[g] = {k: cached[k] for k in keys if k in cached}
            else:
                todo.append(g)
        if not todo or not keys:
            for g in todo:
                out[g] = {}
            return out
        for chunk in chunks(todo, 200):
            params: list[object] = list(chunk)
            key_clauses = []
            for t, sk in keys:
                params += [t, sk]
                key_clauses.append(f"(e.type = ${len(params) - 1} AND e.state_key = ${len(params)})")
            rows = await self.db.fetch(
                "WITH RECURSIVE chain(origin, id, prev_group, n) AS ("
                " SELECT id, id, prev_group, 0 FROM state_groups"
                f" WHERE id IN ({placeholders(1, len(chunk))})"
                " UNION ALL SELECT c.origin, g.id, g.prev_group, c.n + 1 FROM chain c"
                " JOIN state_groups g ON g.id = c.prev_group)"
                " SELECT c.origin, c.n, e.type, e.state_key, e.event_id FROM chain c"
                " JOIN state_group_entries e ON e.group_id = c.id"
                f" WHERE {' OR '.join(key_clauses)}",
                *params,
            )
            best: dict[tuple[int, StateKey], tuple[int, str]] = {}
            for r in rows:
                k = (r["origin"], (r["type"], r["state_key"]))
                if k not in best or r["n"] < best[k][0]:
                    best[k] = (r["n"], r["event_id"])
            for g in chunk:
                out[g] = {}
            for (g, key), (_, eid) in best.items():
                out[g][key] = eid
        return out

    async def new_group(
        self, c: Conn, room_id: str, prev_group: int | None, delta: StateMap
    ) -> int:
        gid = await self._ids.next(c)
        chain_len = 0
        if prev_group is not None:
            row = await c.fetchrow("SELECT chain_len FROM state_groups WHERE id = $1", prev_group)
            chain_len = (row["chain_len"] + 1) if row else 0
        if prev_group is not None and chain_len >= SNAPSHOT_EVERY:
            full = dict(await self.get_state(prev_group, c))
            full.update(delta)
            entries, parent, chain_len = full, None, 0
        else:
            entries, parent = delta, prev_group
        await c.execute(
            "INSERT INTO state_groups (id, room_id, prev_group, chain_len) VALUES ($1,$2,$3,$4)",
            gid, room_id, parent, chain_len,
        )
        if entries:
            await c.executemany(
                "INSERT INTO state_group_entries (group_id, type, state_key, event_id)"
                " VALUES ($1,$2,$3,$4)",
                [(gid, t, sk, eid) for (t, sk), eid in entries.items()],
            )
        return gid

    async def prime(self, group: int, prev_group: int | None, delta: StateMap) -> None:
        """After commit: derive the new group's map from a cached parent without a query."""
        if prev_group is not None and prev_group in self._cache:
            state = dict(self._cache[prev_group])
            state.update(delta)
            self._remember(group, state)
        elif prev_group is None:
            self._remember(group, dict(delta))

    # ------------------------------------------------------------------ current state

    async def set_current(self, c: Conn, room_id: str, key: StateKey, event_id: str) -> None:
        await c.execute(
            "INSERT INTO current_state (room_id, type, state_key, event_id) VALUES ($1,$2,$3,$4)"
            " ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id",
            room_id, key[0], key[1], event_id,
        )

    async def remove_current(self, c: Conn, room_id: str, key: StateKey) -> None:
        """State resolution dropped the key (a branch's state lost entirely)."""
        await c.execute(
            "DELETE FROM current_state WHERE room_id = $1 AND type = $2 AND state_key = $3",
            room_id, key[0], key[1],
        )
        if key[0] == "m.room.member":
            await c.execute("DELETE FROM memberships WHERE room_id = $1 AND user_id = $2", room_id, key[1])

    async def current_all_in(self, c: Conn, room_id: str) -> StateMap:
        """The current state as the open transaction `c` sees it."""
        rows = await c.fetch("SELECT type, state_key, event_id FROM current_state WHERE room_id = $1", room_id)
        return {(r["type"], r["state_key"]): r["event_id"] for r in rows}

    async def current_ids(
        self, room_id: str, keys: Iterable[StateKey], c: Conn | None = None
    ) -> StateMap:
        keys = list(keys)
        if not keys:
            return {}
        params: list[str] = [room_id]
        clauses = []
        for t, sk in keys:
            params += [t, sk]
            clauses.append(f"(type = ${len(params) - 1} AND state_key = ${len(params)})")
        sql = (
            "SELECT type, state_key, event_id FROM current_state WHERE room_id = $1 AND ("
            + " OR ".join(clauses) + ")"
        )
        rows = await (c.fetch(sql, *params) if c else self.db.fetch(sql, *params))
        return {(r["type"], r["state_key"]): r["event_id"] for r in rows}

    async def current_of_type(self, room_id: str, event_type: str) -> StateMap:
        rows = await self.db.fetch(
            "SELECT type, state_key, event_id FROM current_state WHERE room_id = $1 AND type = $2",
            room_id, event_type,
        )
        return {(r["type"], r["state_key"]): r["event_id"] for r in rows}

    async def current_all(self, room_id: str) -> StateMap:
        rows = await self.db.fetch(
            "SELECT type, state_key, event_id FROM current_state WHERE room_id = $1", room_id
        )
        return {(r["type"], r["state_key"]): r["event_id"] for r in rows}

    # ------------------------------------------------------------------ memberships

    async def set_membership(
        self, c: Conn, room_id: str, user_id: str, membership: str, event_id: str, pos: int
    ) -> None:
        await c.execute(
            "INSERT INTO memberships (room_id, user_id, membership, event_id, stream_ordering,"
            " forgotten) VALUES ($1,$2,$3,$4,$5,FALSE) ON CONFLICT (room_id, user_id) DO UPDATE"
            " SET membership = excluded.membership, event_id = excluded.event_id,"
            " stream_ordering = excluded.stream_ordering, forgotten = FALSE",
            room_id, user_id, membership, event_id, pos,
        )

    async def membership_history(self, room_id: str, user_id: str) -> list[tuple[int, str]]:
        """(stream position, membership) of every member event about the user, oldest first."""
        rows = await self.db.fetch(
            "SELECT stream_ordering, json FROM events WHERE room_id = $1 AND type = 'm.room.member'"
            " AND state_key = $2 AND in_timeline = TRUE ORDER BY stream_ordering",
            room_id, user_id,
        )
        out = []
        for r in rows:
            content = orjson.loads(r["json"]).get("content") or {}
            m = content.get("membership")
            out.append((r["stream_ordering"], m if isinstance(m, str) else "leave"))
        return out

    async def membership(self, room_id: str, user_id: str) -> tuple[str, str, int] | None:
        r = await self.db.fetchrow(
            "SELECT membership, event_id, stream_ordering FROM memberships"
            " WHERE room_id = $1 AND user_id = $2",
            room_id, user_id,
        )
        return (r["membership"], r["event_id"], r["stream_ordering"]) if r else None

    async def rooms_for_user(self, user_id: str) -> dict[str, tuple[str, str, int]]:
        """room_id -> (membership, event_id, stream_ordering), forgotten rooms excluded."""
        rows = await self.db.fetch(
            "SELECT room_id, membership, event_id, stream_ordering FROM memberships"
            " WHERE user_id = $1 AND forgotten = FALSE",
            user_id,
        )
        return {r["room_id"]: (r["membership"], r["event_id"], r["stream_ordering"]) for r in rows}

    async def members(self, room_id: str, memberships: tuple[str, ...]) -> list[str]:
        params = ",".join(f"${i + 2}" for i in range(len(memberships)))
        rows = await self.db.fetch(
            f"SELECT user_id FROM memberships WHERE room_id = $1 AND membership IN ({params})",
            room_id, *memberships,
        )
        return [r["user_id"] for r in rows]

    async def joined_since(self, room_ids: list[str], after: int) -> list[str]:
        """Users whose current membership in one of the rooms is a join made after `after`."""
        out: set[str] = set()
        for chunk in chunks(room_ids):
            rows = await self.db.fetch(
                "SELECT DISTINCT user_id FROM memberships WHERE membership = 'join'"
                f" AND stream_ordering > $1 AND room_id IN ({placeholders(2, len(chunk))})",
                after, *chunk,
            )
            out.update(r["user_id"] for r in rows)
        return sorted(out)

    async def member_counts(self, room_ids: list[str]) -> dict[str, dict[str, int]]:
        """room -> {membership: count} for many rooms in one query."""
        out: dict[str, dict[str, int]] = {}
        for chunk in chunks(room_ids):
            rows = await self.db.fetch(
                "SELECT room_id, membership, COUNT(*) AS n FROM memberships"
                f" WHERE room_id IN ({placeholders(1, len(chunk))}) GROUP BY room_id, membership",
                *chunk,
            )
            for r in rows:
                out.setdefault(r["room_id"], {})[r["membership"]] = int(r["n"])
        return out

    async def rooms_having(self, room_ids: list[str], types: tuple[str, ...]) -> set[str]:
        """Which of the rooms have current state of one of `types` (state_key '')."""
        out: set[str] = set()
        for chunk in chunks(room_ids):
            rows = await self.db.fetch(
                f"SELECT DISTINCT room_id FROM current_state WHERE type IN ({placeholders(1, len(types))})"
                f" AND state_key = '' AND room_id IN ({placeholders(1 + len(types), len(chunk))})",
                *types, *chunk,
            )
            out.update(r["room_id"] for r in rows)
        return out

    async def forget(self, room_id: str, user_id: str) -> None:
        await self.db.execute(
            "UPDATE memberships SET forgotten = TRUE WHERE room_id = $1 AND user_id = $2",
            room_id, user_id,
        )
