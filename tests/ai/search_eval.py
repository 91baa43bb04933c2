"""The labelled search set (data/search_eval.json) and what the test and the benchmark do with
it: load the messages into `ai_vectors` through the real store, rank each query by vector,
keyword and both merged (the server's fusion), and score the rankings by recall@k and MRR."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from homeserver.ai.local_embed import MODEL_NAME, shared_embedder
from homeserver.ai.ranking import fuse
from homeserver.storage.ai_vectors import AIVectorStore

DATA = Path(__file__).parent / "data" / "search_eval.json"
VECTORS = DATA.with_name("search_eval_vectors.npz")
WORD = re.compile(r"\w+", re.UNICODE)
DEPTH = 20  # how deep each list goes before fusion (the server asks for 4 x limit)


@dataclass(frozen=True)
class LabelledSet:
    messages: list[dict[str, str]]
    queries: list[dict[str, Any]]
    message_vectors: np.ndarray
    query_vectors: np.ndarray

    @property
    def rooms(self) -> list[str]:
        return sorted({m["room"] for m in self.messages})


def _texts_digest(raw: dict[str, Any]) -> str:
    texts = [m["body"] for m in raw["messages"]] + [q["q"] for q in raw["queries"]]
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()


def load_set() -> LabelledSet:
    """The set with its vectors from the local model, precomputed (the forward pass over 116
    texts takes 20 s on a loaded 2-core machine): `python -m bench.ai_search_eval --write-vectors`
    writes them again after the set or the model changes."""
    raw = json.loads(DATA.read_text())
    with np.load(VECTORS) as z:
        if str(z["digest"]) != _texts_digest(raw):
            raise RuntimeError(f"{VECTORS.name} is stale: run python -m bench.ai_search_eval --write-vectors")
        return LabelledSet(raw["messages"], raw["queries"], z["messages"], z["queries"])


def write_vectors() -> None:
    raw = json.loads(DATA.read_text())
    model = shared_embedder()
    np.savez(VECTORS, digest=np.array(_texts_digest(raw)),
             messages=model.embed([m["body"] for m in raw["messages"]]),
             queries=model.embed([q["q"] for q in raw["queries"]]))


async def fill(store: AIVectorStore, s: LabelledSet) -> None:
    await store.put([(m["id"], m["room"], n, MODEL_NAME, s.message_vectors[n], m["body"])
                     for n, m in enumerate(s.messages)])


async def rankings(store: AIVectorStore, s: LabelledSet) -> dict[str, list[list[str]]]:
    """Per method ("vector", "keyword", "merged"), the ranked message IDs of each query."""
    out: dict[str, list[list[str]]] = {"vector": [], "keyword": [], "merged": []}
    for n, q in enumerate(s.queries):
        vec = [e for e, _ in await store.nearest(s.rooms, MODEL_NAME, s.query_vectors[n], DEPTH)]
        kw = await store.keyword_matches(s.rooms, WORD.findall(q["q"])[:8], MODEL_NAME, DEPTH)
        out["vector"].append(vec)
        out["keyword"].append(kw)
        out["merged"].append([e for e, _ in fuse([vec, kw])])
    return out


def recall_at(ranked: list[list[str]], s: LabelledSet, k: int = 5) -> float:
    """Mean over queries of the share of relevant messages in the top k."""
    return float(np.mean([len(set(r[:k]) & set(q["relevant"])) / len(q["relevant"])
                          for r, q in zip(ranked, s.queries)]))


def mrr(ranked: list[list[str]], s: LabelledSet) -> float:
    """Mean reciprocal rank of the first relevant message (0 when none is found)."""
    total = 0.0
    for r, q in zip(ranked, s.queries):
        hit = next((i for i, e in enumerate(r) if e in q["relevant"]), None)
        total += 0.0 if hit is None else 1.0 / (hit + 1)
    return total / len(s.queries)
