"""Leangen-assistenten in the browser: `streamlit run app.py`.

A thin Norwegian UI over the `assistant` package: a chat with cited answers, a browser of every
pledge for aides, and feedback on answers. The logic lives in `assistant/ui_support.py` and
`assistant/feedback.py`; this file only lays out widgets. One assistant (model and index) is
loaded per process and shared by every browser session.
"""

from __future__ import annotations

import hashlib
import logging
import uuid

import streamlit as st

from assistant import ui_support as ui
from assistant.errors import AssistantError, InvalidQuestionError
from assistant.feedback import FeedbackStore
from assistant.logs import configure_logging
from assistant.settings import Settings, load_settings

log = logging.getLogger("leangen.app")

PLEDGES_PER_PAGE = 20
TAB_CHAT = "Spør erklæringen"
TAB_BROWSE = "Løfteoversikt"

st.set_page_config(page_title=ui.APP_TITLE, page_icon="🏛️", layout="centered")
# No developer toolbar ("Deploy") and never a traceback in the browser, whatever happens.
st.set_option("client.toolbarMode", "minimal")
st.set_option("client.showErrorDetails", "none")


@st.cache_resource(show_spinner=False)
def get_settings() -> Settings:
    """The settings, read once per process; JSON log lines (one per question) go to stderr."""
    settings = load_settings()
    configure_logging(settings.log_level)
    return settings


@st.cache_resource(show_spinner="Laster språkmodell og søkeindeks …")
def get_resources() -> ui.Resources:
    """One assistant per process, built from the settings and warmed up."""
    return ui.load_resources(get_settings())


@st.cache_resource(show_spinner=False)
def get_feedback_store() -> FeedbackStore:
    return FeedbackStore(get_settings().feedback_db)


def state_turns() -> list[ui.Turn]:
    if "turns" not in st.session_state:
        st.session_state["turns"] = []
    turns: list[ui.Turn] = st.session_state["turns"]
    return turns


def session_id() -> str:
    if "session_id" not in st.session_state:
        st.session_state["session_id"] = uuid.uuid4().hex[:12]
    return str(st.session_state["session_id"])


def find_turn(turn_id: str) -> ui.Turn | None:
    return next((t for t in state_turns() if t.id == turn_id), None)


# --- callbacks (run before the script, on the next rerun) --------------------------------------


def on_example(question: str) -> None:
    st.session_state["pending_question"] = question


def on_new_chat() -> None:
    st.session_state["turns"] = []
    st.session_state.pop("pending_question", None)


def on_feedback(turn_id: str, corpus_version: str) -> None:
    turn = find_turn(turn_id)
    if turn is None or turn.answer is None:
        return
    rating = st.session_state.get(f"fb-{turn_id}")
    store = get_feedback_store()
    try:
        if rating is None:
            if turn.feedback_id is not None:
                store.delete(turn.feedback_id)
            turn.feedback_id, turn.comment_sent = None, False
        elif turn.feedback_id is None:
            turn.feedback_id = store.add(
                rating=int(rating),
                question=turn.question,
                answer=turn.answer.text,
                citation_ids=ui.citation_ids(turn.answer),
                refused=turn.answer.refused,
                backend=turn.answer.backend,
                corpus_version=corpus_version,
                session_id=session_id(),
            )
        else:
            store.update(turn.feedback_id, rating=int(rating))
    except AssistantError as exc:
        log.warning("feedback not stored: %s", exc)
        st.toast("Tilbakemeldingen kunne ikke lagres – prøv igjen senere.")


def on_comment(turn_id: str) -> None:
    turn = find_turn(turn_id)
    comment = str(st.session_state.get(f"fbc-{turn_id}", "")).strip()
    if turn is None or turn.feedback_id is None or not comment:
        return
    try:
        get_feedback_store().update(turn.feedback_id, comment=comment)
        turn.comment_sent = True
    except AssistantError as exc:
        log.warning("comment not stored: %s", exc)
        st.toast("Kommentaren kunne ikke lagres – prøv igjen senere.")


# --- the chat -----------------------------------------------------------------------------------


def fail(turn: ui.Turn, exc: Exception) -> None:
    """Every failure becomes one Norwegian sentence on the turn; the details go to the server log."""
    if isinstance(exc, InvalidQuestionError):
        turn.message, turn.invalid = ui.user_message(exc), True
    elif isinstance(exc, AssistantError):
        log.error("question failed: %s", exc)
        turn.message = ui.user_message(exc)
    else:
        log.error("question failed unexpectedly", exc_info=exc)
        turn.message = ui.GENERIC_ERROR


def answer_at_once(res: ui.Resources, turn: ui.Turn, history: list[tuple[str, str]]) -> None:
    """The extractive backend: the whole answer at once (the typewriter is presentation)."""
    try:
        turn.answer = ui.ask_with_history(res.assistant, turn.question, history)
    except Exception as exc:
        fail(turn, exc)


def answer_live(res: ui.Resources, turn: ui.Turn, history: list[tuple[str, str]]) -> None:
    """A generative backend: the model's words as they come, then the checked answer (citation
    guard applied, or the extractive fallback) takes their place."""
    slot = st.empty()
    result = ui.StreamResult()
    try:
        with slot.container():
            st.caption(ui.writing_note(res.assistant.settings.backend))
            st.write_stream(ui.stream_with_history(res.assistant, turn.question, history, result))
        turn.answer = result.answer
        if turn.answer is None:
            turn.message = ui.GENERIC_ERROR
    except Exception as exc:
        fail(turn, exc)
    slot.empty()


def render_source(res: ui.Resources, n: int | None, chunk: ui.Located, unit_id: str, text: str | None = None) -> None:
    """A cited (numbered) or related pledge; opening it shows the pledge among its neighbours."""
    unit = res.context.unit(unit_id)
    verbatim = text if text is not None else (unit.text if unit is not None else chunk.text)
    with st.expander(ui.source_label(n, chunk, verbatim)):
        window = res.context.window(unit_id)
        if window is not None:
            st.markdown(ui.context_markdown(window))
        else:
            st.markdown(ui.escape_markdown(verbatim))
        title = res.titles.get(chunk.doc_id, res.title)
        st.caption(f"ID: `{unit_id}` · {ui.escape_markdown(ui.citation_string(title, chunk))}")


def render_feedback(turn: ui.Turn, res: ui.Resources) -> None:
    st.feedback("thumbs", key=f"fb-{turn.id}", on_change=on_feedback, args=(turn.id, res.corpus_version))
    if turn.feedback_id is None:
        return
    if turn.comment_sent:
        st.caption("Takk for tilbakemeldingen!")
        return
    with st.form(key=f"fbf-{turn.id}", border=False, enter_to_submit=True):
        st.text_input(
            "Vil du si mer? (valgfritt)",
            key=f"fbc-{turn.id}",
            placeholder="Hva var bra, eller hva manglet?",
            max_chars=2000,
        )
        st.form_submit_button("Send kommentar", on_click=on_comment, args=(turn.id,))


def render_user(turn: ui.Turn) -> None:
    with st.chat_message("user"):
        # Plain text: whatever the question contains is shown as typed, never as markup.
        st.text(turn.question)


def render_reply(turn: ui.Turn, res: ui.Resources, *, typewriter: bool = False) -> None:
    """The body of an assistant message (inside `st.chat_message`)."""
    answer = turn.answer
    if answer is None:
        if turn.invalid:
            st.warning(turn.message or ui.GENERIC_ERROR)
        else:
            st.error(turn.message or ui.GENERIC_ERROR)
        return
    standalone = ui.interpreted_as(answer)
    if standalone:
        st.caption(f"Tolket som: «{ui.escape_markdown(standalone)}»")
    if answer.note:
        st.caption(f":material/info: {ui.escape_markdown(answer.note)}")
    if answer.refused:
        st.info(ui.escape_markdown(answer.text), icon=":material/info:")
        if answer.related:
            st.markdown(f"**{ui.RELATED_HEADING}** · {ui.escape_markdown(ui.RELATED_NOTE)}")
            for chunk in answer.related:
                render_source(res, None, chunk, chunk.unit_id)
    else:
        markdown = ui.answer_markdown(answer.text)
        if typewriter:
            pieces = ui.stream_pieces(markdown)
            st.write_stream(ui.typewriter(pieces, ui.stream_delay(len(pieces))))
        else:
            st.markdown(markdown)
        with st.container(key=f"sources-{turn.id}"):
            st.markdown(f"**{ui.SOURCES_HEADING}**")
            for citation in answer.citations:
                render_source(res, citation.n, citation.chunk, citation.chunk.unit_id, citation.text)
    st.caption(ui.transparency_caption(answer, res.title, res.corpus_version))
    render_feedback(turn, res)


def render_turn(turn: ui.Turn, res: ui.Resources) -> None:
    render_user(turn)
    with st.chat_message("assistant"):
        render_reply(turn, res)


def ask_new(turn: ui.Turn, res: ui.Resources, history: list[tuple[str, str]]) -> None:
    """Ask, showing the answer as it comes: the model's own stream, or the typewriter."""
    render_user(turn)
    with st.chat_message("assistant"):
        if res.assistant.generative:
            answer_live(res, turn, history)
            render_reply(turn, res)
        else:
            answer_at_once(res, turn, history)
            render_reply(turn, res, typewriter=True)


def render_welcome() -> None:
    st.markdown(
        "Spør om **Leangen-erklæringen**, den politiske plattformen til byrådet i Trondheim "
        "(Høyre, MDG og Venstre, 2024–2027). Svarene bygger bare på erklæringen, og hvert løfte "
        "siteres ordrett med nummer og kilde. Står ikke temaet i erklæringen, sier assistenten fra."
    )
    st.caption("Prøv et eksempel:")
    columns = st.columns(2)
    for i, question in enumerate(ui.EXAMPLE_QUESTIONS):
        columns[i % 2].button(question, key=f"example-{i}", on_click=on_example, args=(question,), width="stretch")


def chat_page(res: ui.Resources, prompt: str | None) -> None:
    top = st.container()
    turns = state_turns()
    question = st.session_state.pop("pending_question", None) or prompt
    if not turns and question is None:
        render_welcome()
    for turn in turns:
        render_turn(turn, res)
    if question is not None:
        new_turn = ui.Turn(question=question)
        ask_new(new_turn, res, ui.history_pairs(turns))
        # Kept only once answered: a run cut short (a newer question) leaves no half turn behind.
        turns.append(new_turn)
    if turns:
        with top:
            st.button(
                ui.NEW_CHAT_LABEL, key="new-chat", on_click=on_new_chat, icon=":material/refresh:", type="tertiary"
            )


# --- the pledge browser -------------------------------------------------------------------------


def on_chapter_change() -> None:
    st.session_state["filter_section"] = ui.ALL


def browser_page(res: ui.Resources) -> None:
    st.markdown(
        "Alle løftene i erklæringen, med ID og kildehenvisning. Filtrer på kapittel og seksjon, "
        "eller søk med ord – søket forstår bøyningsformer, sammensatte ord og skrivefeil."
    )
    tree = ui.chapters_and_sections(res.pledges)
    left, right = st.columns(2)
    chapter = left.selectbox("Kapittel", [ui.ALL, *tree], key="filter_chapter", on_change=on_chapter_change)
    sections = tree.get(chapter) if chapter != ui.ALL else [s for group in tree.values() for s in group]
    section = right.selectbox("Seksjon", [ui.ALL, *(sections or [])], key="filter_section")
    query = st.text_input("Søk i løftene", key="filter_query", placeholder="For eksempel «sykkel» eller «barnehage»")

    ranked: list[str] | None = None
    lexical = True
    if query.strip():
        try:
            ranked, lexical = ui.search_ranking(res.assistant.search(query, res.n_chunks))
        except InvalidQuestionError as exc:
            st.warning(ui.user_message(exc))
        except AssistantError as exc:
            log.error("search failed: %s", exc)
            st.error(ui.user_message(exc))
            return
    selection = ui.filter_pledges(res.pledges, chapter, section, ranked)

    summary = f"**{len(selection)}** av {len(res.pledges)} løfter"
    if ranked is not None:
        summary += ", mest relevante først" if lexical else ""
    info, csv_col, md_col = st.columns([3, 1, 1], vertical_alignment="center")
    info.markdown(summary)
    description = ui.selection_description(chapter, section, query)
    csv_col.download_button(
        "CSV",
        data=ui.pledges_csv(selection, res.titles),
        file_name=ui.export_filename("csv"),
        mime="text/csv",
        key="export-csv",
        on_click="ignore",
        icon=":material/download:",
        width="stretch",
        disabled=not selection,
    )
    md_col.download_button(
        "Markdown",
        data=ui.pledges_markdown(selection, res.titles, description),
        file_name=ui.export_filename("md"),
        mime="text/markdown",
        key="export-md",
        on_click="ignore",
        icon=":material/download:",
        width="stretch",
        disabled=not selection,
    )
    if ranked is not None and not lexical:
        st.info("Ingen løfter inneholder ordene i søket; her er de nærmeste etter mening.", icon=":material/search:")
    if not selection:
        st.info("Ingen løfter passer til filteret.", icon=":material/filter_alt_off:")
        return

    pages = ui.page_count(len(selection), PLEDGES_PER_PAGE)
    filter_key = hashlib.sha1(f"{chapter}\x1f{section}\x1f{query}".encode(), usedforsecurity=False).hexdigest()[:8]
    page = 1
    footer = st.container()
    if pages > 1:
        with footer:
            page = st.pagination(pages, key=f"browse-page-{filter_key}")
    current = None
    for unit in ui.page_slice(selection, page, PLEDGES_PER_PAGE):
        heading = ui.heading_path(unit)
        if heading != current:
            st.markdown(f"**{ui.escape_markdown(heading)}**")
            current = heading
        with st.container(border=True, key=f"pledge-{unit.id.replace('/', '--')}"):
            st.markdown(ui.escape_markdown(unit.text))
            st.code(ui.citation_string(res.titles.get(unit.doc_id, res.title), unit), language=None, wrap_lines=True)
            st.caption(f"ID: `{unit.id}`")


# --- the page -------------------------------------------------------------------------------------


def sidebar(res: ui.Resources) -> None:
    with st.sidebar:
        st.markdown(f"### {ui.APP_TITLE}")
        st.markdown(
            f"Svarer ut fra **{ui.escape_markdown(res.title)}** ({len(res.pledges)} løfter), "
            "byrådsplattformen for Trondheim 2024–2027."
        )
        how = ui.method_description(res.assistant.settings.backend)
        st.caption(
            f"{how} Tallene i svaret viser til kildene under, og kildene kan åpnes for å se løftet i sammenheng."
        )
        st.caption(f"Korpusversjon `{res.corpus_version}` · metode: {res.assistant.settings.backend}")


def main() -> None:
    st.title(ui.APP_TITLE, anchor=False)
    try:
        res = get_resources()
    except AssistantError as exc:
        log.error("assistant could not be loaded: %s", exc)
        st.error(ui.user_message(exc))
        st.stop()
    except Exception:
        log.exception("assistant could not be loaded")
        st.error(ui.GENERIC_ERROR)
        st.stop()
    sidebar(res)
    chat_tab, browse_tab = st.tabs([TAB_CHAT, TAB_BROWSE], key="side", on_change="rerun")
    if chat_tab.open is not False:
        prompt = st.chat_input(ui.CHAT_PLACEHOLDER, key="question")
        with chat_tab:
            chat_page(res, prompt)
    if browse_tab.open:
        with browse_tab:
            browser_page(res)


main()
