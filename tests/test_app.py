"""The Streamlit app, driven headless with `AppTest` and the deterministic fake embedder.

The app reads its settings with `load_settings()`, so every test points it at temporary folders
through ASSISTANT_* variables. `st.cache_resource` is process-wide: it is cleared around each
test, so a test's settings (e.g. a forced refusal) never leak into the next.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from assistant import core, follow_up
from assistant import ui_support as ui
from assistant.composing import REFUSAL
from assistant.corpus import load_corpus
from assistant.errors import IndexMissingError
from assistant.fakes import ScriptedChatModel
from assistant.feedback import FeedbackStore
from assistant.settings import FAKE_MODEL, PROJECT_ROOT, Settings
from assistant.types import Answer, Unit

APP = str(PROJECT_ROOT / "app.py")
TIMEOUT = 60
FASTLEGE = "Hva vil byrådet gjøre med fastlegeordningen?"
FRITIDSKORT = "Hvor mye er fritidskortet verdt?"
TAB_BROWSE = "Løfteoversikt"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fake index for the module: the first app run builds it, the others load it."""
    return tmp_path_factory.mktemp("app-index")


@pytest.fixture
def feedback_db(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, index_dir: Path, session_cache_dir: Path
) -> Iterator[Path]:
    db = tmp_path / "feedback" / "feedback.sqlite3"
    monkeypatch.setenv("ASSISTANT_EMBEDDING_MODEL", FAKE_MODEL)
    monkeypatch.setenv("ASSISTANT_INDEX_DIR", str(index_dir))
    monkeypatch.setenv("ASSISTANT_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(session_cache_dir))
    monkeypatch.setenv("ASSISTANT_FEEDBACK_DB", str(db))
    # The model loads behind the page: a load still running from the test before must end before
    # the next test's load starts (they share the module's index folder).
    ui.wait_for_loaders()
    st.cache_resource.clear()
    yield db
    ui.wait_for_loaders()
    st.cache_resource.clear()


@pytest.fixture
def app(feedback_db: Path) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    return at


def ask(at: AppTest, question: str) -> AppTest:
    at.chat_input(key="question").set_value(question).run()
    assert not at.exception, at.exception
    return at


def messages(at: AppTest) -> list[Any]:
    return list(at.chat_message)


def all_markdown(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def sources(message: Any) -> list[Any]:
    """The source (or related pledge) expanders of a message: not its «Om svaret»."""
    return [e for e in message.expander if e.label != ui.ABOUT_LABEL]


def about(message: Any) -> Any:
    return next(e for e in message.expander if e.label == ui.ABOUT_LABEL)


def unescape(markdown: str) -> str:
    """What a reader sees of escaped Markdown (backslash escapes resolved)."""
    return re.sub(r"\\(.)", r"\1", markdown.replace(ui.WORD_JOINER, ""))


def assert_quotes_its_citations(markdown: str, answer: Answer) -> None:
    """The answer shows a marker for each citation and the opening words of each cited unit
    verbatim: what matters, whatever lead the answer starts with."""
    assert answer.citations
    shown = " ".join(unescape(markdown).split())
    for citation in answer.citations:
        assert f":blue-badge[{citation.n}]" in markdown
        opening = " ".join(citation.text.split()[:6])
        assert opening in shown, (opening, shown[:300])


def pledges(at: AppTest) -> tuple[Unit, ...]:
    return tuple(load_corpus(PROJECT_ROOT / "corpus").pledges)


# --- first visit --------------------------------------------------------------------------------


def test_first_visit_offers_the_welcome_and_example_questions(app: AppTest) -> None:
    assert app.title[0].value == ui.APP_TITLE
    assert [t.label for t in app.tabs] == ["Spør erklæringen", TAB_BROWSE]
    assert ui.welcome_markdown() in all_markdown(app)
    labels = [b.label for b in app.button]
    assert all(q in labels for q in ui.EXAMPLE_QUESTIONS)
    # The welcome's own example questions are the buttons: the two never disagree.
    assert set(ui.welcome_parts()[1]) <= set(ui.EXAMPLE_QUESTIONS)
    assert ui.NEW_CHAT_LABEL not in labels
    assert not messages(app)
    assert not app.error
    # The page's only HTML is its own stylesheet.
    assert [h.proto.body for h in app.get("html")] == [ui.PAGE_STYLE]


def test_an_example_button_asks_its_question(app: AppTest) -> None:
    app.button(key="example-1").click().run()
    assert not app.exception
    user, assistant = messages(app)
    assert user.text[0].value == ui.EXAMPLE_QUESTIONS[1]
    assert assistant.expander  # sources


# --- the page before the model is loaded ---------------------------------------------------------


@pytest.fixture
def slow_load(feedback_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The model and index load only when the test sets the event: the page must not wait for it."""
    ready = threading.Event()
    original = ui.load_resources

    def held_back(settings: Settings, library: ui.Library | None = None) -> ui.Resources:
        ready.wait(TIMEOUT)
        return original(settings, library)

    monkeypatch.setattr(ui, "load_resources", held_back)
    yield ready
    ready.set()


def test_the_page_and_the_welcome_show_while_the_model_loads(slow_load: threading.Event) -> None:
    before = ui.assistant_loads()
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    assert ui.welcome_markdown() in all_markdown(at)
    assert at.chat_input  # usable: the question can be typed while the model loads
    assert any(ui.LOADING_NOTE in c.value for c in at.caption)
    assert ui.assistant_loads() == before  # nothing loaded yet
    # The pledge list needs only the corpus.
    open_browser(at)
    assert count_line(at).startswith("**285** av 285")


def test_the_first_question_is_answered_as_soon_as_the_model_is_ready(slow_load: threading.Event) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    threading.Timer(0.2, slow_load.set).start()  # the model becomes ready while the question waits
    ask(at, FASTLEGE)
    _user, assistant = messages(at)
    assert ":blue-badge[1]" in assistant.markdown[0].value
    assert not any(ui.LOADING_NOTE in c.value for c in at.caption)


def test_a_load_that_fails_behind_the_page_is_one_norwegian_sentence(
    feedback_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = threading.Event()

    def missing(settings: Settings, library: ui.Library | None = None) -> ui.Resources:
        failing.wait(TIMEOUT)
        raise IndexMissingError("no index")

    monkeypatch.setattr(ui, "load_resources", missing)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert at.chat_input and not at.error
    threading.Timer(0.2, failing.set).start()
    ask(at, FASTLEGE)
    _user, assistant = messages(at)
    assert [e.value for e in assistant.error] == [ui.user_message(IndexMissingError("x"))]
    at.run()  # the next visit says so at once, instead of offering a chat that cannot answer
    assert [e.value for e in at.error] == [ui.user_message(IndexMissingError("x"))]
    assert not at.chat_input


# --- asking -------------------------------------------------------------------------------------


def test_a_question_gets_an_answer_with_cited_pledges(app: AppTest) -> None:
    ask(app, FASTLEGE)
    user, assistant = messages(app)
    assert user.name == "user" and assistant.name == "assistant"
    assert user.text[0].value == FASTLEGE
    answer = assistant.markdown[0].value
    turn = app.session_state["turns"][0]
    assert "Fastlegeordningen" in answer
    assert ":blue-badge[1]" in answer  # the [1] marker, linked visibly to source 1
    assert_quotes_its_citations(answer, turn.answer)
    assert all(c.chunk.unit_id.startswith("helse-og-eldre/fastlegeordningen/") for c in turn.answer.citations)
    labels = [e.label for e in sources(assistant)]
    # One line per source until opened: the nearest heading and the opening words.
    assert labels and labels[0].startswith(":blue-badge[1] **Fastlegeordningen** — ")
    # Opening a source shows the pledge highlighted among its neighbours, with its whole place.
    pledge = next(e for e in sources(assistant) if "ID: `helse-og-eldre/fastlegeordningen/1`" in e.caption[0].value)
    context = pledge.markdown[0].value
    assert "orange-background" in context and "sitert" in context
    assert "Helse og eldre › Fastlegeordningen" in pledge.caption[0].value
    # A cited statement (one sentence of a passage) opens as its passage with that sentence highlighted.
    statement_id = "helse-og-eldre/fastlegeordningen/p1/s4"
    assert statement_id in [c.chunk.unit_id for c in turn.answer.citations]
    opened = next(e for e in sources(assistant) if f"ID: `{statement_id}`" in e.caption[0].value)
    [marked] = re.findall(r":orange-background\[\*\*(.+?)\*\*\]", opened.markdown[0].value)
    assert unescape(marked).startswith("Byrådet vil jobbe for at alle i Trondheim har sin egen fastlege")
    assert "mangel på fastleger" in unescape(opened.markdown[0].value)  # the rest of the passage around it
    # The document's name and period stay visible; the technical details are in «Om svaret».
    assert ui.document_line("Leangen-erklæringen", "2024–2027") in [c.value for c in assistant.caption]
    assert not any("versjon" in c.value for c in assistant.caption if c not in about(assistant).caption)
    details = " ".join(c.value for c in about(assistant).caption)
    assert "extractive" in details and "Korpusversjon" in details and "søk" in details and "ms" in details
    assert len(assistant.get("feedback")) == 1
    assert ui.NEW_CHAT_LABEL in [b.label for b in app.button]


def test_a_heading_answer_links_to_the_heading_in_the_pledge_browser(app: AppTest) -> None:
    ask(app, FASTLEGE)
    turn = app.session_state["turns"][0]
    assert turn.answer.decision == "heading"
    app.button(key=f"browse-{turn.id}").click().run()
    assert not app.exception
    assert app.session_state["side"] == TAB_BROWSE
    assert app.selectbox(key="overskrift").value == "Fastlegeordningen"
    assert count_line(app).startswith("**2** av 285")


def test_an_answer_link_replaces_filters_left_in_the_browser(app: AppTest) -> None:
    open_browser(app)
    app.selectbox(key="kapittel").set_value("Byutvikling").run()
    app.selectbox(key="tema").set_value("Sykkel").run()
    app.session_state["side"] = "Spør erklæringen"
    app.run()
    ask(app, FASTLEGE)
    turn = app.session_state["turns"][0]
    app.button(key=f"browse-{turn.id}").click().run()
    assert not app.exception
    assert app.selectbox(key="kapittel").value == "Helse og eldre"
    assert app.selectbox(key="tema").value == ui.ALL_THEMES
    assert count_line(app).startswith("**2** av 285")
    expected = {"side": TAB_BROWSE, "kapittel": "Helse og eldre", "overskrift": "Fastlegeordningen"}
    assert dict(app.query_params) == expected


@pytest.mark.parametrize("small_talk", ["hei", "takk", "hva kan du?"])
def test_small_talk_gets_the_welcome_of_the_first_screen(app: AppTest, small_talk: str) -> None:
    ask(app, small_talk)
    _user, assistant = messages(app)
    assert app.session_state["turns"][0].answer.decision == "chat"
    assert [m.value for m in assistant.markdown] == [ui.welcome_markdown()]
    assert sorted(b.label for b in assistant.button) == sorted(ui.EXAMPLE_QUESTIONS)
    assert not assistant.expander  # no sources, no related pledges, no «Om svaret»
    assert not assistant.get("feedback")
    assert not assistant.info
    # After a question too: small talk is not read as a follow-up of it.
    ask(app, FASTLEGE)
    ask(app, small_talk)
    assert app.session_state["turns"][2].answer.decision == "chat"
    assert [m.value for m in messages(app)[5].markdown] == [ui.welcome_markdown()]
    assert [c.value for c in messages(app)[5].caption] == [f"{ui.EXAMPLES_INTRO}:"]  # no «Tolket som: …»


def test_small_talk_examples_ask_their_question(app: AppTest) -> None:
    ask(app, "hei")
    turn = app.session_state["turns"][0]
    app.button(key=f"example-{turn.id}-1").click().run()
    assert not app.exception
    assert [m.text[0].value for m in messages(app)[::2]] == ["hei", ui.EXAMPLE_QUESTIONS[1]]


def test_an_english_question_gets_an_english_lead_above_the_norwegian_answer(app: AppTest) -> None:
    ask(app, "What will the council do about the regular GP scheme?")
    _user, assistant = messages(app)
    first = assistant.caption[0].value
    assert first.startswith(":material/translate:")
    assert ui.escape_markdown(ui.ENGLISH_LEAD) in first or ui.escape_markdown(ui.ENGLISH_LEAD_REFUSED) in first
    ask(app, FASTLEGE)
    assert not any("translate" in c.value for c in messages(app)[3].caption)


def test_follow_up_questions_pass_the_history_along(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, list[tuple[str, str]]]] = []
    original = ui.ask_with_history

    def spy(assistant: ui.Asks, question: str, history: Sequence[tuple[str, str]]) -> Answer:
        calls.append((question, list(history)))
        return original(assistant, question, history)

    monkeypatch.setattr(ui, "ask_with_history", spy)
    ask(app, FASTLEGE)
    first_answer = messages(app)[1].markdown[0].value
    ask(app, "Hva med kvinnehelse?")
    assert len(messages(app)) == 4
    assert calls[0] == (FASTLEGE, [])
    question, history = calls[1]
    assert question == "Hva med kvinnehelse?"
    assert len(history) == 1 and history[0][0] == FASTLEGE
    assert history[0][1] == app.session_state["turns"][0].answer.text
    # The first answer is still shown (not re-asked) after the follow-up.
    assert messages(app)[1].markdown[0].value == first_answer
    assert len(calls) == 2
    # The follow-up was searched as the first question about the new topic, and the app says so.
    reply = messages(app)[3]
    assert any(c.value == "Tolket som: «Hva vil byrådet gjøre med kvinnehelse?»" for c in reply.caption)


def test_follow_ups_keep_the_thread_of_a_list(app: AppTest) -> None:
    ask(app, "Alle løfter om sykkel")
    ask(app, "og hva med kollektiv?")
    turns = app.session_state["turns"]
    assert turns[1].answer.standalone_question == "Alle løfter om kollektiv"
    assert turns[1].answer.decision in ("theme", "heading")  # a list about kollektiv, not one pledge
    assert len(turns[1].answer.citations) > 1
    # «mer om det siste punktet» is the last point of the last answer, in its own words.
    ask(app, "mer om det siste punktet")
    last_point = follow_up.answer_points(turns[1].answer.text)[-1][1]
    assert app.session_state["turns"][2].answer.standalone_question == last_point
    # A question of its own starts a new thread; «og for studenter?» narrows it.
    ask(app, "Hva vil byrådet gjøre med kollektivtrafikken?")
    assert app.session_state["turns"][3].answer.standalone_question == "Hva vil byrådet gjøre med kollektivtrafikken?"
    ask(app, "og for studenter?")
    narrowed = app.session_state["turns"][4].answer.standalone_question
    assert narrowed == "Hva vil byrådet gjøre med kollektivtrafikken for studenter?"
    # «hvorfor?» asks why of what the last answer gave (its one point, or the narrowed topic).
    ask(app, "hvorfor?")
    why = app.session_state["turns"][5].answer.standalone_question
    previous = app.session_state["turns"][4].answer
    assert why.startswith("Hvorfor vil byrådet ") and why != "hvorfor?"
    assert why == follow_up.why_question(narrowed, previous.text)
    points = follow_up.answer_points(previous.text)
    if len({n for n, _ in points}) == 1:
        assert points[0][1].split(".")[0].rstrip() in why
    else:
        assert "kollektivtrafikken for studenter" in why
    # Each reading is shown, so the resident sees what was searched.
    assert any(c.value == f"Tolket som: «{ui.escape_markdown(why)}»" for c in messages(app)[11].caption)


def test_a_broad_answer_is_grouped_under_collapsible_chapters_with_counts(app: AppTest) -> None:
    ask(app, "Hva gjør byrådet for eldre?")
    turn = app.session_state["turns"][0]
    assert turn.answer.decision == "theme" and len(turn.answer.citations) >= ui.GROUP_FROM
    _user, assistant = messages(app)
    groups = [e for e in assistant.expander if e.label != ui.ABOUT_LABEL]
    chapters = list(dict.fromkeys(c.chunk.chapter for c in turn.answer.citations))
    assert len(groups) == len(chapters) > 1
    assert all(g.label.startswith(f"**{ui.escape_markdown(ch)}** ") for g, ch in zip(groups, chapters, strict=True))
    counts = [int(re.search(r"(\d+) (?:løfte|punkt)", g.label).group(1)) for g in groups]  # type: ignore[union-attr]
    assert sum(counts) == len(turn.answer.citations)
    shown = [i for g in groups for i in re.findall(r"`([^`]+)`", g.caption[-1].value)]
    assert sorted(shown) == sorted(c.chunk.unit_id for c in turn.answer.citations)
    # A theme answer links to the theme in the pledge browser.
    app.button(key=f"browse-{turn.id}").click().run()
    assert app.selectbox(key="tema").value == "Eldre"
    assert count_line(app).startswith("**16** av 285")
    assert dict(app.query_params) == {"side": TAB_BROWSE, "tema": "Eldre"}


def test_a_chapter_answer_links_to_the_chapter_in_the_pledge_browser(app: AppTest) -> None:
    ask(app, "Oppsummer kapittelet om oppvekst og utdanning")
    turn = app.session_state["turns"][0]
    assert turn.answer.decision == "chapter"
    _user, assistant = messages(app)
    # One chapter: its headings are the groups, each with the count the summary gives.
    groups = [e for e in assistant.expander if e.label != ui.ABOUT_LABEL]
    assert len(groups) > 1 and all("løfte" in g.label for g in groups)
    app.button(key=f"browse-{turn.id}").click().run()
    assert not app.exception
    assert app.selectbox(key="kapittel").value == "Oppvekst og utdanning"
    assert count_line(app).startswith(f"**{sum(1 for p in pledges(app) if p.chapter == 'Oppvekst og utdanning')}**")
    # The filtered list is in the page's URL, to share or bookmark.
    assert dict(app.query_params) == {"side": TAB_BROWSE, "kapittel": "Oppvekst og utdanning"}


# --- a generative backend (a scripted model in place of the endpoint) ---------------------------


@pytest.fixture
def scripted_model(feedback_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str | BaseException]]:
    """ASSISTANT_BACKEND=openai, with the chat model replaced by one that says the scripted replies."""
    replies: list[str | BaseException] = []
    monkeypatch.setenv("ASSISTANT_BACKEND", "openai")
    monkeypatch.setenv("ASSISTANT_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("ASSISTANT_OPENAI_MODEL", "scripted")
    monkeypatch.setattr(core, "make_chat_model", lambda settings: ScriptedChatModel(replies=replies))
    yield replies


def test_a_generated_answer_is_streamed_then_shown_checked(scripted_model: list[str | BaseException]) -> None:
    scripted_model.append("Byrådet vil innføre et fritidskort på 2000 kroner [1]. Og det er bra [42].")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    ask(at, FRITIDSKORT)
    _user, assistant = messages(at)
    answer = next(m.value for m in assistant.markdown if "fritidskort" in m.value)
    assert ":blue-badge[1]" in answer
    assert "42" not in answer  # the citation guard removed it
    assert len(sources(assistant)) == 1
    details = " ".join(c.value for c in about(assistant).caption)
    assert "openai" in details and "språkmodell" in details and "modell" in details
    # On the next rerun the checked answer is shown from the history, the same way.
    at.run()
    assert any("fritidskort" in m.value for m in messages(at)[1].markdown)


def test_a_failing_model_falls_back_with_a_note(scripted_model: list[str | BaseException]) -> None:
    scripted_model.append(ConnectionError("endpoint down"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    ask(at, FASTLEGE)
    _user, assistant = messages(at)
    assert any("Språkmodellen svarte ikke" in c.value for c in assistant.caption)
    assert ":blue-badge[1]" in assistant.markdown[0].value  # the extractive answer
    assert sources(assistant)
    assert not at.error


def test_a_refusal_is_shown_as_such_with_related_pledges(feedback_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_REFUSAL_THRESHOLD", "1000")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    ask(at, FRITIDSKORT)
    _user, assistant = messages(at)
    assert [i.value for i in assistant.info] == [ui.escape_markdown(REFUSAL)]
    assert any(ui.RELATED_HEADING in m.value for m in assistant.markdown)
    related = sources(assistant)
    assert 1 <= len(related) <= 3
    assert not any(e.label.startswith(":blue-badge") for e in related)  # related, not cited
    assert not any(":blue-badge" in m.value for m in assistant.markdown)


def test_new_conversation_clears_the_history(app: AppTest) -> None:
    ask(app, FASTLEGE)
    ask(app, FRITIDSKORT)
    assert len(messages(app)) == 4
    app.button(key="new-chat").click().run()
    assert not app.exception
    assert not messages(app)
    assert app.session_state["turns"] == []
    assert ui.EXAMPLE_QUESTIONS[0] in [b.label for b in app.button]


@pytest.mark.parametrize(
    ("question", "expected"),
    [("   ", "tomt"), ("x" * 2001, "for langt"), ("?!?! …", "ingen ord")],
)
def test_invalid_questions_show_the_message(app: AppTest, question: str, expected: str) -> None:
    ask(app, question)
    _user, assistant = messages(app)
    assert len(assistant.warning) == 1
    assert expected in assistant.warning[0].value
    assert not assistant.get("feedback")


def test_markup_in_a_question_is_shown_literally(app: AppTest) -> None:
    question = "<b>fastlege</b> **fastlege** [lenke](http://x) :red[rød]"
    ask(app, question)
    user, _assistant = messages(app)
    assert [t.value for t in user.text] == [question]  # st.text: never parsed as Markdown or HTML
    assert not user.markdown
    for value in all_markdown(app):
        assert "<b>" not in value and "**fastlege**" not in value and ":red[" not in value
    assert [h.proto.body for h in app.get("html")] == [ui.PAGE_STYLE]  # only the page's own stylesheet


def test_loading_errors_are_one_norwegian_sentence(feedback_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_BACKEND", "orakel")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Innstillingene er ugyldige – sjekk ASSISTANT_*-variablene og .env-filen."]
    assert not at.chat_input


def test_one_assistant_is_loaded_per_process(feedback_db: Path) -> None:
    before = ui.assistant_loads()
    first = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    second = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    ask(first, FASTLEGE)
    ask(second, FRITIDSKORT)
    assert ui.assistant_loads() == before + 1


# --- feedback ------------------------------------------------------------------------------------


def test_feedback_is_stored_with_question_answer_and_citations(app: AppTest, feedback_db: Path) -> None:
    ask(app, FASTLEGE)
    app.feedback(key=f"fb-{app.session_state['turns'][0].id}").set_value(1).run()
    assert not app.exception
    store = FeedbackStore(feedback_db)
    [record] = store.all()
    assert record.rating == 1
    assert record.question == FASTLEGE
    assert record.answer == app.session_state["turns"][0].answer.text
    assert record.citation_ids and all(i.startswith("helse-og-eldre/fastlegeordningen/") for i in record.citation_ids)
    assert record.backend == "extractive" and len(record.corpus_version) == 8
    assert record.created_at

    # An optional comment is added to the same row.
    turn_id = app.session_state["turns"][0].id
    app.text_input(key=f"fbc-{turn_id}").set_value("Tydelig svar, takk!")
    app.button[[b.label for b in app.button].index("Send kommentar")].click().run()
    assert not app.exception
    [record] = store.all()
    assert record.comment == "Tydelig svar, takk!"
    assert "Takk for tilbakemeldingen!" in [c.value for c in app.caption]

    # Changing the thumb updates the row; taking it back removes it.
    app.feedback(key=f"fb-{turn_id}").set_value(0).run()
    assert [r.rating for r in store.all()] == [0]
    app.feedback(key=f"fb-{turn_id}").set_value(None).run()
    assert store.all() == []


def test_feedback_on_a_refusal_is_stored_without_citations(feedback_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_REFUSAL_THRESHOLD", "1000")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    ask(at, FRITIDSKORT)
    at.feedback(key=f"fb-{at.session_state['turns'][0].id}").set_value(0).run()
    [record] = FeedbackStore(feedback_db).all()
    assert record.refused and record.rating == 0 and record.citation_ids == ()
    assert record.answer == REFUSAL


# --- the pledge browser --------------------------------------------------------------------------


def open_browser(at: AppTest) -> AppTest:
    at.session_state["side"] = TAB_BROWSE
    at.run()
    assert not at.exception
    return at


def shown_ids(at: AppTest) -> list[str]:
    return [c.value.removeprefix("ID: `").removesuffix("`") for c in at.caption if c.value.startswith("ID: `")]


def count_line(at: AppTest) -> str:
    return next(m.value for m in at.markdown if " av 285 løfter" in m.value)


def test_the_pledge_browser_lists_every_pledge(app: AppTest) -> None:
    open_browser(app)
    assert not app.chat_input  # the chat input belongs to the chat tab
    assert count_line(app).startswith("**285** av 285")
    ids = shown_ids(app)
    assert len(ids) == 20  # one page
    assert ids[0] == "finans-og-organisasjon/trygg-okonomisk-styring-og-baerekraftig/1"
    codes = [c.value for c in app.code]
    assert (
        codes[0]
        == "Leangen-erklæringen, Finans og organisasjon › Trygg økonomisk styring og bærekraftig kommuneøkonomi"
    )
    assert [b.label for b in app.download_button] == ["CSV", "Markdown"]
    assert len(app.get("pagination")) == 1
    # The search is on the first screen; the filters wait, closed, in an expander (a phone's
    # first screen would otherwise be all filters).
    [filters] = [e for e in app.expander if e.label.startswith("Filtrer")]
    assert [s.key for s in filters.selectbox] == ["kapittel", "overskrift", "tema"]
    assert not filters.proto.expanded
    assert not list(filters.text_input) and app.text_input(key="sok").value == ""


def test_the_pledge_browser_filters_by_chapter_and_heading(app: AppTest) -> None:
    open_browser(app)
    app.selectbox(key="kapittel").set_value("Helse og eldre").run()
    assert count_line(app).startswith("**35** av 285")
    options = app.selectbox(key="overskrift").options
    assert "Fastlegeordningen" in options and "Samferdsel" not in options
    app.selectbox(key="overskrift").set_value("Fastlegeordningen").run()
    assert count_line(app).startswith("**2** av 285")
    assert shown_ids(app) == ["helse-og-eldre/fastlegeordningen/1", "helse-og-eldre/fastlegeordningen/2"]
    assert set(c.value for c in app.code) == {"Leangen-erklæringen, Helse og eldre › Fastlegeordningen"}
    assert any("overskriften «Fastlegeordningen»" in c.value for c in app.caption)  # the filters in use

    # Sub-headings are headings of their own: «Skole» under the school chapter's section.
    app.selectbox(key="kapittel").set_value("Oppvekst og utdanning").run()
    assert app.selectbox(key="overskrift").value == ui.ALL  # changing the chapter resets the heading
    app.selectbox(key="overskrift").set_value("Skole").run()
    assert shown_ids(app) and all("/skole/" in i for i in shown_ids(app))


def test_the_pledge_browser_filters_by_theme(app: AppTest) -> None:
    open_browser(app)
    themes = app.selectbox(key="tema")
    assert themes.options[0] == ui.ALL_THEMES and "Eldre" in themes.options and "Sykkel" in themes.options
    themes.set_value("Sykkel").run()
    assert count_line(app).startswith("**6** av 285")
    assert any("temaet «Sykkel»" in c.value for c in app.caption)
    assert ui.selection_description(ui.ALL, ui.ALL, "", "Sykkel") == "Utvalg: tema «Sykkel»."


def test_searching_within_a_filter_shows_only_relevant_hits_ranked(app: AppTest) -> None:
    open_browser(app)
    app.selectbox(key="kapittel").set_value("Miljø, næring og samferdsel").run()
    app.text_input(key="sok").set_value("sykkel").run()
    assert not app.exception
    assert "mest relevante først" in count_line(app)
    texts = {u.id: u.text.lower() for u in pledges(app)}
    ids = shown_ids(app)
    assert ids and all(re.search(r"sykk|sykl", texts[i]) for i in ids)  # each mentions cycling
    # The exports hold exactly what is shown.
    selection = ui.apply_filters(
        pledges(app), ui.BrowserFilters("Miljø, næring og samferdsel", query="sykkel"), (), ids
    )
    assert [u.id for u in selection] == ids
    assert app.session_state["sok"] == "sykkel"


def test_search_in_the_whole_platform_ranks_the_best_match_first(app: AppTest) -> None:
    open_browser(app)
    app.text_input(key="sok").set_value("fastlegekontor").run()
    assert not app.exception
    ids = shown_ids(app)
    assert ids and ids[0] == "helse-og-eldre/fastlegeordningen/1"
    assert "mest relevante først" in count_line(app)
    app.selectbox(key="kapittel").set_value("Byutvikling").run()
    assert not any(i.startswith("helse-og-eldre/") for i in shown_ids(app))


def test_a_filter_that_hides_every_hit_says_so_and_can_be_cleared(app: AppTest) -> None:
    open_browser(app)
    app.selectbox(key="kapittel").set_value("Helse og eldre").run()
    app.text_input(key="sok").set_value("sykkel").run()
    assert count_line(app).startswith("**0** av 285")
    [warning] = app.warning
    assert "«sykkel»" in warning.value and "kapittelet «Helse og eldre»" in warning.value
    app.button(key="clear-filters").click().run()
    assert not app.exception
    assert app.selectbox(key="kapittel").value == ui.ALL
    assert app.text_input(key="sok").value == "sykkel"  # the search stays; only the filter goes
    assert not count_line(app).startswith("**0**")


def test_a_theme_outside_the_chapter_says_which_filter_hides_it(app: AppTest) -> None:
    open_browser(app)
    app.selectbox(key="kapittel").set_value("Byutvikling").run()
    app.selectbox(key="tema").set_value("Eldre").run()
    [warning] = app.warning
    assert "kapittelet «Byutvikling»" in warning.value or "temaet «Eldre»" in warning.value
    app.button(key="clear-filters").click().run()
    assert not count_line(app).startswith("**0**")


def test_the_url_reproduces_a_filtered_view(feedback_db: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["side"] = TAB_BROWSE
    at.query_params["kapittel"] = "Helse og eldre"
    at.query_params["overskrift"] = "Fastlegeordningen"
    at.run()
    assert not at.exception
    assert at.selectbox(key="kapittel").value == "Helse og eldre"
    assert count_line(at).startswith("**2** av 285")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["side"] = TAB_BROWSE
    at.query_params["tema"] = "Sykkel"
    at.query_params["sok"] = "sykkelparkering"
    at.run()
    assert not at.exception
    assert at.text_input(key="sok").value == "sykkelparkering"
    assert shown_ids(at)[0] == "miljo-naering-og-samferdsel/baerekraftig-verdiskaping/samferdsel/5"


def test_a_search_without_word_matches_shows_the_nearest(app: AppTest) -> None:
    open_browser(app)
    app.text_input(key="sok").set_value("qwxzy").run()
    assert not app.exception
    assert any("nærmeste" in i.value for i in app.info)
    assert len(shown_ids(app)) == ui.SEARCH_FALLBACK


def test_an_invalid_search_shows_the_message(app: AppTest) -> None:
    open_browser(app)
    app.text_input(key="sok").set_value("?!?!").run()
    assert not app.exception
    assert any("ingen ord" in w.value for w in app.warning)
    assert count_line(app).startswith("**285**")


def test_switching_back_to_the_chat_keeps_the_conversation(app: AppTest) -> None:
    ask(app, FASTLEGE)
    open_browser(app)
    assert not messages(app)
    app.session_state["side"] = "Spør erklæringen"
    app.run()
    assert len(messages(app)) == 2
    assert app.chat_input


# --- the local backend (a scripted model in place of llama.cpp) ------------------------------------


@pytest.fixture
def local_backend(feedback_db: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """ASSISTANT_BACKEND=local with a model file that passes the cheap checks (it is never loaded)."""
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00")
    monkeypatch.setenv("ASSISTANT_BACKEND", "local")
    monkeypatch.setenv("ASSISTANT_LOCAL_MODEL", str(gguf))
    return gguf


def test_the_local_backend_says_a_local_model_writes_and_falls_back_with_a_note(
    local_backend: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replies: list[str | BaseException] = [TimeoutError("Request timed out.")]
    monkeypatch.setattr(core, "make_chat_model", lambda settings: ScriptedChatModel(replies=replies))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert any("lokal språkmodell" in c.value for c in at.sidebar.caption)
    ask(at, FASTLEGE)
    _user, assistant = messages(at)
    assert any("Språkmodellen svarte ikke" in c.value and "TimeoutError" in c.value for c in assistant.caption)
    # The extractive answer: the cited pledges' own words, with their markers.
    assert_quotes_its_citations(assistant.markdown[0].value, at.session_state["turns"][0].answer)
    assert at.session_state["turns"][0].answer.backend == "extractive"
    assert not at.error


def test_a_missing_local_model_says_how_to_install_it(local_backend: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_LOCAL_MODEL", "qwen2.5-coder-0.5b")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert [e.value for e in at.error] == [
        "Den lokale språkmodellen mangler eller er ufullstendig – installer den med "
        "«python -m assistant models install qwen2.5-coder-0.5b» og last siden på nytt."
    ]
    assert not at.exception


def test_the_writing_note_names_the_local_model() -> None:
    assert ui.writing_note("local").startswith("En lokal språkmodell skriver svaret …")
    assert ui.writing_note("openai") == ui.WRITING_NOTE


# --- the real model over the project's index (integration) ---------------------------------------


@pytest.fixture(scope="module")
def real_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The app on its defaults (the real embedding model, the project's index, read only); the
    feedback goes to a temporary file. Fails with what to run when the index is missing."""
    if not (PROJECT_ROOT / "index" / "CURRENT").exists():
        pytest.fail("no built index in ./index: run `make index` (`make test` does so before the tests)")
    with pytest.MonkeyPatch.context() as patcher:
        patcher.setenv("ASSISTANT_AUTO_BUILD_INDEX", "false")
        patcher.setenv("ASSISTANT_FEEDBACK_DB", str(tmp_path_factory.mktemp("real-app") / "feedback.sqlite3"))
        ui.wait_for_loaders()
        st.cache_resource.clear()
        yield
        ui.wait_for_loaders()
        st.cache_resource.clear()


@pytest.mark.integration
def test_a_nynorsk_question_is_answered_with_the_pledge_it_asks_about(real_env: None) -> None:
    """The issue's self-contradicting refusal: the pledge that answers it was listed as related
    pledge #1 under the refusal. Now it is the answer, and the bokmål wording gets the same."""
    at = AppTest.from_file(APP, default_timeout=120).run()
    basseng = "kultur-idrett-og-friluftsliv/kultur-og-idrettsbyen-trondheim/idrett-og-friluftsliv/2"
    for n, question in enumerate(
        ("Kjem det nytt symjebasseng på austsida av byen?", "Blir det nytt svømmebasseng på østsiden av byen?")
    ):
        ask(at, question)
        answer = at.session_state["turns"][n].answer
        assert not answer.refused, answer.text
        assert basseng in [c.chunk.unit_id for c in answer.citations]
        reply = messages(at)[2 * n + 1]
        assert not reply.info  # no refusal box, no related list under it
        assert "bydelsbasseng øst på Moholt" in unescape(reply.markdown[0].value)
        assert_quotes_its_citations(reply.markdown[0].value, answer)
    # An English question: an English line says why the answer is in Norwegian, then the answer.
    ask(at, "What will the council do about the regular GP scheme?")
    english = at.session_state["turns"][2].answer
    reply = messages(at)[5]
    assert not english.refused
    assert any(c.chunk.unit_id.startswith("helse-og-eldre/fastlegeordningen/") for c in english.citations)
    assert reply.caption[0].value == f":material/translate: {ui.escape_markdown(ui.ENGLISH_LEAD)}"
    assert "quotes its own words" in ui.ENGLISH_LEAD
