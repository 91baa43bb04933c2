"""Server-side search (Client-Server API, "Server Side Search"): request parsing, the query
language, the `next_batch` token and highlights. Pure: no I/O.

A search term is split into words and "quoted phrases"; every one of them must occur (AND).
Words match as prefixes ("deploy" finds "deployment"), phrases match as written. The same parsed
query is rendered for SQLite's FTS5 (`fts5_query`) and PostgreSQL's `to_tsquery`
(`tsquery`), so both databases answer the same question.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from homeserver.protocol.errors import MatrixError
from homeserver.protocol.filters import RoomEventFilter
from homeserver.protocol.ids import is_valid_room_id, is_valid_user_id

#: The keys a search may look in, and the event type each belongs to.
KEY_TYPES = {"content.body": "m.room.message", "content.name": "m.room.name", "content.topic": "m.room.topic"}
ORDERS = ("rank", "recent")
GROUP_KEYS = ("room_id", "sender")
DEFAULT_LIMIT = 10
MAX_LIMIT = 50
DEFAULT_CONTEXT = 5
MAX_CONTEXT = 20
MAX_TERM = 1000
MAX_TERMS = 16
MAX_TEXT = 20_000  # characters of one event's text that are indexed

_TOKEN = re.compile(r'"([^"]*)"|(\w+)', re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)


def _bad(msg: str, errcode: str = "M_BAD_JSON") -> MatrixError:
    return MatrixError(400, errcode, msg)


# --------------------------------------------------------------------------- what is indexed


def searchable(event_type: str, content: Any) -> tuple[str, str] | None:
    """The (key, text) an event is found by, or None. Edits (`m.replace`) are not found by
    themselves: their new text replaces the text of the event they edit (`edit_text`)."""
    if not isinstance(content, dict):
        return None
    for key, etype in KEY_TYPES.items():
        if etype == event_type:
            value = content.get(key.split(".", 1)[1])
            if event_type == "m.room.message" and edit_target(content) is not None:
                return None
            if isinstance(value, str) and value.strip():
                return key, value[:MAX_TEXT]
    return None


def edit_target(content: dict[str, Any]) -> str | None:
    rel = content.get("m.relates_to")
    if isinstance(rel, dict) and rel.get("rel_type") == "m.replace" and isinstance(rel.get("event_id"), str):
        return str(rel["event_id"])
    return None


def edit_text(content: Any) -> str | None:
    """The new body an edit gives its target (`m.new_content.body`)."""
    if not isinstance(content, dict):
        return None
    new = content.get("m.new_content")
    body = new.get("body") if isinstance(new, dict) else None
    return body[:MAX_TEXT] if isinstance(body, str) and body.strip() else None


# --------------------------------------------------------------------------- the query


@dataclass(frozen=True)
class Query:
    words: tuple[str, ...]              # lower-cased, each matched as a prefix
    phrases: tuple[tuple[str, ...], ...]  # lower-cased words in order, matched exactly

    @property
    def empty(self) -> bool:
        return not self.words and not self.phrases

    def terms(self) -> list[str]:
        return [*self.words, *(w for p in self.phrases for w in p)]


def parse_query(term: str) -> Query:
    words: list[str] = []
    phrases: list[tuple[str, ...]] = []
    for m in _TOKEN.finditer(term):
        if m.group(1) is not None:
            inner = tuple(w.lower() for w in _WORD.findall(m.group(1)))
            if len(inner) == 1:
                words.append(inner[0])
            elif inner:
                phrases.append(inner)
        else:
            words.append(m.group(2).lower())
    words = list(dict.fromkeys(words))[:MAX_TERMS]
    return Query(tuple(words), tuple(dict.fromkeys(phrases))[:MAX_TERMS])


def fts5_query(q: Query) -> str:
    """FTS5 MATCH syntax: `"word"*` for prefixes, `"a b"` for phrases, all ANDed."""
    parts = [f'"{w}"*' for w in q.words] + ['"' + " ".join(p) + '"' for p in q.phrases]
    return " AND ".join(parts)


def tsquery(q: Query) -> str:
    """PostgreSQL `to_tsquery` syntax: `word:*` for prefixes, `a <-> b` for phrases, ANDed.
    Words are `\\w+` runs, so nothing needs quoting; quotes are added anyway."""
    parts = [f"'{w}':*" for w in q.words]
    parts += ["(" + " <-> ".join(f"'{w}'" for w in p) + ")" for p in q.phrases]
    return " & ".join(parts)


def highlights(q: Query, texts: list[str]) -> list[str]:
    """The query's words, and the words of the results they matched (a prefix match finds
    "deployment" for "deploy"; the client highlights what is on screen)."""
    out = dict.fromkeys(q.terms())
    for text in texts:
        for w in _WORD.findall(text):
            lw = w.lower()
            if any(lw.startswith(t) for t in q.words) or lw in out:
                out[w] = None
    return list(out)


# --------------------------------------------------------------------------- the request


@dataclass(frozen=True)
class Criteria:
    term: str
    query: Query
    keys: tuple[str, ...]
    filter: RoomEventFilter
    order_by: str
    limit: int
    context: tuple[int, int, bool] | None  # (before, after, include_profile)
    include_state: bool
    group_by: tuple[str, ...] = field(default=())


def _bool(obj: dict[str, Any], key: str, default: bool = False) -> bool:
    v = obj.get(key, default)
    if not isinstance(v, bool):
        raise _bad(f"'{key}' must be a boolean")
    return v


def _count(obj: dict[str, Any], key: str) -> int:
    v = obj.get(key, DEFAULT_CONTEXT)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise _bad(f"'{key}' must be a non-negative integer")
    return min(v, MAX_CONTEXT)


def parse_room_events(obj: Any) -> Criteria:
    """The `room_events` criteria of a search request; 400 on anything malformed."""
    if not isinstance(obj, dict):
        raise _bad("'room_events' must be an object")
    term = obj.get("search_term")
    if not isinstance(term, str):
        raise _bad("'search_term' must be a string", "M_MISSING_PARAM" if term is None else "M_BAD_JSON")
    if len(term) > MAX_TERM:
        raise _bad(f"'search_term' is longer than {MAX_TERM} characters", "M_INVALID_PARAM")
    keys = obj.get("keys", list(KEY_TYPES))
    if not isinstance(keys, list) or not all(isinstance(k, str) and k in KEY_TYPES for k in keys):
        raise _bad(f"'keys' must be a list of {', '.join(KEY_TYPES)}")
    order = obj.get("order_by", "rank")
    if order not in ORDERS:
        raise _bad("'order_by' must be \"rank\" or \"recent\"")
    flt = RoomEventFilter.parse(obj.get("filter"))
    limit = DEFAULT_LIMIT if flt.limit is None or flt.limit == 0 else min(flt.limit, MAX_LIMIT)
    ctx = obj.get("event_context")
    context = None
    if ctx is not None:
        if not isinstance(ctx, dict):
            raise _bad("'event_context' must be an object")
        context = (_count(ctx, "before_limit"), _count(ctx, "after_limit"), _bool(ctx, "include_profile"))
    groupings = obj.get("groupings", {})
    if not isinstance(groupings, dict):
        raise _bad("'groupings' must be an object")
    group_by = groupings.get("group_by", [])
    if not isinstance(group_by, list) or not all(
            isinstance(g, dict) and g.get("key") in GROUP_KEYS for g in group_by):
        raise _bad("'group_by' must be a list of {\"key\": \"room_id\" | \"sender\"}")
    return Criteria(term, parse_query(term), tuple(dict.fromkeys(keys)) or tuple(KEY_TYPES), flt, order,
                    limit, context, _bool(obj, "include_state"),
                    tuple(dict.fromkeys(str(g["key"]) for g in group_by)))


def parse_request(body: Any) -> Criteria | None:
    """The room-events criteria of a `POST /search` body (None: no category asked for)."""
    if not isinstance(body, dict) or not isinstance(body.get("search_categories"), dict):
        raise _bad("'search_categories' must be an object", "M_MISSING_PARAM"
                   if isinstance(body, dict) and "search_categories" not in body else "M_BAD_JSON")
    cats = body["search_categories"]
    if "room_events" not in cats:
        return None
    return parse_room_events(cats["room_events"])


# --------------------------------------------------------------------------- next_batch


@dataclass(frozen=True)
class Batch:
    """Where the next page starts. `recent`: below a stream position; `rank`: after that many
    rows of the ranked list. `group` narrows the search to one room or sender (a group's
    own `next_batch`). `term` ties the token to the search it came from."""

    order_by: str
    after: int
    term: str
    group: tuple[str, str] | None = None

    def encode(self) -> str:
        raw: dict[str, Any] = {"o": self.order_by, "a": self.after, "t": self.term}
        if self.group is not None:
            raw["g"] = list(self.group)
        return base64.urlsafe_b64encode(orjson.dumps(raw)).decode().rstrip("=")


def parse_batch(token: str, criteria: Criteria) -> Batch:
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise _bad("Invalid next_batch token", "M_INVALID_PARAM") from None
    if not isinstance(raw, dict):
        raise _bad("Invalid next_batch token", "M_INVALID_PARAM")
    order, after, term, group = raw.get("o"), raw.get("a"), raw.get("t"), raw.get("g")
    if order not in ORDERS or not isinstance(after, int) or isinstance(after, bool) or not isinstance(term, str):
        raise _bad("Invalid next_batch token", "M_INVALID_PARAM")
    if order != criteria.order_by or term != criteria.term:
        raise _bad("next_batch belongs to another search", "M_INVALID_PARAM")
    if order == "rank" and after < 0:
        raise _bad("Invalid next_batch token", "M_INVALID_PARAM")
    g: tuple[str, str] | None = None
    if group is not None:
        ok = isinstance(group, list) and len(group) == 2 and group[0] in GROUP_KEYS and isinstance(group[1], str)
        if not ok or not (is_valid_room_id(group[1]) if group[0] == "room_id" else is_valid_user_id(group[1])):
            raise _bad("Invalid next_batch token", "M_INVALID_PARAM")
        g = (group[0], group[1])
    return Batch(order, after, term, g)
