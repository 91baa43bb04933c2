"""The bundled all-MiniLM-L6-v2 run with numpy: equal to the reference implementation, and
ranking a small labelled set sensibly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from homeserver.ai.local_embed import DIM, shared_embedder

# Computed once with sentence-transformers (torch, CPU) in a separate environment; see "source".
REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text())

# A small labelled set: each query and the one message of the corpus that answers it.
CORPUS = [
    "The database failover to the replica finished at 14:00 and writes are back.",
    "Lunch is on the company on Friday, pizza from the place downstairs.",
    "We decided to ship the mobile release on Thursday after QA signs off.",
    "The TLS certificate for the API gateway expires next week, renewal is scheduled.",
    "Alice is on call this weekend; Bob covers Monday morning.",
    "The office wifi password changed, ask reception for the new one.",
    "Customer churn went down 3% after the onboarding emails were rewritten.",
    "Kubernetes nodes ran out of memory because of the log shipper's leak.",
]
QUERIES = [
    ("when did the primary db come back after switching over", 0),
    ("free food at the end of the week", 1),
    ("what day are we releasing the app", 2),
    ("ssl cert renewal", 3),
    ("who is the on-call engineer on saturday", 4),
    ("internet access in the building", 5),
    ("did fewer users cancel their subscription", 6),
    ("why did the cluster crash with OOM", 7),
]


def test_forward_pass_matches_reference_to_1e_4() -> None:
    got = shared_embedder().embed(REFERENCE["sentences"])
    want = np.array(REFERENCE["embeddings"], dtype=np.float32)
    assert got.shape == (3, DIM)
    assert np.abs(got - want).max() < 1e-4
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_similar_pairs_rank_above_unrelated() -> None:
    e = shared_embedder()
    a, b, c = e.embed(["The server is down and users cannot log in.",
                       "Nobody can sign in, the backend looks offline.",
                       "My cat likes to sleep in the sun."])
    assert float(a @ b) > float(a @ c) + 0.2


@pytest.mark.parametrize("batch", [1, 3])
def test_labelled_queries_find_their_message(batch: int) -> None:
    e = shared_embedder()
    docs = e.embed(CORPUS, batch=batch)
    q = e.embed([t for t, _ in QUERIES])
    top1 = [int(np.argmax(docs @ v)) for v in q]
    hits = sum(t == want for t, (_, want) in zip(top1, QUERIES, strict=True))
    assert hits >= 7, (hits, top1)  # measured: 8/8 on this set
