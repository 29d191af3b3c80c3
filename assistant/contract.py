"""The machine contract: an answer (or a bad input line) as the JSON object `ask --jsonl` writes.

Lives beside neither the CLI nor the evaluation, so both use it without importing each other.
"""

from __future__ import annotations

from typing import Any

from assistant.types import Answer


def safe_text(value: Any) -> str | None:
    """A string that can be written as UTF-8 (lone surrogates from escaped JSON are replaced)."""
    if not isinstance(value, str):
        return None
    return value.encode("utf-8", "replace").decode("utf-8")


def answer_to_json(answer: Answer, question_id: Any) -> dict[str, Any]:
    return {
        "id": question_id,
        "question": answer.question,
        "answer": answer.text,
        "refused": answer.refused,
        "decision": answer.decision,
        "scope": {"kind": answer.scope.kind, "name": answer.scope.name},
        "citations": [
            {
                "n": c.n,
                "id": c.chunk.unit_id,
                "text": c.text,
                "chapter": c.chunk.chapter,
                "section": c.chunk.section,
            }
            for c in answer.citations
        ],
        "retrieved": [
            {"id": h.chunk.unit_id, "chunk_id": h.chunk.id, "text": h.chunk.text, "score": round(h.score, 6)}
            for h in answer.retrieved
        ],
        "related": [{"id": c.unit_id, "text": c.text} for c in answer.related],
        "backend": answer.backend,
        "timings_ms": answer.timings_ms,
        "note": answer.note,
        "error": None,
    }


def error_json(question_id: Any, question: Any, code: str, message: str, backend: str) -> dict[str, Any]:
    return {
        "id": question_id,
        "question": safe_text(question),
        "answer": None,
        "refused": False,
        "decision": None,
        "scope": None,
        "citations": [],
        "retrieved": [],
        "related": [],
        "backend": backend,
        "timings_ms": {},
        "note": None,
        "error": {"code": code, "message": message},
    }
