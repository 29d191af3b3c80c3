"""A follow-up question made standalone without a language model (the extractive backend).

What a follow-up refers to decides how it is rewritten; each kind keeps the thread of the
previous question (as it was searched) or of the previous answer:

- a new topic: «og hva med kollektiv?» after «Alle løfter om sykkel» → «Alle løfter om kollektiv»
  (the previous question's topic words give way to the new ones, its frame stays);
- a new group or place: «og for studenter?» after «Hva gjør byrådet for eldre?» → «Hva gjør
  byrådet for studenter?»; when the previous question has no «for …», the phrase is added to it;
- why: «hvorfor?» → «Hvorfor vil byrådet <the point the answer gave>?», or of its topic;
- a point of the answer: «mer om det siste punktet», «punkt 2» → that point's own words;
- anything else short: the previous question and the follow-up together, as before.

Pure: strings in, a string out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.text import content_words

History = Sequence[tuple[str, str]]

#: Words that open a follow-up: «og …», «hva med …», «what about …».
FOLLOW_UP_OPENERS = re.compile(r"^(og|men|hva med|kva med|ka med|enn|også|what about|and)\b", re.IGNORECASE)
_NEW_TOPIC = re.compile(
    r"^\W*(?:(?:og|men|and)\s+)?(?:hva|kva|ka|what|how)\s+(?:med|me|about)\s+(?P<topic>.+)$"
    r"|^\W*(?:og|men|enn|and)\s+(?P<bare>.+)$",
    re.IGNORECASE,
)
_PREPOSITIONS = ("for", "i", "på", "til", "blant", "in", "at", "on")
_QUALIFIER = re.compile(rf"^\W*(?:(?:og|men|enn|and)\s+)?(?P<prep>{'|'.join(_PREPOSITIONS)})\s+(?P<what>.+)$", re.I)
_WHY = re.compile(
    r"^\W*(?:og\s+|men\s+)?(?:hvorfor|kvifor|korfor|koffor|why)(?:\s+(?:det|da|då|so|not|ikke))*\W*$", re.I
)
_POINT = re.compile(
    r"\b(?:punkt(?:et|a)?|kulepunkt(?:et)?|løftet|point|bullet|nummer|nr\.?)\b|\[\d+\]"
    r"|\b(?:mer|meir|more)\s+(?:om|about)\s+(?:det|dette|den|denne|that|this|it)\W*$",
    re.IGNORECASE,
)
_ORDINALS = {
    "første": 1,
    "fyrste": 1,
    "first": 1,
    "andre": 2,
    "second": 2,
    "tredje": 3,
    "third": 3,
    "fjerde": 4,
    "fourth": 4,
    "femte": 5,
    "fifth": 5,
}
_LAST = re.compile(r"\b(?:siste|sist|last|nederste)\b", re.IGNORECASE)
_NUMBER = re.compile(r"\[(\d+)\]|\b(?:punkt|nummer|nr\.?|point)\s*(\d+)\b|\b(\d+)\b", re.IGNORECASE)
#: Trailing words of a follow-up that add nothing: «og hva med kollektiv da?».
_TRAILING = re.compile(r"(?:\s+(?:da|då|også|og|òg|then|too))+\s*$", re.IGNORECASE)
_MARKER = re.compile(r"\[(\d+)\]")
#: How a question of its own opens: a question word, a yes/no verb, a request.
_ASKS = re.compile(
    r"^\W*(?:hva|hvordan|hvilke|hvilken|hvilket|hvem|hvor|når|kva|korleis|kven|kor|ka|åssen|vil|skal|blir|"
    r"kommer|kjem|får|finnes|fins|står|gjør|gjer|what|how|which|who|where|when|will|does|is|are|can|list|"
    r"alle|oppsummer|fortell|gi meg)\b",
    re.IGNORECASE,
)
#: Words that point back at the conversation: «dette», «disse», «it»; «det» at the end («… koster det?»).
_POINTS_BACK = re.compile(
    r"\b(?:dette|denne|disse|dem|den|dei|it|this|that|these|those|them|they)\b|\bdet\W*$", re.IGNORECASE
)
#: What stands before a cited point in an answer: a bullet, «Byrådet vil (også)», a quote opener.
_POINT_LEAD = re.compile(r"^(?:[-*]\s+)?(?:Byrådet vil(?: også)?\s+|Erklæringen sier:\s*)?", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*", re.UNICODE)


def standalone(question: str, history: History) -> str:
    """The follow-up `question` as a question that can be searched on its own (see the module doc).

    `history` holds (question as searched, answer text) pairs, oldest first."""
    if not history:
        return question
    previous, answer = history[-1]
    text = question.strip()
    if _WHY.match(text):
        return why_question(previous, answer)
    if _POINT.search(text) and (point := referenced_point(text, answer)) is not None:
        return point
    qualifier = _QUALIFIER.match(text)
    if qualifier and len(text.split()) <= 6:
        return with_qualifier(previous, qualifier["prep"].lower(), _clean(qualifier["what"]))
    new_topic = _NEW_TOPIC.match(text)
    if new_topic and len(text.split()) <= 8:
        topic = _clean(new_topic["topic"] or new_topic["bare"])
        if topic and content_words(topic, drop_question_words=True):
            return with_topic(previous, topic)
    if is_self_contained(text):
        return question
    if len(text.split()) <= 5 or FOLLOW_UP_OPENERS.match(text):
        return f"{previous} {question}"
    return question


def is_self_contained(question: str) -> bool:
    """A question that asks about a topic of its own and points back at nothing: «Hva gjør byrådet
    for eldre?» after anything is a new question, «Hvor mye koster det?» is not."""
    return bool(
        _ASKS.match(question)
        and not FOLLOW_UP_OPENERS.match(question)
        and not _POINTS_BACK.search(question)
        and content_words(question, drop_question_words=True)
    )


def _clean(phrase: str) -> str:
    return _TRAILING.sub("", phrase.strip().rstrip("?!. ")).strip()


def topic_span(question: str) -> tuple[int, int] | None:
    """Where a question's topic words stand (its first to its last content word), or None.

    «Alle løfter om sykkel» → «sykkel»; «Hva vil byrådet gjøre med fastlegeordningen?» →
    «fastlegeordningen»: question words («hva», «byrådet», «gjøre», «løfter») are the frame."""
    wanted = set(content_words(question, drop_question_words=True))
    spans = [m.span() for m in _WORD.finditer(question) if m.group().lower() in wanted]
    if not spans:
        return None
    return spans[0][0], spans[-1][1]


def with_topic(previous: str, topic: str) -> str:
    """The previous question about `topic` instead: its topic words give way, its frame stays."""
    span = topic_span(previous)
    if span is None:
        return f"{previous} {topic}"
    start, end = span
    return previous[:start] + topic + previous[end:]


def with_qualifier(previous: str, preposition: str, what: str) -> str:
    """«og for studenter?»: the previous question's «for …» phrase replaced, or the phrase added."""
    phrase = re.search(rf"\b{re.escape(preposition)}\s+([^?.!,]+)", previous, re.IGNORECASE)
    if phrase is not None:
        start, end = phrase.span(1)
        tail = previous[end:]
        return previous[:start] + what + tail
    body = previous.rstrip()
    mark = body[-1] if body and body[-1] in "?.!" else ""
    body = body[:-1].rstrip() if mark else body
    return f"{body} {preposition} {what}{mark}"


def answer_points(answer: str) -> list[tuple[int, str]]:
    """The cited points of an answer in reading order: (marker number, the point's own words).

    Works on the composer's sentences («Byrådet vil X [1]. Byrådet vil også Y [2].»), its bullets
    («- X [3].») and a generated answer's sentences alike."""
    points: list[tuple[int, str]] = []
    start = 0
    for match in _MARKER.finditer(answer):
        segment = answer[start : match.start()]
        start = match.end()
        # A point starts on its own line, or after the end of the sentence before it.
        segment = segment.rsplit("\n", 1)[-1]
        segment = re.sub(r"^\s*[.!?»]*\s*", "", segment)
        # A lead before the point («Det nærmeste den sier: Byrådet vil …») is not part of it.
        if (lead := segment.rfind("Byrådet vil ")) > 0:
            segment = segment[lead:]
        elif (quote := segment.find("«")) > 0:
            segment = segment[quote:]
        segment = _POINT_LEAD.sub("", segment.strip()).strip().strip("«»").strip()
        if segment:
            points.append((int(match.group(1)), segment.rstrip(" ,;:")))
    return points


def referenced_point(follow_up: str, answer: str) -> str | None:
    """The words of the point a follow-up names («det siste punktet», «punkt 2», «[3]», «det
    første»), or None when it names none the answer has."""
    points = answer_points(answer)
    if not points:
        return None
    lowered = follow_up.lower()
    if _LAST.search(lowered):
        return points[-1][1]
    for word, n in _ORDINALS.items():
        if re.search(rf"\b{word}\b", lowered):
            return points[n - 1][1] if n <= len(points) else None
    number = _NUMBER.search(lowered)
    if number is not None:
        n = int(next(g for g in number.groups() if g))
        return next((text for marker, text in points if marker == n), None)
    # «mer om det» after an answer of one point.
    return points[0][1] if len({m for m, _ in points}) == 1 else None


def why_question(previous: str, answer: str) -> str:
    """«hvorfor?»: why the council wants the one point the answer gave, or why it wants what the
    previous question was about."""
    points = answer_points(answer)
    if len({m for m, _ in points}) == 1:
        first_sentence = re.split(r"(?<=[.!?])\s+", points[0][1])[0]
        return f"Hvorfor vil byrådet {first_sentence.rstrip('.!?')}?"
    span = topic_span(previous)
    topic = previous[span[0] : span[1]] if span else previous.rstrip("?")
    return f"Hvorfor vil byrådet satse på {topic}?"
