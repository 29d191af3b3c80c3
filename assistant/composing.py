"""The extractive answer's words: what was selected, written as Norwegian sentences and lists.

Pledges complete «Byrådet vil …», so one reads as a sentence; prose is quoted. A broad answer (a
heading, a theme, pledges with an attribute) opens with a lead that says how much the platform
has and where, then lists every unit grouped by chapter › heading; a chapter summary gives each
heading's size and its most central pledges; the document answer says what the platform is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from assistant.answering import Selection
from assistant.scope import Catalogue, catalogue_intro, group_key
from assistant.types import Citation

REFUSAL = "Leangen-erklæringen sier ikke noe om dette, så jeg kan ikke svare på det ut fra plattformen."
RELATED_INTRO = "Dette er de nærmeste løftene jeg fant:"
#: Leads an answer whose answerability is only just above the refusal threshold: on the dev
#: questions, half of such answers are to questions the platform does not cover.
NEAREST_INTRO = "Erklæringen svarer kanskje ikke direkte på dette. Det nærmeste den sier:"
#: Leads the nearest units when the question asks for a figure or a date they do not give.
NOT_GIVEN = {
    "figure": "Erklæringen oppgir ikke noe tall for dette. Det nærmeste den sier:",
    "date": "Erklæringen oppgir ikke noe tidspunkt for dette. Det nærmeste den sier:",
}
WELCOME = (
    "Hei! Jeg svarer på spørsmål om Leangen-erklæringen, den politiske plattformen til byrådet i "
    "Trondheim (Høyre, MDG og Venstre, 2024–2027). Svarene mine er erklæringens egne ord, med kilde "
    "til hvert løfte. Jeg kan ikke svare på det erklæringen ikke sier noe om, og jeg gir ingen egne "
    "meninger. Prøv for eksempel: «Hva gjør byrådet for eldre?», «Hva vil byrådet gjøre med "
    "fastlegeordningen?» eller «Oppsummer kapittelet om oppvekst og utdanning»."
)
GROUP_BY_CHAPTER_FROM = 5
_NUMBER_WORDS = ("null", "ett", "to", "tre", "fire", "fem", "seks", "sju", "åtte", "ni", "ti")


def with_marker(text: str, marker: str) -> str:
    """Put the citation marker inside the sentence: "… i året [1]."."""
    body = text.rstrip()
    end = "."
    if body.endswith((".", "!", "?")):
        end = body[-1]
        body = body[:-1].rstrip()
    return f"{body.rstrip(',;:')} {marker}{end}"


def _pledge_sentence(text: str, marker: str, *, also: bool) -> str:
    lead = "Byrådet vil også" if also else "Byrådet vil"
    return f"{lead} {with_marker(text, marker)}"


def _passage_sentence(text: str, marker: str) -> str:
    return f"Erklæringen sier: «{text.rstrip()}» {marker}"


def _count(n: int, one: str, many: str) -> str:
    """«ett kapittel», «to kapitler», «12 løfter»."""
    word = _NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else str(n)
    if n == 1:
        word = "ett" if one.endswith(("løfte", "punkt", "kapittel")) else "én"
    return f"{word} {one if n == 1 else many}"


def _pledges(n: int) -> str:
    return f"{n} {'løfte' if n == 1 else 'løfter'}" if n > 10 else _count(n, "løfte", "løfter")


def _bullet(citation: Citation) -> str:
    text = citation.text.rstrip()
    if citation.chunk.kind == "passage":
        return f"- «{text}» [{citation.n}]"
    return f"- {with_marker(text, f'[{citation.n}]')}"


def _grouped(citations: Sequence[Citation]) -> list[str]:
    """Bullets under a bold «Chapter › Heading» line for each heading, in document order."""
    lines: list[str] = []
    groups: dict[str, list[Citation]] = {}
    for citation in citations:
        chunk = citation.chunk
        key = " › ".join(p for p in (chunk.chapter, chunk.subheading or chunk.section) if p)
        groups.setdefault(key, []).append(citation)
    for key, members in groups.items():
        if len(groups) > 1:
            lines.append(f"\n**{key}**")
        lines.extend(_bullet(c) for c in members)
    return lines


def _lead(selection: Selection, citations: Sequence[Citation]) -> str:
    scope = selection.scope
    n_chapters = len({c.chunk.chapter for c in citations})
    where = f", i {_count(n_chapters, 'kapittel', 'kapitler')}" if n_chapters > 1 else ""
    if scope.kind == "heading" and len(scope.topics) == 1:
        return f"Under overskriften «{scope.name}» har erklæringen {_pledges(len(citations))}:"
    if scope.kind == "attribute":
        return f"Erklæringen har {_pledges(len(citations))} med {scope.name}{where}:"
    return f"Erklæringen har {_pledges(len(citations))} om {scope.name}{where}:"


def _chapter_summary(selection: Selection, citations: Sequence[Citation], catalogue: Catalogue) -> str:
    chapter = selection.scope.topics[0]
    n_pledges = sum(1 for u in chapter.units if catalogue.units[u].kind == "pledge")
    if not chapter.headings:
        lines = [f"«{chapter.name}» har ingen løfter, bare tekst:"]
        return "\n".join([*lines, *(_bullet(c) for c in citations)])
    lines = [
        f"Kapittelet «{chapter.name}» har {_pledges(n_pledges)} under "
        f"{_count(len(chapter.headings), 'overskrift', 'overskrifter')}. De mest sentrale:"
    ]
    lines.extend(_bullet(c) for c in citations if c.chunk.kind == "statement")
    for key in chapter.headings:
        members = [
            c for c in citations if c.chunk.kind == "pledge" and group_key(catalogue.units[c.chunk.unit_id]) == key
        ]
        total = len(catalogue.groups.get(key, ()))
        lines.append(f"\n**{key.split(' › ')[-1]}** ({_pledges(total)})")
        lines.extend(_bullet(c) for c in members)
        if total > len(members):
            lines.append(f"- … og {total - len(members)} til under denne overskriften.")
    return "\n".join(lines)


def _document(citations: Sequence[Citation], catalogue: Catalogue) -> str:
    meta = catalogue.meta
    lines: list[str] = []
    if meta:
        parties = (
            ", ".join(meta.parties[:-1]) + f" og {meta.parties[-1]}" if len(meta.parties) > 1 else "".join(meta.parties)
        )
        lines.append(
            f"{meta.title} er det politiske grunnlaget for byrådet i Trondheim for perioden {meta.period}, "
            f"et byråd utgått av {parties}."
        )
    lines.extend(f"«{c.text.rstrip()}» [{c.n}]" for c in citations)
    chapters = [c for c in catalogue.chapters if c.key != catalogue_intro(catalogue)]
    summary = ", ".join(
        f"{c.name} ({_pledges(sum(1 for u in c.units if catalogue.units[u].kind == 'pledge'))})" for c in chapters
    )
    lines.append(f"Erklæringen har {_count(len(chapters), 'kapittel', 'kapitler')}: {summary}.")
    return " ".join(lines[:1]) + ("\n\n" + " ".join(lines[1:]) if len(lines) > 1 else "")


def compose(
    selection: Selection, unit_texts: Mapping[str, str] | None = None, catalogue: Catalogue | None = None
) -> tuple[str, tuple[Citation, ...]]:
    """Write the answer. `unit_texts` maps unit ids to their full text, for citations of a piece
    of a long passage; a chapter summary and the document answer need the `catalogue`."""
    if selection.mode == "chat":
        return WELCOME, ()
    if selection.refused:
        return REFUSAL, ()
    texts = unit_texts or {}
    citations = tuple(
        Citation(n, chunk, texts.get(chunk.unit_id, chunk.text)) for n, chunk in enumerate(selection.cited, start=1)
    )
    kind = selection.mode
    if kind in ("chapter", "document") and catalogue is None:
        raise ValueError(f"a {kind} answer needs the catalogue")
    if kind == "chapter" and catalogue is not None:
        return _chapter_summary(selection, citations, catalogue), citations
    if kind == "document" and catalogue is not None:
        return _document(citations, catalogue), citations
    if kind in ("heading", "theme", "attribute"):
        return "\n".join([_lead(selection, citations), *_grouped(citations)]), citations
    if len(citations) >= GROUP_BY_CHAPTER_FROM:
        lead = f"Leangen-erklæringen har {len(citations)} punkter om dette. Byrådet vil:"
        return "\n".join([lead, *_grouped(citations)]), citations
    sentences = []
    pledges_seen = 0
    for citation in citations:
        marker = f"[{citation.n}]"
        if citation.chunk.kind == "pledge":
            sentences.append(_pledge_sentence(citation.text, marker, also=pledges_seen > 0))
            pledges_seen += 1
        elif citation.chunk.kind == "statement":
            sentences.append(with_marker(citation.text, marker))
        else:
            sentences.append(_passage_sentence(citation.text, marker))
    if kind == "nearest":
        sentences.insert(0, NEAREST_INTRO)
    if kind == "not_given":
        sentences.insert(0, NOT_GIVEN.get(selection.scope.name, NOT_GIVEN["figure"]))
    return " ".join(sentences), citations
