"""Validate responses against the official Matrix OpenAPI data (../shared/matrix-spec/data)."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_DIR = Path(os.environ.get("PARLEY_MATRIX_SPEC", Path(__file__).resolve().parents[2] / "shared" / "matrix-spec"))
DATA = SPEC_DIR / "data"
API_DIRS = ("api/client-server",)


@lru_cache(maxsize=None)
def _load(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _retrieve(uri: str) -> Resource:
    assert uri.startswith("file://"), uri
    return Resource.from_contents(_load(uri[len("file://"):]), default_specification=DRAFT202012)


@lru_cache(maxsize=1)
def _registry() -> Registry:
    return Registry(retrieve=_retrieve)  # type: ignore[call-arg]


@lru_cache(maxsize=1)
def _operations() -> list[tuple[str, re.Pattern[str], int, str, dict[str, Any], str]]:
    """(method, compiled path regex, number of params, file, operation, JSON pointer)."""
    if not DATA.is_dir():
        raise RuntimeError(f"Matrix spec data not found at {DATA}")
    ops = []
    for sub in API_DIRS:
        for f in sorted((DATA / sub).glob("*.yaml")):
            doc = _load(str(f))
            if not isinstance(doc, dict) or "paths" not in doc:
                continue
            base = doc.get("servers", [{}])[0].get("variables", {}).get("basePath", {}).get("default", "")
            for template, item in doc["paths"].items():
                full = base + template
                params = re.findall(r"\{[^}]+\}", full)
                rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]*", re.escape(full)) + "/?$"
                for method, op in item.items():
                    if method in ("get", "put", "post", "delete", "patch"):
                        pointer = "/paths/" + _esc(template) + "/" + method
                        ops.append((method.upper(), re.compile(rx), len(params), str(f), op, pointer))
    return ops


def _esc(s: str) -> str:
    return s.replace("~", "~0").replace("/", "~1")


def find_operation(method: str, path: str) -> tuple[str, dict[str, Any], str]:
    candidates = [(n, f, op, ptr) for m, rx, n, f, op, ptr in _operations() if m == method and rx.match(path)]
    if not candidates:
        raise LookupError(f"{method} {path} is not in the spec")
    candidates.sort(key=lambda c: c[0])
    return candidates[0][1], candidates[0][2], candidates[0][3]


def _pointer_get(doc: Any, pointer: str) -> Any:
    for part in pointer.lstrip("/").split("/"):
        doc = doc[part.replace("~1", "/").replace("~0", "~")]
    return doc


def validate_response(method: str, path: str, status: int, body: object) -> None:
    doc_file, op, op_ptr = find_operation(method.upper(), path)
    responses = op.get("responses", {})
    key = str(status) if str(status) in responses else "default"
    resp = responses.get(key)
    if resp is None:
        return
    resp_ptr = f"{op_ptr}/responses/{key}"
    if isinstance(resp, dict) and isinstance(resp.get("$ref"), str) and resp["$ref"].startswith("#"):
        resp_ptr = resp["$ref"][1:]
        resp = _pointer_get(_load(doc_file), resp_ptr)
    schema = resp.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return
    uri = Path(doc_file).resolve().as_uri()
    wrapped = {"$ref": f"{uri}#{resp_ptr}/content/application~1json/schema"}
    validator = Draft202012Validator(wrapped, registry=_registry())
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path)
        raise AssertionError(
            f"{op.get('operationId')} {status}: response invalid at '{where}': {e.message}"
        )
