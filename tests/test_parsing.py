"""The parser and the corpus loader: golden file, hand counts, every repaired PDF defect, verbatim text."""

from __future__ import annotations

import difflib
import json
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from assistant.corpus import Corpus, load_corpus
from assistant.errors import CorpusError
from assistant.parsing import is_bullet_tail, parse_document, slugify
from assistant.types import DocumentMeta, Unit
from tests.conftest import REAL_CORPUS_DIR
from tests.golden import GOLDEN, render_units

SOURCE = REAL_CORPUS_DIR / "leangen-erklaeringen.txt"
META = REAL_CORPUS_DIR / "leangen-erklaeringen.meta.json"

# Bullets per chapter counted by hand in the source (grep), minus the 5 bullet fragments that are
# tails of the previous bullet.
HAND_COUNT = {
    "Finans og organisasjon": 18,
    "Helse og eldre": 35,
    "Sosiale tjenester": 37,
    "Oppvekst og utdanning": 48,
    "Kultur, idrett og friluftsliv": 32,
    "Byutvikling": 44,
    "Miljø, næring og samferdsel": 71,
}


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return load_corpus(REAL_CORPUS_DIR)


@pytest.fixture(scope="module")
def units(corpus: Corpus) -> tuple[Unit, ...]:
    return corpus.units


def _meta(**overrides: object) -> DocumentMeta:
    values: dict[str, object] = {
        "doc_id": "test-doc",
        "title": "Testdokument",
        "period": "2024",
        "parties": ("A",),
        "kind": "test",
        "source_file": "test.txt",
    }
    values.update(overrides)
    return DocumentMeta(**values)  # type: ignore[arg-type]


# --- golden file and counts ----------------------------------------------------------------


def test_units_match_golden_file() -> None:
    rendered = render_units()
    expected = GOLDEN.read_text(encoding="utf-8")
    if rendered != expected:
        diff = "\n".join(
            list(
                difflib.unified_diff(expected.splitlines(), rendered.splitlines(), "golden", "parser", lineterm="", n=0)
            )[:40]
        )
        pytest.fail(
            "The parser's units differ from tests/data/leangen-units.golden.jsonl. If the change is "
            "intended, regenerate with `python -m tests.golden` and review the diff before committing.\n" + diff
        )


def test_golden_file_is_valid_jsonl_with_unique_ids() -> None:
    rows = [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 371
    assert sum(1 for r in rows if r["kind"] == "statement") == 31
    assert len({r["id"] for r in rows}) == len(rows)


def test_a_commitment_sentence_of_a_passage_is_a_unit_of_its_own(corpus: Corpus) -> None:
    statement = corpus.unit("helse-og-eldre/fastlegeordningen/p1/s4")
    passage = corpus.unit("helse-og-eldre/fastlegeordningen/p1")
    assert statement.kind == "statement" and statement.parent == passage.id
    assert statement.text == (
        "Byrådet vil jobbe for at alle i Trondheim har sin egen fastlege, og at det skal være enklere å bytte fastlege."
    )
    assert statement.text in passage.text  # verbatim, a piece of its passage
    # A goal with another subject is not a commitment: «Merforbruk i kommunen skal reduseres».
    assert not any(s.text.startswith("Merforbruk") for s in corpus.statements)
    # Statements are citable, not indexed on their own.
    assert statement in corpus.citable and statement not in corpus.units


@pytest.mark.parametrize(("chapter", "expected"), HAND_COUNT.items(), ids=list(HAND_COUNT))
def test_pledge_count_per_chapter_matches_hand_count(units: tuple[Unit, ...], chapter: str, expected: int) -> None:
    assert sum(1 for u in units if u.kind == "pledge" and u.chapter == chapter) == expected


def test_pledge_total_and_chapters(corpus: Corpus) -> None:
    assert len(corpus.pledges) == sum(HAND_COUNT.values()) == 285
    chapters = [c.title for c in corpus.documents[0].chapters]
    assert chapters == ["Innledning", *HAND_COUNT]


def test_bullets_in_source_minus_fragments_equal_pledges(corpus: Corpus) -> None:
    bullets = [line for line in SOURCE.read_text(encoding="utf-8").splitlines() if re.match(r"^\s*- ", line)]
    assert len(bullets) - 5 == len(corpus.pledges)


# --- each repaired defect ------------------------------------------------------------------


@dataclass(frozen=True)
class Repair:
    """A unit the PDF extraction broke: its repaired text, and the broken-off piece."""

    text: str
    tail: str
    kind: str = "pledge"
    exact: bool = True


REPAIRS = {
    "bullet-broken-across-blank-line": Repair(
        "vurdere innkjøp av digitale tjenester framfor å utvikle disse i egenregi der det er hensiktsmessig.",
        "egenregi der det er hensiktsmessig.",
    ),
    "bullet-broken-across-page-break": Repair(
        "styrke og legge til rette for et tettere samarbeid mellom kommunen og frivillige og ideelle aktører.",
        "samarbeid mellom kommunen og frivillige og ideelle aktører.",
    ),
    "lowercase-continuation-pasienter-og-brukere": Repair(
        "jobbe for at pasienter og brukere skal oppleve valgfrihet og mangfold med tanke på hvem som utøver tjenesten.",
        "brukere skal oppleve valgfrihet",
    ),
    "lowercase-continuation-klimaloftene": Repair(
        "holde fokus på de vedtatte klimaløftene i Energi- og klimaplanen: klimanøytral, energismart, sirkulær og "
        "klimarobust.",
        "energismart, sirkulær og klimarobust.",
    ),
    "fragment-bullet-funksjonsnedsettelse": Repair(
        "sikre et godt og verdig bo- og aktivitetstilbud til innbyggere med funksjonsnedsettelse.",
        "funksjonsnedsettelse.",
    ),
    "fragment-bullet-boligsosialt-tilbud": Repair(
        "gjennomgå tildelingskriteriene til kommunale boliger, med mål om å tilby et bedre boligsosialt tilbud til "
        "de som trenger det mest.",
        "bedre boligsosialt tilbud til de som trenger det mest.",
    ),
    "fragment-bullet-fosterhjem": Repair(
        "aktivt jobbe både lokalt og mot nasjonale myndigheter for å få på plass ordninger som øker rekrutteringen "
        "av fosterhjem.",
        "ordninger som øker rekrutteringen av fosterhjem.",
    ),
    "fragment-bullet-samtaletilbud": Repair(
        "styrke omsorgsstasjonen for barn og ungdom, slik at alle unge som trenger det får et samtaletilbud uten "
        "behov for henvisning. Eksisterende samarbeid med ideelle aktører skal videreutvikles - blant annet med "
        "erfaringer fra Omsorgsstasjonen for barn og unge (OBU).",
        "det får et samtaletilbud uten behov for henvisning.",
    ),
    "fragment-bullet-after-page-break-elevtallsregistreringer": Repair(
        "utligne levekårsforskjellene mellom bydelene, blant annet ved å gjennomgå tildelingsmodellen og vurdere å "
        "øke frekvensen på elevtallsregistreringer.",
        "og vurdere å øke frekvensen på elevtallsregistreringer.",
    ),
    "prose-paragraph-split-at-page-break": Repair(
        "Vi skal ha en kommunal helsetjeneste med høy kvalitet, tilgjengelighet og med fokus på både pasienter og "
        "deres pårørende.",
        "helsetjeneste med høy kvalitet",
        kind="passage",
        exact=False,
    ),
}


@pytest.mark.parametrize("repair", REPAIRS.values(), ids=list(REPAIRS))
def test_repaired_unit(units: tuple[Unit, ...], repair: Repair) -> None:
    if repair.exact:
        matches = [u for u in units if u.text == repair.text]
    else:
        matches = [u for u in units if repair.text in u.text]
    assert len(matches) == 1, f"expected exactly one unit with the repaired text, found {len(matches)}"
    assert matches[0].kind == repair.kind
    # The broken-off piece is not a unit of its own.
    assert not [u for u in units if u.text.startswith(repair.tail)]


def test_prose_paragraph_split_at_page_break_is_one_passage(units: tuple[Unit, ...]) -> None:
    passage = next(u for u in units if u.text.startswith("Innbyggernes helsetjeneste innebærer"))
    assert passage.text.endswith("når vi trenger hjelp og omsorg aller mest.")
    assert passage.section == "Innbyggernes helsetjeneste"


# --- what is not a unit --------------------------------------------------------------------

NOT_IN_ANY_UNIT = {
    "toc-row": "Trygg økonomisk styring og bærekraftig kommuneøkonomi | 4",
    "toc-markup": "<b>",
    "table-pipe": "|",
    "signature-hauge": "Kristian Dahlberg Hauge",
    "signature-fjorstad": "Line Fjørstad",
    "signature-moe": "Erling Moe",
    "title-line": "Det politiske grunnlaget for et byråd",
    "title-parties": "utgått av Høyre, MDG og Venstre",
    "title-period": "2024 - 2027",
    "title-heading": "Leangen- erklæringen",
    "logo-first-line": "miljøpartiet",
    "logo-second-line": "de grønne",
}


@pytest.mark.parametrize("fragment", NOT_IN_ANY_UNIT.values(), ids=list(NOT_IN_ANY_UNIT))
def test_front_matter_and_decoration_appear_in_no_unit(units: tuple[Unit, ...], fragment: str) -> None:
    assert not [u.id for u in units if fragment.lower() in u.text.lower()]


def test_front_matter_keeps_only_the_preamble_sentences(units: tuple[Unit, ...]) -> None:
    front = [u.text for u in units if u.chapter == "Innledning"]
    assert front == [
        "Partiene Høyre, MDG og Venstre danner historiens første byråd i Trondheim.",
        "Denne tiltredelseserklæringen utgjør sammen med “Samarbeidsplattform for sentrum-Høyre 2023-2027” det "
        "politiske grunnlaget for byrådets virke.",
    ]


def test_table_of_contents_titles_are_not_chapters_or_sections(corpus: Corpus) -> None:
    titles = {c.title for d in corpus.documents for c in d.chapters} | {
        s.title for d in corpus.documents for c in d.chapters for s in c.sections
    }
    assert "Innhold" not in titles
    assert not [t for t in titles if "|" in t or "<b>" in t]


# --- headings ------------------------------------------------------------------------------


def test_byradet_vil_markers_are_not_subheadings_or_sections(units: tuple[Unit, ...]) -> None:
    assert not [u.id for u in units if (u.subheading or "").lower().startswith("byrådet vil")]
    assert not [u.id for u in units if u.section.lower().startswith("byrådet vil")]


SUBHEADINGS = {
    "h2-bold-colon": ("## **Arbeid og velferd:**", "Arbeid og velferd", 10),
    "h4-bold-colon": ("#### **Barne- og familietjenesten (BFT):**", "Barne- og familietjenesten (BFT)", 7),
    "h3-bold-no-colon": ("### **Barne- og ungdomspsykiatrien (BUP)**", "Barne- og ungdomspsykiatrien (BUP)", 1),
    "h3-plain": ("### Kulturskolen", "Kulturskolen", 6),
    "h2-plain-in-pledge-list": ("## Mestring og inkludering", "Mestring og inkludering", 14),
}


@pytest.mark.parametrize(("source_line", "title", "n_pledges"), SUBHEADINGS.values(), ids=list(SUBHEADINGS))
def test_subheading_forms(units: tuple[Unit, ...], source_line: str, title: str, n_pledges: int) -> None:
    assert source_line in SOURCE.read_text(encoding="utf-8").splitlines()
    under = [u for u in units if u.subheading == title]
    assert len(under) == n_pledges
    assert all(u.kind == "pledge" for u in under)
    # A sub-heading never becomes a section of its own.
    assert not [u for u in units if u.section == title]


def test_plain_h2_after_prose_is_a_section(units: tuple[Unit, ...]) -> None:
    section = [u for u in units if u.section == "Fastlegeordningen"]
    assert [u.kind for u in section] == ["passage", "passage", "pledge", "pledge"]
    assert {u.subheading for u in section} == {None}
    assert {u.chapter for u in section} == {"Helse og eldre"}


def test_nested_bullets_are_pledges_with_depth_one(units: tuple[Unit, ...]) -> None:
    trees = [u for u in units if u.subheading == "Natur- og klimatilpasning"]
    parent = trees[0]
    assert parent.text == "pleie, fornye og plante flere bytrær i Trondheim."
    assert parent.depth == 0
    children = trees[1:4]
    assert [c.depth for c in children] == [1, 1, 1]
    assert all(c.kind == "pledge" for c in children)
    assert children[0].text == "sørge for at treregisteret er oppdatert og at flere av områdene i kommunen innlemmes."
    assert [u.depth for u in trees] == [0, 1, 1, 1, 0, 1, 1, 1]


# --- ids -----------------------------------------------------------------------------------

_READABLE_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*(?:/[a-z0-9]+(?:-[a-z0-9]+)*)*/p?[1-9][0-9]*$")


def test_ids_are_unique_and_readable(units: tuple[Unit, ...]) -> None:
    ids = [u.id for u in units]
    assert len(set(ids)) == len(ids)
    assert [i for i in ids if not _READABLE_ID.match(i)] == []
    assert all(u.id.rsplit("/", 1)[1].startswith("p") == (u.kind == "passage") for u in units)


def test_ids_are_stable_across_parses() -> None:
    text = SOURCE.read_text(encoding="utf-8")
    meta = load_corpus(REAL_CORPUS_DIR).documents[0].meta
    first = [u.id for u in parse_document(text, meta).units]
    second = [u.id for u in parse_document(text, meta).units]
    assert first == second
    assert len(first) == 340


def test_known_id_points_at_known_pledge(corpus: Corpus) -> None:
    unit = corpus.unit("helse-og-eldre/fastlegeordningen/2")
    assert unit.kind == "pledge"
    assert unit.text == "styrke det medisinskfaglige kompetansemiljøet på helse- og velferdssentrene."
    with pytest.raises(KeyError):
        corpus.unit("helse-og-eldre/fastlegeordningen/3")


def test_numbers_count_pledges_and_passages_separately(units: tuple[Unit, ...]) -> None:
    pledges = [u.number for u in units if u.kind == "pledge"]
    passages = [u.number for u in units if u.kind == "passage"]
    assert pledges == list(range(1, 286))
    assert passages == list(range(1, len(passages) + 1))


# --- verbatim text -------------------------------------------------------------------------


def _source_words(text: str) -> list[str]:
    """The source's words with bullet markers and markdown heading/bold markers removed."""
    out: list[str] = []
    for raw in text.splitlines():
        line = re.sub(r"^\s*-\s+", "", raw)
        line = re.sub(r"^\s*#{1,6}\s+", "", line)
        out.extend(line.replace("**", "").split())
    return out


def test_every_unit_is_verbatim_source_text(units: tuple[Unit, ...]) -> None:
    sep = "\u0000"
    stream = sep + sep.join(_source_words(SOURCE.read_text(encoding="utf-8"))) + sep
    not_verbatim = [u.id for u in units if sep + sep.join(u.text.split()) + sep not in stream]
    assert not_verbatim == []


def test_verbatim_check_detects_a_changed_word() -> None:
    """The check above can fail: a unit with one word changed is not found in the word stream."""
    sep = "\u0000"
    stream = sep + sep.join(_source_words(SOURCE.read_text(encoding="utf-8"))) + sep
    good = "sette i gang med bygging av Brundalsforbindelsen."
    bad = "sette i gang med byggingen av Brundalsforbindelsen."
    assert sep + sep.join(good.split()) + sep in stream
    assert sep + sep.join(bad.split()) + sep not in stream


# --- synthetic documents -------------------------------------------------------------------

SYNTHETIC = """\
# Tittel på dokumentet

Undertittel uten punktum

# Innhold

| Kapittel En | 2 |

Dette er en innledende setning.

Ola Nordmann

# Kapittel En

## Første seksjon

Litt prosa som brytes ved
et sideskift i PDF-en.

## Byrådet vil:

- gjøre noe bra.
- bygge en ny bro over
- elva.
- etablere et tilbud til

innbyggere i hele byen.

### **Delområde:**

- ha en plan.
  - med et underpunkt.

## Andre seksjon

Mer prosa.

partilogo
"""


def test_parse_document_on_synthetic_text() -> None:
    document = parse_document(SYNTHETIC, _meta(strip_lines=("PARTILOGO",)))
    got = [(u.id, u.kind, u.chapter, u.section, u.subheading, u.depth, u.text) for u in document.units]
    assert got == [
        ("innledning/p1", "passage", "Innledning", "Innledning", None, 0, "Dette er en innledende setning."),
        (
            "kapittel-en/forste-seksjon/p1",
            "passage",
            "Kapittel En",
            "Første seksjon",
            None,
            0,
            "Litt prosa som brytes ved et sideskift i PDF-en.",
        ),
        ("kapittel-en/forste-seksjon/1", "pledge", "Kapittel En", "Første seksjon", None, 0, "gjøre noe bra."),
        (
            "kapittel-en/forste-seksjon/2",
            "pledge",
            "Kapittel En",
            "Første seksjon",
            None,
            0,
            "bygge en ny bro over elva.",
        ),
        (
            "kapittel-en/forste-seksjon/3",
            "pledge",
            "Kapittel En",
            "Første seksjon",
            None,
            0,
            "etablere et tilbud til innbyggere i hele byen.",
        ),
        (
            "kapittel-en/forste-seksjon/delomrade/1",
            "pledge",
            "Kapittel En",
            "Første seksjon",
            "Delområde",
            0,
            "ha en plan.",
        ),
        (
            "kapittel-en/forste-seksjon/delomrade/2",
            "pledge",
            "Kapittel En",
            "Første seksjon",
            "Delområde",
            1,
            "med et underpunkt.",
        ),
        ("kapittel-en/andre-seksjon/p1", "passage", "Kapittel En", "Andre seksjon", None, 0, "Mer prosa."),
    ]
    assert [c.title for c in document.chapters] == ["Innledning", "Kapittel En"]
    assert [s.title for s in document.chapters[1].sections] == ["Første seksjon", "Andre seksjon"]
    assert len(document.pledges) == 5


def test_parse_document_applies_id_prefix() -> None:
    document = parse_document(SYNTHETIC, _meta(id_prefix="doc2"))
    assert document.units
    assert all(u.id.startswith("doc2/") for u in document.units)
    assert all(u.doc_id == "test-doc" for u in document.units)


def test_parse_document_without_chapters_has_no_pledges() -> None:
    document = parse_document("# Tittel\n\n- et punkt uten kapittel.\n", _meta())
    assert document.units == ()


def test_slugify_spells_out_norwegian_letters_and_cuts_at_a_word() -> None:
    assert slugify("Miljø, næring og samferdsel") == "miljo-naering-og-samferdsel"
    assert slugify("Bærekraftig verdiskaping, klimanøytralitet og moderne samferdselsløsninger") == (
        "baerekraftig-verdiskaping"
    )
    assert slugify("!!!") == "x"


@pytest.mark.parametrize(
    ("previous", "bullet"),
    [
        ("sikre et godt og verdig bo- og aktivitetstilbud til innbyggere med", "funksjonsnedsettelse."),
        ("gjennomgå tildelingskriteriene til kommunale boliger, med mål om å tilby et", "bedre boligsosialt tilbud."),
        ("aktivt jobbe for å få på plass", "ordninger som øker rekrutteringen av fosterhjem."),
        ("styrke omsorgsstasjonen, slik at alle unge som trenger", "det får et samtaletilbud."),
        ("utligne levekårsforskjellene mellom bydelene", "og vurdere å øke frekvensen."),
        ("etablere et nytt tilbud", "helsestasjonene."),
    ],
    ids=[
        "dangling-preposition",
        "dangling-article",
        "plural-noun-opener",
        "pronoun-opener",
        "conjunction",
        "lone-word",
    ],
)
def test_is_bullet_tail_true(previous: str, bullet: str) -> None:
    assert is_bullet_tail(previous, bullet) is True


@pytest.mark.parametrize(
    ("previous", "bullet"),
    [
        ("sikre god økonomistyring på alle enheter.", "og vurdere noe mer."),
        ("utnytte potensialet i kunstig intelligens,", "at det fortettes med kvalitet."),
        (
            "bruke demografisk utvikling for å planlegge kommunal tjenesteproduksjon",
            "aktivt jobbe for flere bedrifter.",
        ),
        ("utprøve ulike turnusordninger", "innføre fritt brukervalg i hjemmetjenestene."),
        ("støtte og videreutvikle tilbudet om rask psykisk helsehjelp", "styrke lavterskeltilbud."),
        ("gi en bedre skolestart", "her skal vi bygge."),
    ],
    ids=["previous-complete", "previous-ends-in-comma", "adverb-opener", "infinitive", "infinitive-2", "her-opener"],
)
def test_is_bullet_tail_false(previous: str, bullet: str) -> None:
    assert is_bullet_tail(previous, bullet) is False


# --- corpus loading ------------------------------------------------------------------------

SECOND_DOCUMENT = """\
# Ny plattform

# Helse

## Sykehjem

Vi vil ha flere sykehjemsplasser.

## Byrådet vil:

- bygge to nye sykehjem.
"""


def _copy_corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    shutil.copytree(REAL_CORPUS_DIR, folder)
    return folder


def _write_second(folder: Path, **meta: object) -> None:
    (folder / "ny-plattform.txt").write_text(SECOND_DOCUMENT, encoding="utf-8")
    values: dict[str, object] = {"doc_id": "ny-plattform", "title": "Ny plattform", "source_file": "ny-plattform.txt"}
    values.update(meta)
    (folder / "ny-plattform.meta.json").write_text(json.dumps(values), encoding="utf-8")


def test_second_document_is_loaded_with_its_id_prefix(tmp_path: Path) -> None:
    folder = _copy_corpus(tmp_path)
    _write_second(folder, id_prefix="ny")
    corpus = load_corpus(folder)
    assert [d.meta.doc_id for d in corpus.documents] == ["leangen-erklaeringen", "ny-plattform"]
    second = corpus.documents[1]
    assert [u.id for u in second.units] == ["ny/helse/sykehjem/p1", "ny/helse/sykehjem/1"]
    assert second.units[1].text == "bygge to nye sykehjem."
    assert second.meta.id_prefix == "ny"
    assert len(corpus.pledges) == 286
    assert corpus.sha256 != load_corpus(REAL_CORPUS_DIR).sha256


def test_documents_without_id_prefix_that_clash_are_refused(tmp_path: Path) -> None:
    folder = _copy_corpus(tmp_path)
    (folder / "kopi.txt").write_text(SOURCE.read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "kopi.meta.json").write_text(
        json.dumps({"doc_id": "kopi", "title": "Kopi", "source_file": "kopi.txt"}), encoding="utf-8"
    )
    with pytest.raises(CorpusError, match="id_prefix"):
        load_corpus(folder)


@pytest.mark.parametrize(
    ("meta_text", "message"),
    [
        ("{not json", "unreadable or lacks a field"),
        (json.dumps({"title": "Uten id", "source_file": "ny-plattform.txt"}), "doc_id, title and source_file"),
        (json.dumps({"doc_id": "x", "title": "Uten kilde"}), "source_file"),
        (json.dumps(["en", "liste"]), "ny-plattform.meta.json"),
    ],
    ids=["invalid-json", "missing-doc-id", "missing-source-file", "not-an-object"],
)
def test_invalid_meta_file_raises_corpus_error(tmp_path: Path, meta_text: str, message: str) -> None:
    folder = _copy_corpus(tmp_path)
    _write_second(folder)
    (folder / "ny-plattform.meta.json").write_text(meta_text, encoding="utf-8")
    with pytest.raises(CorpusError, match=re.escape(message)) as caught:
        load_corpus(folder)
    assert "ny-plattform.meta.json" in str(caught.value)


def test_meta_pointing_at_missing_text_raises_corpus_error(tmp_path: Path) -> None:
    folder = _copy_corpus(tmp_path)
    _write_second(folder, source_file="finnes-ikke.txt")
    with pytest.raises(CorpusError, match=r"finnes-ikke\.txt"):
        load_corpus(folder)


def test_folder_without_meta_files_raises_corpus_error(tmp_path: Path) -> None:
    (tmp_path / "bare-tekst.txt").write_text(SECOND_DOCUMENT, encoding="utf-8")
    with pytest.raises(CorpusError, match=r"\.meta\.json"):
        load_corpus(tmp_path)
    with pytest.raises(CorpusError, match="No documents"):
        load_corpus(tmp_path / "finnes-ikke")


def test_text_that_is_not_utf8_raises_corpus_error(tmp_path: Path) -> None:
    folder = _copy_corpus(tmp_path)
    _write_second(folder, id_prefix="ny")
    (folder / "ny-plattform.txt").write_bytes("Byrådet vil".encode("latin-1"))
    with pytest.raises(CorpusError, match="UTF-8"):
        load_corpus(folder)


def test_chapter_counts_are_consistent_with_tree(corpus: Corpus) -> None:
    document = corpus.documents[0]
    per_chapter = Counter(u.chapter for u in document.pledges)
    assert {c.title: sum(len(s.pledges) for s in c.sections) for c in document.chapters if c.title in HAND_COUNT} == (
        dict(per_chapter)
    )
