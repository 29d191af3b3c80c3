"""Leangen-assistenten in the browser: `streamlit run app.py`.

A thin Norwegian UI over the `assistant` package: a chat with cited answers, a browser of every
pledge for aides, and feedback on answers. The logic lives in `assistant/ui_support.py` and
`assistant/feedback.py`; this file only lays out widgets. One assistant (model and index) is
loaded per process and shared by every browser session; it loads behind the page, so the page and
the welcome show at once and the first question waits only for what is still loading.
"""

from __future__ import annotations

import hashlib
import logging
import uuid

import streamlit as st
from streamlit.errors import StreamlitAPIException

from assistant import ui_support as ui
from assistant.errors import AssistantError, InvalidQuestionError
from assistant.feedback import FeedbackStore
from assistant.logs import configure_logging
from assistant.settings import Settings, load_settings

log = logging.getLogger("leangen.app")

PLEDGES_PER_PAGE = 20
TAB_CHAT = "Spør erklæringen"
TAB_BROWSE = "Løfteoversikt"
#: How often a page that is waiting for the model looks whether it is ready.
LOADING_POLL_S = 1.0

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


@st.cache_resource(show_spinner=False)
def get_library() -> ui.Library:
    """The corpus and the (not yet warmed-up) assistant: fast, and checks the settings."""
    return ui.load_library(get_settings())


@st.cache_resource(show_spinner=False)
def get_loader() -> ui.Loader:
    """One background load of the model and the index per process. It starts once the first
    visit's page is drawn (`main`), or when a question needs it, whichever comes first."""
    settings, library = get_settings(), get_library()
    return ui.Loader(lambda: ui.load_resources(settings, library))


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


def wait_for_resources(loader: ui.Loader) -> ui.Resources:
    """The loaded assistant; while it is still loading, a spinner says why this takes a moment."""
    if loader.ready:
        return loader.result()
    with st.spinner(ui.LOADING_SPINNER):
        return loader.result()


# --- callbacks (run before the script, on the next rerun) --------------------------------------


def on_example(question: str) -> None:
    st.session_state["pending_question"] = question


def on_new_chat() -> None:
    st.session_state["turns"] = []
    st.session_state.pop("pending_question", None)


def on_open_browser(filters: ui.BrowserFilters) -> None:
    """From an answer to the same pledges in the browser, with the filters in the page's URL.

    The browser's widgets are not drawn while the chat is shown, so a value set on them alone
    would not reach the URL (Streamlit writes a bound parameter only for a widget it already
    knows): the parameters are written too, and the widgets take their values from them."""
    for key, value in ui.browser_params(filters).items():
        st.session_state[key] = value
        try:
            if value == ui.FILTER_DEFAULTS[key]:
                if key in st.query_params:
                    del st.query_params[key]
            else:
                st.query_params[key] = value
        except StreamlitAPIException:
            pass  # bound to its widget, which writes it
    st.session_state["side"] = TAB_BROWSE


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


def render_source(lib: ui.Library, n: int | None, chunk: ui.Located, unit_id: str, text: str | None = None) -> None:
    """A cited (numbered) or related pledge, one line until opened; opened, it shows the pledge
    among its neighbours and its whole place in the document."""
    unit = lib.context.unit(unit_id)
    verbatim = text if text is not None else (unit.text if unit is not None else chunk.text)
    with st.expander(ui.source_label(n, chunk, verbatim)):
        window = lib.context.window(unit_id)
        if window is not None:
            st.markdown(ui.context_markdown(window))
        else:
            st.markdown(ui.escape_markdown(verbatim))
        title = lib.titles.get(chunk.doc_id, lib.title)
        st.caption(f"ID: `{unit_id}` · {ui.escape_markdown(ui.citation_string(title, chunk))}")


def render_feedback(turn: ui.Turn, lib: ui.Library) -> None:
    st.feedback("thumbs", key=f"fb-{turn.id}", on_change=on_feedback, args=(turn.id, lib.corpus_version))
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


def render_grouped(grouped: ui.GroupedAnswer) -> None:
    """A broad answer: its lead, then one collapsible group per chapter (or heading) with a count."""
    st.markdown(grouped.lead)
    if grouped.loose:
        st.markdown(grouped.loose)
    for group in grouped.groups:
        with st.expander(group.label, expanded=len(grouped.groups) == 1):
            st.markdown(group.markdown)
            st.caption("ID: " + " · ".join(f"`{unit_id}`" for unit_id in group.unit_ids))


def render_about(turn: ui.Turn, lib: ui.Library) -> None:
    """The document's name and period stay visible; how the answer was made is one click away."""
    assert turn.answer is not None
    st.caption(ui.document_line(lib.title, lib.period))
    with st.expander(ui.ABOUT_LABEL, type="compact", key=f"about-{turn.id}"):
        for line in ui.about_answer(turn.answer, lib.corpus_version):
            st.caption(line)


def render_reply(turn: ui.Turn, lib: ui.Library, *, typewriter: bool = False) -> None:
    """The body of an assistant message (inside `st.chat_message`)."""
    answer = turn.answer
    if answer is None:
        if turn.invalid:
            st.warning(turn.message or ui.GENERIC_ERROR)
        else:
            st.error(turn.message or ui.GENERIC_ERROR)
        return
    if answer.decision == "chat":
        # Small talk («hei», «takk», «hva kan du?») gets the welcome of the first screen.
        render_welcome(f"example-{turn.id}")
        return
    lead = ui.english_lead(answer)
    if lead:
        st.caption(f":material/translate: {ui.escape_markdown(lead)}")
    standalone = ui.interpreted_as(answer)
    if standalone:
        st.caption(f"Tolket som: «{ui.escape_markdown(standalone)}»")
    if answer.note:
        st.caption(f":material/info: {ui.escape_markdown(answer.note)}")
    grouped = ui.group_answer(answer)
    if answer.refused:
        st.info(ui.escape_markdown(answer.text), icon=":material/info:")
        if answer.related:
            with st.container(key=f"related-{turn.id}"):
                st.markdown(f"**{ui.RELATED_HEADING}** · {ui.escape_markdown(ui.RELATED_NOTE)}")
                for chunk in answer.related:
                    render_source(lib, None, chunk, chunk.unit_id)
    elif grouped is not None:
        render_grouped(grouped)
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
                render_source(lib, citation.n, citation.chunk, citation.chunk.unit_id, citation.text)
    link = ui.browser_link(answer, lib.pledges, lib.themes)
    if link is not None:
        st.button(
            link.label,
            key=f"browse-{turn.id}",
            on_click=on_open_browser,
            args=(link.filters,),
            icon=":material/format_list_bulleted:",
            type="tertiary",
        )
    render_about(turn, lib)
    render_feedback(turn, lib)


def render_turn(turn: ui.Turn, lib: ui.Library) -> None:
    render_user(turn)
    with st.chat_message("assistant"):
        render_reply(turn, lib)


def ask_new(turn: ui.Turn, lib: ui.Library, loader: ui.Loader, history: list[tuple[str, str]]) -> None:
    """Ask, showing the answer as it comes: the model's own stream, or the typewriter. A question
    asked while the model is still loading waits for it, with a spinner."""
    render_user(turn)
    with st.chat_message("assistant"):
        try:
            res = wait_for_resources(loader)
        except Exception as exc:
            fail(turn, exc)
            render_reply(turn, lib)
            return
        if res.assistant.generative:
            answer_live(res, turn, history)
            render_reply(turn, lib)
        else:
            answer_at_once(res, turn, history)
            render_reply(turn, lib, typewriter=True)


def render_welcome(key_prefix: str = "example") -> None:
    """What the assistant does and does not do, and example questions to start from."""
    st.markdown(ui.welcome_markdown())
    st.caption(f"{ui.EXAMPLES_INTRO}:")
    columns = st.columns(2)
    for i, question in enumerate(ui.EXAMPLE_QUESTIONS):
        columns[i % 2].button(question, key=f"{key_prefix}-{i}", on_click=on_example, args=(question,), width="stretch")


def loading_status(loader: ui.Loader) -> None:
    """While the model loads: a line saying so, which looks every second and reruns the page when
    the model is ready (or failed, so the page can say so)."""
    if loader.ready:
        return

    def status() -> None:
        if loader.ready:
            st.rerun(scope="app")
        st.caption(f":material/hourglass_top: {ui.LOADING_NOTE}")

    st.fragment(status, run_every=LOADING_POLL_S, key="loading-status")()


def chat_page(lib: ui.Library, loader: ui.Loader, prompt: str | None) -> None:
    top = st.container()
    turns = state_turns()
    question = st.session_state.pop("pending_question", None) or prompt
    if not turns and question is None:
        render_welcome()
        loading_status(loader)
    for turn in turns:
        render_turn(turn, lib)
    if question is not None:
        new_turn = ui.Turn(question=question)
        ask_new(new_turn, lib, loader, ui.history_pairs(turns))
        # Kept only once answered: a run cut short (a newer question) leaves no half turn behind.
        turns.append(new_turn)
    if turns:
        with top:
            st.button(
                ui.NEW_CHAT_LABEL, key="new-chat", on_click=on_new_chat, icon=":material/refresh:", type="tertiary"
            )


# --- the pledge browser -------------------------------------------------------------------------


def on_chapter_change() -> None:
    st.session_state["overskrift"] = ui.ALL


def on_clear_filters(names: list[str]) -> None:
    for name in names:
        st.session_state[name] = ui.FILTER_DEFAULTS[name]


def browser_filters(lib: ui.Library) -> ui.BrowserFilters:
    """The search box, and the filters in an expander (on a phone they would fill the first
    screen). Every value is bound to the page's URL, so a link reproduces the view."""
    query = st.text_input(
        "Søk i løftene",
        key="sok",
        bind="query-params",
        placeholder="For eksempel «sykkel» eller «barnehage»",
    )
    tree = ui.chapters_and_sections(lib.pledges)
    with st.expander("Filtrer på kapittel, overskrift og tema", icon=":material/filter_list:"):
        chapter = st.selectbox(
            "Kapittel", [ui.ALL, *tree], key="kapittel", on_change=on_chapter_change, bind="query-params"
        )
        heading = st.selectbox(
            "Overskrift", ui.heading_options(lib.pledges, chapter), key="overskrift", bind="query-params"
        )
        theme = st.selectbox("Tema", [ui.ALL_THEMES, *(t.name for t in lib.themes)], key="tema", bind="query-params")
    return ui.BrowserFilters(chapter, heading, theme, query)


def browser_page(lib: ui.Library, loader: ui.Loader) -> None:
    st.markdown(
        "Alle løftene i erklæringen, med ID og kildehenvisning. Søk med ord – søket forstår "
        "bøyningsformer, sammensatte ord og skrivefeil – og filtrer på kapittel, overskrift og tema."
    )
    filters = browser_filters(lib)
    ranked: list[str] | None = None
    match: ui.SearchMatch = "words"
    if filters.query.strip():
        try:
            res = wait_for_resources(loader)
            hits = res.assistant.search(filters.query, res.n_chunks)
            ranked, match = ui.search_ranking(hits, res.terms, res.positions, filters.query)
        except InvalidQuestionError as exc:
            st.warning(ui.user_message(exc))
        except AssistantError as exc:
            log.error("search failed: %s", exc)
            st.error(ui.user_message(exc))
            return
    selection = ui.apply_filters(lib.pledges, filters, lib.themes, ranked)

    summary = f"**{len(selection)}** av {len(lib.pledges)} løfter"
    if ranked is not None and match != "meaning":
        summary += ", mest relevante først"
    active = [filters.describe(name) for name in filters.active()]
    description = ui.selection_description(filters.chapter, filters.heading, filters.query, filters.theme)
    with st.container(horizontal=True, vertical_alignment="center", key="browse-summary"):
        st.markdown(summary, width="content")
        st.download_button(
            "CSV",
            data=ui.pledges_csv(selection, lib.titles),
            file_name=ui.export_filename("csv"),
            mime="text/csv",
            key="export-csv",
            on_click="ignore",
            icon=":material/download:",
            disabled=not selection,
        )
        st.download_button(
            "Markdown",
            data=ui.pledges_markdown(selection, lib.titles, description),
            file_name=ui.export_filename("md"),
            mime="text/markdown",
            key="export-md",
            on_click="ignore",
            icon=":material/download:",
            disabled=not selection,
        )
    if active:
        st.caption(ui.escape_markdown("Filter: " + " · ".join(active)))
    if ranked is not None and ui.SEARCH_NOTES[match]:
        st.info(ui.SEARCH_NOTES[match], icon=":material/search:")
    if not selection:
        hiding, hidden = ui.hiding_filters(lib.pledges, filters, lib.themes, ranked)
        if hiding:
            st.warning(ui.escape_markdown(ui.hidden_message(filters, hiding, hidden)), icon=":material/filter_alt_off:")
            st.button(
                "Fjern filteret" if len(hiding) == 1 else "Fjern filtrene",
                key="clear-filters",
                on_click=on_clear_filters,
                args=(hiding,),
                icon=":material/filter_alt_off:",
            )
        else:
            st.info("Ingen løfter passer til søket.", icon=":material/filter_alt_off:")
        return

    pages = ui.page_count(len(selection), PLEDGES_PER_PAGE)
    state = "\x1f".join((filters.chapter, filters.heading, filters.theme, filters.query))
    filter_key = hashlib.sha1(state.encode(), usedforsecurity=False).hexdigest()[:8]
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
            st.code(ui.citation_string(lib.titles.get(unit.doc_id, lib.title), unit), language=None, wrap_lines=True)
            st.caption(f"ID: `{unit.id}`")


# --- the page -------------------------------------------------------------------------------------


def sidebar(lib: ui.Library, loader: ui.Loader) -> None:
    with st.sidebar:
        st.markdown(f"### {ui.APP_TITLE}")
        st.markdown(
            f"Svarer ut fra **{ui.escape_markdown(lib.title)}** ({len(lib.pledges)} løfter), "
            f"byrådsplattformen for Trondheim {ui.escape_markdown(lib.period)}."
        )
        how = ui.method_description(lib.assistant.settings.backend)
        st.caption(
            f"{how} Tallene i svaret viser til kildene under, og kildene kan åpnes for å se løftet i sammenheng."
        )
        st.caption(f"Korpusversjon `{lib.corpus_version}` · metode: {lib.assistant.settings.backend}")


def main() -> None:
    st.html(ui.PAGE_STYLE)
    st.title(ui.APP_TITLE, anchor=False)
    try:
        lib = get_library()
        loader = get_loader()
        if loader.error is not None:
            raise loader.error
    except AssistantError as exc:
        log.error("assistant could not be loaded: %s", exc)
        st.error(ui.user_message(exc))
        st.stop()
    except Exception:
        log.exception("assistant could not be loaded")
        st.error(ui.GENERIC_ERROR)
        st.stop()
    sidebar(lib, loader)
    chat_tab, browse_tab = st.tabs([TAB_CHAT, TAB_BROWSE], key="side", on_change="rerun", bind="query-params")
    if chat_tab.open is not False:
        prompt = st.chat_input(ui.CHAT_PLACEHOLDER, key="question")
        with chat_tab:
            chat_page(lib, loader, prompt)
    if browse_tab.open:
        with browse_tab:
            browser_page(lib, loader)
    # Drawn first, loaded second: the load's imports would otherwise slow the first page down.
    loader.start()


main()
