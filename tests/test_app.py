"""The Streamlit app, driven headless with `AppTest` and the deterministic fake embedder.

The app reads its settings with `load_settings()`, so every test points it at temporary folders
through ASSISTANT_* variables. `st.cache_resource` is process-wide: it is cleared around each
test, so a test's settings (e.g. a forced refusal) never leak into the next.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from assistant import core
from assistant import ui_support as ui
from assistant.composing import REFUSAL
from assistant.fakes import ScriptedChatModel
from assistant.feedback import FeedbackStore
from assistant.settings import FAKE_MODEL, PROJECT_ROOT
from assistant.types import Answer

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
    st.cache_resource.clear()
    yield db
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


# --- first visit --------------------------------------------------------------------------------


def test_first_visit_offers_example_questions(app: AppTest) -> None:
    assert app.title[0].value == ui.APP_TITLE
    assert [t.label for t in app.tabs] == ["Spør erklæringen", TAB_BROWSE]
    labels = [b.label for b in app.button]
    assert all(q in labels for q in ui.EXAMPLE_QUESTIONS)
    assert ui.NEW_CHAT_LABEL not in labels
    assert not messages(app)
    assert not app.error


def test_an_example_button_asks_its_question(app: AppTest) -> None:
    app.button(key="example-0").click().run()
    assert not app.exception
    user, assistant = messages(app)
    assert user.text[0].value == ui.EXAMPLE_QUESTIONS[0]
    assert assistant.expander  # sources


# --- asking -------------------------------------------------------------------------------------


def test_a_question_gets_an_answer_with_cited_pledges(app: AppTest) -> None:
    ask(app, FASTLEGE)
    user, assistant = messages(app)
    assert user.name == "user" and assistant.name == "assistant"
    assert user.text[0].value == FASTLEGE
    answer = assistant.markdown[0].value
    assert answer.startswith("Byrådet vil")
    assert ":blue-badge[1]" in answer  # the [1] marker, linked visibly to source 1
    labels = [e.label for e in assistant.expander]
    assert labels and labels[0].startswith(":blue-badge[1] **Helse og eldre › Fastlegeordningen**")
    # Opening a source shows the pledge highlighted among its neighbours.
    context = assistant.expander[0].markdown[0].value
    assert "orange-background" in context and "sitert" in context
    assert "ID: `helse-og-eldre/fastlegeordningen/" in assistant.expander[0].caption[0].value
    # The transparency line: document, corpus version, backend, timings.
    transparency = [c.value for c in assistant.caption if "versjon" in c.value]
    assert transparency
    caption = transparency[0]
    assert "Leangen" in caption and "extractive" in caption and "søk" in caption and "ms" in caption
    assert len(assistant.get("feedback")) == 1
    assert ui.NEW_CHAT_LABEL in [b.label for b in app.button]


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
    assert history[0][1].startswith("Byrådet vil")
    # The first answer is still shown (not re-asked) after the follow-up.
    assert messages(app)[1].markdown[0].value == first_answer
    assert len(calls) == 2
    # The short follow-up was searched together with the question before it, and the app says so.
    follow_up = messages(app)[3]
    assert any(c.value.startswith("Tolket som: «Hva vil byrådet") for c in follow_up.caption)


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
    assert len(assistant.expander) == 1
    transparency = next(c.value for c in assistant.caption if "versjon" in c.value)
    assert "openai" in transparency and "modell" in transparency
    # On the next rerun the checked answer is shown from the history, the same way.
    at.run()
    assert any("fritidskort" in m.value for m in messages(at)[1].markdown)


def test_a_failing_model_falls_back_with_a_note(scripted_model: list[str | BaseException]) -> None:
    scripted_model.append(ConnectionError("endpoint down"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    ask(at, FASTLEGE)
    _user, assistant = messages(at)
    assert any("Språkmodellen svarte ikke" in c.value for c in assistant.caption)
    assert assistant.markdown[0].value.startswith("Byrådet vil")  # the extractive answer
    assert assistant.expander
    assert not at.error


def test_a_refusal_is_shown_as_such_with_related_pledges(feedback_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_REFUSAL_THRESHOLD", "1000")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    ask(at, FRITIDSKORT)
    _user, assistant = messages(at)
    assert [i.value for i in assistant.info] == [ui.escape_markdown(REFUSAL)]
    assert any(ui.RELATED_HEADING in m.value for m in assistant.markdown)
    related = assistant.expander
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
    assert not app.get("html")


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


def test_the_pledge_browser_filters_by_chapter_section_and_search(app: AppTest) -> None:
    open_browser(app)
    app.selectbox(key="filter_chapter").set_value("Helse og eldre").run()
    assert count_line(app).startswith("**35** av 285")
    assert "Fastlegeordningen" in app.selectbox(key="filter_section").options
    assert "Samferdsel" not in app.selectbox(key="filter_section").options
    app.selectbox(key="filter_section").set_value("Fastlegeordningen").run()
    assert count_line(app).startswith("**2** av 285")
    assert shown_ids(app) == ["helse-og-eldre/fastlegeordningen/1", "helse-og-eldre/fastlegeordningen/2"]
    assert set(c.value for c in app.code) == {"Leangen-erklæringen, Helse og eldre › Fastlegeordningen"}

    # Changing the chapter resets the section filter.
    app.selectbox(key="filter_chapter").set_value("Kultur, idrett og friluftsliv").run()
    assert app.selectbox(key="filter_section").value == ui.ALL

    # Text search uses the hybrid search; the chapter filter still applies.
    app.selectbox(key="filter_chapter").set_value(ui.ALL).run()
    app.text_input(key="filter_query").set_value("fastlegekontor").run()
    assert not app.exception
    ids = shown_ids(app)
    assert ids and ids[0] == "helse-og-eldre/fastlegeordningen/1"
    assert "mest relevante først" in count_line(app)
    app.selectbox(key="filter_chapter").set_value("Byutvikling").run()
    assert not any(i.startswith("helse-og-eldre/") for i in shown_ids(app))


def test_a_search_without_word_matches_shows_the_nearest(app: AppTest) -> None:
    open_browser(app)
    app.text_input(key="filter_query").set_value("qwxzy").run()
    assert not app.exception
    assert any("nærmeste" in i.value for i in app.info)
    assert len(shown_ids(app)) == ui.SEARCH_FALLBACK


def test_an_invalid_search_shows_the_message(app: AppTest) -> None:
    open_browser(app)
    app.text_input(key="filter_query").set_value("?!?!").run()
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
    assert assistant.markdown[0].value.startswith("Byrådet vil")  # the extractive answer
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
