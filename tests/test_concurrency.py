"""One assistant shared by many threads (the web app shares one per process).

Answers under contention are identical to single-threaded ones, and the lazily loaded index is
loaded (or built) once however many threads ask their first question at the same moment.
Throughput is printed (`pytest -s`), never asserted.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from assistant.core import Assistant
from assistant.index import CURRENT, SearchIndex, load_index
from assistant.settings import PROJECT_ROOT
from assistant.types import Answer
from tests.conftest import FakeSettings

THREADS = 8
N_QUESTIONS = 200
Key = tuple[str, bool, tuple[str, ...]]


def _eval_questions(n: int = 25) -> list[str]:
    """About 25 varied questions: every category and language of the evaluation set."""
    rows = [json.loads(line) for line in (PROJECT_ROOT / "eval" / "questions.jsonl").read_text("utf-8").splitlines()]
    by_group: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        by_group.setdefault((row["category"], row["lang"]), []).append(row["question"])
    picked: list[str] = []
    for questions in itertools.zip_longest(*by_group.values()):
        picked.extend(q for q in questions if q is not None and q not in picked)
    return picked[:n]


QUESTIONS = _eval_questions()


def key(answer: Answer) -> Key:
    return answer.text, answer.refused, tuple(c.chunk.unit_id for c in answer.citations)


def test_the_question_mix_is_varied(fake_assistant: Assistant) -> None:
    answers = [fake_assistant.ask(q) for q in QUESTIONS]
    assert len(set(QUESTIONS)) == len(QUESTIONS) >= 20
    # Whole sections, topic lists and ranked answers (and, with today's calibration, a refusal).
    assert len({a.decision for a in answers}) >= 3


def test_answers_from_eight_threads_equal_the_single_threaded_answers(fake_assistant: Assistant) -> None:
    fake_assistant.ask(QUESTIONS[0])  # warm
    workload = list(itertools.islice(itertools.cycle(QUESTIONS), N_QUESTIONS))

    started = time.perf_counter()
    reference = {q: key(fake_assistant.ask(q)) for q in workload}
    single = time.perf_counter() - started

    barrier = threading.Barrier(THREADS)

    def ask(question: str) -> Key:
        return key(fake_assistant.ask(question))

    def start(_: int) -> None:
        barrier.wait()  # every worker thread exists and starts at the same moment

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(start, range(THREADS)))
        started = time.perf_counter()
        results = list(pool.map(ask, workload))
        threaded = time.perf_counter() - started

    mismatches = [(q, r) for q, r in zip(workload, results, strict=True) if r != reference[q]]
    assert mismatches == []
    print(
        f"\nthroughput over {N_QUESTIONS} questions: 1 thread {N_QUESTIONS / single:.0f} q/s, "
        f"{THREADS} threads {N_QUESTIONS / threaded:.0f} q/s"
    )


def _builds(index_dir: Path) -> list[str]:
    return sorted(p.name for p in index_dir.iterdir() if p.is_dir())


def _first_questions_at_once(assistant: Assistant, question: str) -> list[tuple[Key, SearchIndex, bool]]:
    """8 threads ask their first question at the same instant; each reports its answer, the index
    the assistant then holds, and whether every hit it got came from that very index object."""
    barrier = threading.Barrier(THREADS)

    def first(_: int) -> tuple[Key, SearchIndex, bool]:
        barrier.wait()
        answer = assistant.ask(question)
        index = assistant.index
        own = all(any(hit.chunk is chunk for chunk in index.chunks) for hit in answer.retrieved)
        return key(answer), index, own

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(first, range(THREADS)))


@pytest.fixture
def built_on_disk(fake_settings: FakeSettings, fake_assistant: Assistant) -> Path:
    """An index directory with a good build on disk, built by another assistant (another process)."""
    settings = fake_settings()
    Assistant(settings).build_index()
    return settings.index_dir


def test_lazy_load_under_contention_loads_once(
    fake_settings: FakeSettings, fake_assistant: Assistant, built_on_disk: Path
) -> None:
    question = "Hva vil byrådet gjøre med fastlegeordningen?"
    before = _builds(built_on_disk)
    assert len(before) == 1
    messages: list[str] = []
    assistant = Assistant(fake_settings(auto_build_index=True), progress=messages.append)

    results = _first_questions_at_once(assistant, question)

    indexes = {id(index) for _, index, _ in results}
    assert len(indexes) == 1, "the index was loaded more than once"
    assert all(own for _, _, own in results), "a thread answered from another copy of the index"
    assert messages == [], "nothing was built: the index on disk was good"
    assert _builds(built_on_disk) == before
    (index_dir_build,) = before
    assert results[0][1].path.name == index_dir_build
    expected = key(fake_assistant.ask(question))
    assert all(k == expected for k, _, _ in results)


def test_lazy_build_under_contention_builds_once(fake_settings: FakeSettings, fake_assistant: Assistant) -> None:
    question = "Hvor mye er fritidskortet verdt?"
    settings = fake_settings(auto_build_index=True)
    messages: list[str] = []
    assistant = Assistant(settings, progress=messages.append)

    results = _first_questions_at_once(assistant, question)

    assert len({id(index) for _, index, _ in results}) == 1
    assert all(own for _, _, own in results)
    assert len([m for m in messages if m.startswith("Embedding") and "chunks" in m]) == 1, messages
    (build,) = _builds(settings.index_dir)
    assert (settings.index_dir / CURRENT).read_text("utf-8").strip() == build
    assert load_index(settings, assistant.corpus).manifest == results[0][1].manifest
    expected = key(fake_assistant.ask(question))
    assert all(k == expected for k, _, _ in results)
