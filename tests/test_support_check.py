"""The support check for small models: a cited sentence must share its words with a source it cites."""

from __future__ import annotations

import pytest

from assistant.citations import check_support
from assistant.core import Assistant
from assistant.fakes import ScriptedChatModel
from assistant.generation import FALLBACK_NO_CITATIONS
from tests.conftest import FakeSettings

KULTURSKOLE = (
    "øke antallet elever i kulturskolen, og gi bedre rammebetingelser for private kulturskoler for større mangfold."
)
KIRKE = "bygge ny Charlottenlund kirke."
SEREMONIROM = "ivareta behovet for et livssynsåpent seremonirom."
SOURCES = [KULTURSKOLE, KIRKE, SEREMONIROM]


def test_a_sentence_copied_from_its_source_is_kept() -> None:
    text = f"Byrådet vil {KIRKE[:-1]} [2]. Byrådet vil {SEREMONIROM[:-1]} [3]."
    result = check_support(text, SOURCES)
    assert (result.text, result.repointed, result.unsupported) == (text, 0, ())


def test_a_pledge_copied_under_the_wrong_number_is_re_pointed() -> None:
    result = check_support("Byrådet vil bygge ny Charlottenlund kirke [3][1].", SOURCES)
    assert result.text == "Byrådet vil bygge ny Charlottenlund kirke [2]."
    assert result.repointed == 1 and result.unsupported == ()


def test_a_claim_no_source_makes_is_removed() -> None:
    text = "Byrådet vil bygge ny Charlottenlund kirke [2]. Byrådet vil legge ned kulturskolen [1]."
    result = check_support(text, SOURCES)
    assert result.text == "Byrådet vil bygge ny Charlottenlund kirke [2]. "
    assert result.unsupported == ("Byrådet vil legge ned kulturskolen [1].",)


def test_a_sentence_joining_two_cited_sources_is_kept() -> None:
    text = "Byrådet vil bygge ny Charlottenlund kirke og ivareta behovet for et livssynsåpent seremonirom [2][3]."
    assert check_support(text, SOURCES).text == text


def test_on_a_tie_the_best_ranked_source_is_cited() -> None:
    result = check_support("Byrådet vil bygge ny Charlottenlund kirke [1].", [KULTURSKOLE, KIRKE, KIRKE])
    assert result.text == "Byrådet vil bygge ny Charlottenlund kirke [2]."


@pytest.mark.parametrize(
    "text",
    [
        "Byrådet vil legge ned kulturskolen.",  # no marker: the guard's business (uncited)
        "Byrådet vil legge ned kulturskolen [9].",  # outside the sources: the guard drops it
        "Byrådet vil [1]:",  # no content words to judge
    ],
)
def test_what_the_guard_decides_is_left_to_it(text: str) -> None:
    result = check_support(text, SOURCES)
    assert (result.text, result.repointed, result.unsupported) == (text, 0, ())


def _assistant(fake_assistant: Assistant, fake_settings: FakeSettings, backend: str, reply: str) -> Assistant:
    settings = fake_settings(backend=backend, index_dir=fake_assistant.settings.index_dir, auto_build_index=False)
    return Assistant(settings, chat_model=ScriptedChatModel(replies=[reply]))


def test_the_local_backend_replaces_an_answer_whose_only_claim_no_source_makes(
    fake_assistant: Assistant, fake_settings: FakeSettings
) -> None:
    reply = "Byrådet vil legge ned kulturskolen [1]."
    answer = _assistant(fake_assistant, fake_settings, "local", reply).ask(
        "Hvorfor vil byrådet legge ned kulturskolen?"
    )
    assert answer.backend == "extractive" and answer.note == FALLBACK_NO_CITATIONS
    assert answer.unsupported_sentences == (reply,)
    assert "legge ned" not in answer.text
    # The openai backend (large models paraphrase) is not support-checked.
    kept = _assistant(fake_assistant, fake_settings, "openai", reply).ask("Hvorfor vil byrådet legge ned kulturskolen?")
    assert kept.backend == "openai" and kept.unsupported_sentences == ()
