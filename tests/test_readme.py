"""The README is the user's document: short, and its commands are the CLI's and the Makefile's."""

from __future__ import annotations

import re
import shlex

import pytest

from assistant.cli import build_parser
from assistant.settings import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
MAKEFILE = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
MAX_README_BYTES = 15 * 1024


def _cli_lines() -> list[str]:
    return sorted(set(re.findall(r"python -m assistant ([^\n#`]+)", README)))


def test_the_readme_reads_in_five_minutes() -> None:
    assert len(README.encode("utf-8")) <= MAX_README_BYTES


def test_every_make_target_the_readme_names_exists() -> None:
    targets = set(re.findall(r"^([a-z][\w-]*):", MAKEFILE, flags=re.MULTILINE))
    named = set(re.findall(r"\bmake ([a-z][\w-]*)", README))
    assert named and named <= targets


@pytest.mark.parametrize("line", _cli_lines())
def test_every_cli_command_in_the_readme_parses(line: str) -> None:
    # Placeholders («…», NAME, alternatives a|b) stand for values: take the first alternative.
    words = [w.split("|")[0].strip("[]") for w in shlex.split(line.replace("…", "x"))]
    words = [w for w in words if w]
    command = words[words.index("--backend") + 2 :] if words[0] == "--backend" else words
    parser = build_parser()
    parser.parse_args([w if w != "NAME" else "qwen2.5-coder-0.5b" for w in command])
