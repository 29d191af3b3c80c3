"""Regenerate the parser golden file: `python -m tests.golden` (review the diff before committing)."""

from __future__ import annotations

import json
from pathlib import Path

from assistant.corpus import load_corpus

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "leangen-units.golden.jsonl"


def render_units() -> str:
    corpus = load_corpus(ROOT / "corpus")
    lines = [
        json.dumps(
            {
                "id": u.id,
                "kind": u.kind,
                "number": u.number,
                "chapter": u.chapter,
                "section": u.section,
                "subheading": u.subheading,
                "depth": u.depth,
                "parent": u.parent,
                "text": u.text,
            },
            ensure_ascii=False,
        )
        for u in corpus.citable
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    GOLDEN.write_text(render_units(), encoding="utf-8")
    print(f"wrote {GOLDEN}")
