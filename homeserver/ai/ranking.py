"""Merging ranked lists for smart search (pure: no I/O).

Reciprocal-rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009): an item's score is the sum
over the lists of 1 / (K + rank), rank counted from 0. It needs no score calibration between the
lists (cosine similarities and keyword hits are not on one scale), and K = 60 is the value of the
paper. Ties are broken by the item itself, so the order is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

RRF_K = 60


def fuse(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """The items of all lists, best first, with their fused scores."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda t: (-t[1], t[0]))
