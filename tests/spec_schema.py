"""Validate HTTP responses against the official Matrix Client-Server and Server-Server API
(OpenAPI 3.1) data.

The spec data is the unmodified upstream ``data/`` tree of matrix-org/matrix-spec, copied
into this repository at ``spec/matrix-spec/`` (see its ``SOURCE.md`` and ``LICENSE``), or
wherever ``PARLEY_MATRIX_SPEC`` points (either the folder holding ``data/`` or ``data/``
itself).

Entry point::

    validate_response(method, path, status, body)

* finds the operation whose ``servers[0].variables.basePath.default`` + path template
  matches ``path`` (a concrete, query-less request path);
* picks the response for ``status`` (or ``NXX``, or ``default``) and its
  ``application/json`` schema; no such schema means nothing to check;
* validates ``body`` with ``jsonschema.Draft202012Validator``; every YAML/JSON file under
  ``data/`` is registered with ``referencing`` under its ``file://`` URI, so the spec's
  relative-file ``$ref``s (including ones into ``data/event-schemas/``) resolve;
* raises ``AssertionError`` on an invalid body, ``LookupError`` when a
  ``/_matrix/client/...``, ``/_matrix/federation/...`` or ``/_matrix/key/...`` path is not in the
  spec (other paths, e.g. ``/_matrix/media/...`` or ``/.well-known/...``, are validated when the
  data has them and ignored otherwise).

Everything (YAML, registry, operation index, validators) is parsed once per process.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache, partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urldefrag, urljoin

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT202012

__all__ = ["validate_response", "find_operations", "spec_data_dir"]

ENV_VAR = "PARLEY_MATRIX_SPEC"
DEFAULT_SPEC_DIR = Path(__file__).resolve().parents[1] / "spec" / "matrix-spec"
# API folders (under data/api/) whose operations validate_response looks up.
API_DIRS = ("client-server", "server-server")
STRICT_PREFIXES = ("/_matrix/client/", "/_matrix/federation/", "/_matrix/key/")
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})

# yaml.safe_load semantics; the libyaml-backed loader is ~10x faster (whole data/ tree in
# ~0.2 s instead of ~2.5 s) and produces identical results.
_yaml_load = partial(yaml.load, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


# --------------------------------------------------------------------------- loading


def spec_data_dir() -> Path:
    """The spec's ``data/`` folder (``$PARLEY_MATRIX_SPEC`` or the copy in ``spec/matrix-spec``)."""
    root = Path(os.environ.get(ENV_VAR) or DEFAULT_SPEC_DIR).expanduser().resolve()
    data = root / "data" if (root / "data").is_dir() else root
    if not (data / "api" / "client-server").is_dir():
        raise FileNotFoundError(
            f"Matrix spec data not found at {data} (expected data/api/client-server); "
            f"set {ENV_VAR} to the matrix-spec checkout"
        )
    return data


# Keywords whose value is a map from *names* (not keywords) to subschemas.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions",
                          "dependentSchemas"})
# Keywords whose value is data, not schema/OpenAPI structure: leave untouched.
_OPAQUE = frozenset({"example", "examples", "enum", "const", "default"})


def _sanitize(node: Any, *, names: bool = False) -> Any:
    """Make OpenAPI-flavoured YAML safe for jsonschema.

    * drops ``x-*`` extension keys (some carry float keys such as ``1.18``);
    * turns non-string keys into strings (YAML reads ``200:`` as an int);
    * OpenAPI 3.0 ``nullable: true`` becomes ``"null"`` in ``type`` (3.1 files should not
      use it, but a stray one would otherwise be silently ignored);
    * a boolean ``required`` (parameter/header style) would crash the ``required``
      keyword, which iterates its value, so it is dropped;
    * YAML timestamps become ISO strings, as they would be in JSON.
    ``example``/``examples``/``enum``/``const``/``default`` values are left as they are,
    and keys of ``properties``-like maps are property names, never treated as keywords.
    """
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            key = key if isinstance(key, str) else str(key)
            if names:
                out[key] = _sanitize(value)
                continue
            if key.startswith("x-"):
                continue
            if key in _OPAQUE:
                out[key] = _plain(value)
            elif key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = _sanitize(value, names=True)
            elif key == "required" and isinstance(value, bool):
                continue
            else:
                out[key] = _sanitize(value)
        if not names and out.pop("nullable", False) is True and "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"] if "null" not in types else types
        return out
    if isinstance(node, list):
        return [_sanitize(item) for item in node]
    return _plain(node)


def _plain(node: Any) -> Any:
    """JSON-ify data (examples, enums): string keys, ISO timestamps."""
    if isinstance(node, dict):
        return {k if isinstance(k, str) else str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, (datetime.date, datetime.datetime)):
        return node.isoformat()
    return node


@lru_cache(maxsize=4)
def _documents(data_dir: str) -> dict[str, Any]:
    """Every YAML/JSON file under data/, sanitized, keyed by absolute ``file://`` URI."""
    docs: dict[str, Any] = {}
    for path in sorted(Path(data_dir).rglob("*")):
        if path.suffix not in (".yaml", ".yml", ".json") or not path.is_file():
            continue
        try:
            with path.open(encoding="utf-8") as f:
                doc = _sanitize(json.load(f) if path.suffix == ".json" else _yaml_load(f))
        except (OSError, ValueError, yaml.YAMLError) as e:
            raise RuntimeError(f"cannot load Matrix spec file {path}: {e}") from e
        uri = _file_uri(path)
        if isinstance(doc, dict):
            # The file's own URI is its base URI, so relative $refs resolve against it.
            doc.setdefault("$id", uri)
        docs[uri] = doc
    return docs


def _file_uri(path: Path) -> str:
    """``file://`` URI of ``path``, unescaped: upstream file names contain ``$``
    (``m.room.message$m.text.yaml``) and ``$ref``s spell them that way."""
    return "file://" + path.as_posix()  # data_dir is already resolved


def _canonical(uri: str) -> str:
    return unquote(urldefrag(uri)[0])


@lru_cache(maxsize=4)
def _registry(data_dir: str) -> Registry:
    docs = _documents(data_dir)
    resources = {uri: Resource(contents=doc, specification=DRAFT202012)
                 for uri, doc in docs.items()}

    def retrieve(uri: str) -> Resource:
        # Same file spelled differently (percent-escapes): map onto the registered one.
        try:
            return resources[_canonical(uri)]
        except KeyError:
            raise NoSuchResource(ref=uri) from None

    return Registry(retrieve=retrieve).with_resources(resources.items())  # type: ignore[call-arg]


# --------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Operation:
    method: str  # upper case
    template: str  # basePath + path template, e.g. /_matrix/client/v3/sync
    segments: tuple[str | None, ...]  # literal segment, or None for a {param}
    optional_last: bool  # last {param} may be empty or absent (state endpoints)
    operation_id: str
    doc_uri: str
    pointer: tuple[str, ...]  # JSON pointer tokens of the operation inside the document

    @property
    def n_params(self) -> int:
        return sum(s is None for s in self.segments)


def _split_template(template: str) -> tuple[str | None, ...]:
    """"/rooms/{roomId}/state" -> ("rooms", None, "state"); a param is a whole segment."""
    segs: list[str | None] = []
    for seg in template.split("/")[1:]:
        if seg.startswith("{") and seg.endswith("}"):
            segs.append(None)
        elif "{" in seg:
            raise ValueError(f"unsupported path template segment {seg!r} in {template!r}")
        else:
            segs.append(seg)
    return tuple(segs)


@lru_cache(maxsize=4)
def _operations(data_dir: str) -> tuple[Operation, ...]:
    docs = _documents(data_dir)
    ops: list[Operation] = []
    for api in API_DIRS:
        folder = Path(data_dir) / "api" / api
        for path in sorted(folder.glob("*.yaml")):  # definitions/ hold no operations
            uri = _file_uri(path)
            doc = docs[uri]
            if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
                continue
            servers = doc.get("servers") or [{}]
            base = (servers[0].get("variables", {}).get("basePath", {}).get("default", ""))
            for raw_template, item in doc["paths"].items():
                # Upstream disambiguates duplicate paths with a trailing space
                # ("/rooms/{roomId}/invite ", "/events ").
                template = base.rstrip("/") + raw_template.strip()
                segments = _split_template(template)
                literals = {s for s in segments if s is not None}
                optional_last = segments[-1] is None and "state" in literals
                for method, op in item.items():
                    if method not in HTTP_METHODS or not isinstance(op, dict):
                        continue
                    ops.append(Operation(
                        method=method.upper(),
                        template=template,
                        segments=segments,
                        optional_last=optional_last,
                        operation_id=str(op.get("operationId") or f"{method.upper()} {template}"),
                        doc_uri=uri,
                        pointer=("paths", raw_template, method),
                    ))
    return tuple(ops)


def _matches(op: Operation, segs: list[str]) -> bool:
    tmpl = op.segments
    if op.optional_last and len(segs) == len(tmpl) - 1:
        tmpl = tmpl[:-1]  # ".../state/{eventType}" == ".../state/{eventType}/" (stateKey "")
    if len(segs) != len(tmpl):
        return False
    for i, (want, got) in enumerate(zip(tmpl, segs)):
        if want is None:
            if got == "" and not (op.optional_last and i == len(op.segments) - 1):
                return False
        elif want != unquote(got):
            return False
    return True


def find_operations(method: str, path: str) -> list[Operation]:
    """The best-matching operations for ``method path`` (fewest path params wins).

    Usually one; several only where upstream documents one endpoint twice (e.g.
    ``POST /rooms/{roomId}/invite`` as inviteUser and inviteBy3PID).  Empty if none.
    """
    path = path.split("?", 1)[0]  # "#" stays: it is a room alias sigil, not a fragment
    segs = path.split("/")[1:] if path.startswith("/") else path.split("/")
    method = method.upper()
    found = [op for op in _operations(str(spec_data_dir()))
             if op.method == method and _matches(op, segs)]
    if not found:
        return []
    best = min(op.n_params for op in found)
    return [op for op in found if op.n_params == best]


# --------------------------------------------------------------------------- responses


def _pointer(tokens: Iterable[str]) -> str:
    return "".join("/" + quote(t.replace("~", "~0").replace("/", "~1"), safe="")
                   for t in tokens)


def _walk(doc: Any, tokens: Iterable[str]) -> Any:
    for t in tokens:
        doc = doc[int(t)] if isinstance(doc, list) else doc[t]
    return doc


def _follow(data_dir: str, uri: str, tokens: tuple[str, ...]) -> tuple[str, tuple[str, ...], Any]:
    """Dereference an OpenAPI (non-schema) object such as a response ``$ref``."""
    docs = _documents(data_dir)
    node = _walk(docs[uri], tokens)
    seen = set()
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        if (uri, tokens) in seen:
            raise ValueError(f"$ref loop at {uri}#{_pointer(tokens)}")
        seen.add((uri, tokens))
        target, fragment = urldefrag(urljoin(uri, node["$ref"]))
        uri = _canonical(target) if target else uri
        tokens = tuple(t.replace("~1", "/").replace("~0", "~")
                       for t in unquote(fragment).split("/")[1:])
        node = _walk(docs[uri], tokens)
    return uri, tokens, node


@cache
def _response_validator(data_dir: str, op: Operation, status: int) -> Draft202012Validator | None:
    _, _, op_obj = _follow(data_dir, op.doc_uri, op.pointer)
    responses = op_obj.get("responses") or {}
    for key in (str(status), f"{status // 100}XX", f"{status // 100}xx", "default"):
        if key in responses:
            break
    else:
        return None
    uri, tokens, response = _follow(data_dir, op.doc_uri, (*op.pointer, "responses", key))
    media = (response.get("content") or {}).get("application/json")
    if not isinstance(media, dict) or "schema" not in media:
        return None
    schema_ref = uri + "#" + _pointer((*tokens, "content", "application/json", "schema"))
    return Draft202012Validator({"$ref": schema_ref}, registry=_registry(data_dir))


def _describe(error: ValidationError) -> str:
    where = error.json_path
    return f"at {where}: {error.message} (schema: {'/'.join(map(str, error.schema_path))})"


def _known_deviations(ops: list[Operation], body: object) -> object:
    """Where Parley answers as Synapse does and SyTest expects, not as the schema reads, the
    deviation is undone here (in a copy), one documented case at a time:

    * joined_members: `display_name` and `avatar_url` are always present, null when unset
      (SyTest "GET /rooms/:room_id/joined_members fetches my membership"); the schema types them
      as strings that may be absent, so a null is checked as an absent key.
    """
    if any(op.operation_id == "getJoinedMembersByRoom" for op in ops) and isinstance(body, dict) \
            and isinstance(body.get("joined"), dict):
        joined = {u: {k: v for k, v in m.items() if v is not None} if isinstance(m, dict) else m
                  for u, m in body["joined"].items()}
        return {**body, "joined": joined}
    return body


def validate_response(method: str, path: str, status: int, body: object) -> None:
    """Check ``body`` against the spec's JSON schema for ``method path`` -> ``status``.

    Raises ``LookupError`` if a client, federation or key API path is not in the spec, and
    ``AssertionError`` (operation id, status, JSON path and message) if ``body`` is invalid.
    """
    data_dir = str(spec_data_dir())
    ops = find_operations(method, path)
    body = _known_deviations(ops, body)
    if not ops:
        if path.startswith(STRICT_PREFIXES):
            raise LookupError(f"{method.upper()} {path} is not in the Matrix spec data")
        return  # e.g. /_matrix/media/... not in the data
    failures: list[str] = []
    for op in ops:
        validator = _response_validator(data_dir, op, int(status))
        if validator is None:
            continue  # no JSON body documented for this status
        errors = list(validator.iter_errors(body))
        if not errors:
            return  # valid for (one of) the matching operation(s)
        top = best_match(errors)
        extra = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        failures.append(f"{op.operation_id} ({op.template}) {status}: {_describe(top)}{extra}")
    if not failures:
        return  # no matching operation documents a JSON body for this status
    body_text = repr(body)
    if len(body_text) > 600:
        body_text = body_text[:600] + "..."
    raise AssertionError(
        f"{method.upper()} {path} -> {status}: response does not match the spec\n  "
        + "\n  ".join(failures) + f"\n  body: {body_text}"
    )
