"""The evaluation question set is consistent with the platform and with its own README."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from assistant.settings import PROJECT_ROOT

EVAL_DIR = PROJECT_ROOT / "eval"
GOLDEN_UNITS = Path(__file__).parent / "data" / "leangen-units.golden.jsonl"
CATEGORIES = {
    "lookup",
    "paraphrase",
    "number",
    "multi",
    "section",
    "false_premise",
    "uncovered",
    "adversarial",
    "theme",
    "chapter",
    "attribute",
    "document",
    "not_given",
}
SCOPES = {"unit", "heading", "chapter", "theme", "document", "attribute", "none"}
#: The first test item of version 11: the test split written blind after the theme index was frozen.
FIRST_TEST_ID = 878


@pytest.fixture(scope="module")
def items() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (EVAL_DIR / "questions.jsonl").read_text("utf-8").splitlines()]


@pytest.fixture(scope="module")
def unit_texts() -> dict[str, str]:
    units = [json.loads(line) for line in GOLDEN_UNITS.read_text("utf-8").splitlines()]
    return {u["id"]: u["text"] for u in units}


def test_ids_are_unique_and_sequential(items: list[dict[str, Any]]) -> None:
    assert [item["id"] for item in items] == [f"q{n:03d}" for n in range(1, len(items) + 1)]


def test_every_item_is_well_formed(items: list[dict[str, Any]], unit_texts: dict[str, str]) -> None:
    for item in items:
        assert item["category"] in CATEGORIES, item["id"]
        assert item["split"] in ("dev", "test"), item["id"]
        assert item["lang"] in ("nb", "nn", "en", "trd"), item["id"]
        assert item.get("expected_scope", "unit") in SCOPES, item["id"]
        # A question about the document may be answered from its title page alone (the period).
        assert item["answerable"] == bool(item["gold"]) or item["category"] == "document", item["id"]
        listed = [*item["gold"], *item.get("acceptable", [])]
        assert all(g in unit_texts for g in listed), item["id"]
        assert not set(item["gold"]) & set(item.get("acceptable", [])), item["id"]
        if not item["answerable"]:
            assert not item["key_facts"], item["id"]
        gold_text = " ".join(unit_texts[g] for g in item["gold"]).lower()
        for fact in item["key_facts"] if item["gold"] else ():
            assert fact.lower() in gold_text, (item["id"], fact)


def test_questions_are_not_repeated(items: list[dict[str, Any]]) -> None:
    counts = Counter(re.sub(r"\W+", " ", item["question"].lower()).strip() for item in items)
    assert [q for q, n in counts.items() if n > 1] == []


def test_the_test_split_is_the_one_of_version_11(items: list[dict[str, Any]]) -> None:
    """The test split is the 132 items written blind for version 11; earlier test items joined dev."""
    test_ids = [int(item["id"][1:]) for item in items if item["split"] == "test"]
    assert len(test_ids) == 132
    assert test_ids == list(range(FIRST_TEST_ID, FIRST_TEST_ID + 132))


def test_the_readme_version_line_is_current(items: list[dict[str, Any]]) -> None:
    readme = (EVAL_DIR / "README.md").read_text("utf-8")
    version = int(readme.splitlines()[0].removeprefix("version: "))
    assert f"- **{version}** (" in readme
    assert f"holds {len(items)} questions" in readme
