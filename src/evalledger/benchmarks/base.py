"""The interface every benchmark implements: load items, build prompts, check answers."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Self

# Item and ItemScore are re-exported: plugins written against this module keep working.
from evalledger.plugin_types import AdapterSettings, Item, ItemScore, validate_settings

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["DEFAULT_TEMPLATE", "Benchmark", "Item", "ItemScore", "hash_data_files"]

DEFAULT_TEMPLATE = "{input}"
_CHUNK = 1 << 20
#: A file modified this recently (seconds) may change again within the same mtime tick,
#: so its content hash is not cached (git's "racy clean" rule).
_RACY_S = 2.0


class Benchmark(ABC):
    """A benchmark. Subclasses are registered under ``evalledger.benchmarks``."""

    Settings: ClassVar[type[AdapterSettings]] = AdapterSettings

    def __init__(self, name: str, settings: AdapterSettings, root: Path | None = None) -> None:
        self.name = name
        self.settings = settings
        self.root = root
        """The project root; relative data paths resolve against it."""

    @classmethod
    def from_config(cls, name: str, config: dict[str, Any], root: Path | None = None) -> Self:
        """Build the benchmark from its params.yaml entry (without ``loader:``/``scorer:``)."""
        return cls(name, validate_settings(cls.Settings, config, f"benchmarks.{name}"), root)

    def resolve(self, path: str) -> Path:
        """A data path from params.yaml, relative to the project root."""
        from pathlib import Path

        p = Path(path).expanduser()
        return p if p.is_absolute() or self.root is None else self.root / p

    @abstractmethod
    def load(self) -> list[Item]:
        """All items, in a stable order."""

    def iter_items(self) -> Iterator[Item]:
        """The items of :meth:`load`, in its order, one at a time.

        A cell larger than :data:`~evalledger.execution.streaming.STREAM_ABOVE` items
        reads them this way, more than once, so it never holds them all; loaders that can
        produce items lazily override it.
        """
        return iter(self.load())

    def data_files(self) -> list[Path]:
        """The files the items are read from; [] when the settings determine the items.

        The manifest records a hash of these files (``data_hash``), so an evaluation of
        the same configuration on changed data is not taken for a duplicate. Loaders
        that read files override this; generated benchmarks keep the default.
        """
        return []

    def data_hash(self, cache: Path | None = None) -> str | None:
        """The hash of :meth:`data_files`, or None when there are none.

        ``cache`` is a JSON file of file hashes by (path, size, mtime), so big files are
        read once; see :func:`hash_data_files`.
        """
        files = self.data_files()
        return hash_data_files(files, self.root, cache) if files else None

    def prompt(self, item: Item, template: str | None = None) -> str:
        """The prompt for ``item``; ``template`` comes from the prompt_set axis."""
        return (template or DEFAULT_TEMPLATE).replace("{input}", item.input)

    def extract(self, text: str) -> tuple[str | None, bool]:
        """The answer in ``text`` and whether it was in the expected format.

        The answer is the number after ``answer is``, else the last number; the format
        is ``answer is N`` or an ``<answer>`` tag.
        """
        from evalledger.scorers.match import answer_is, has_answer_tag, numbers

        said = answer_is(text)
        if said is not None:
            return said, True
        found = numbers(text)
        return (found[-1] if found else None), has_answer_tag(text)

    def check(self, item: Item, text: str) -> ItemScore:
        """Score one answer when params.yaml names no scorer.

        The default: exact numeric match, within 10% for partial credit (text targets
        compare as normalised text). Custom benchmarks override ``extract`` and ``check``,
        or name a scorer in params.yaml.
        """
        from evalledger.scorers.match import compare_exact, compare_numeric, number

        extracted, formatted = self.extract(text)
        if extracted is None:
            return ItemScore(correct=False, score=0.0, formatted=formatted)
        if number(item.target) is None:
            ok, _ = compare_exact(extracted, item.target)
            return ItemScore(ok, float(ok), extracted, partial=ok, formatted=formatted)
        correct, partial, note = compare_numeric(extracted, item.target)
        return ItemScore(correct, float(correct), extracted, partial, formatted, note)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _read_cache(cache: Path) -> dict[str, Any]:
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or damaged: the cache is only ever a shortcut
    return data if isinstance(data, dict) else {}


def hash_data_files(files: list[Path], root: Path | None = None, cache: Path | None = None) -> str:
    """A hash over (name, content) of each file, 16 hex digits.

    Names are relative to ``root`` when the file is inside it (so moving the project
    keeps the hash), else absolute. Content is read in chunks; with ``cache`` (a JSON
    file, written atomically, safe to delete) a file whose path, size and mtime match
    a cached entry is not read again.
    """
    import time

    from evalledger.atomic import atomic_write

    entries = _read_cache(cache) if cache is not None else {}
    changed = False
    h = hashlib.sha256()
    for path in sorted(files, key=str):
        resolved = path.resolve()
        st = resolved.stat()
        key = str(resolved)
        hit = entries.get(key)
        stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if isinstance(hit, dict) and {k: hit.get(k) for k in stamp} == stamp:
            digest = str(hit.get("sha256"))
        else:
            digest = _file_sha256(resolved)
            if cache is not None and time.time() - st.st_mtime > _RACY_S:
                entries[key] = {**stamp, "sha256": digest}
                changed = True
        name = str(resolved)
        if root is not None and resolved.is_relative_to(root.resolve()):
            name = resolved.relative_to(root.resolve()).as_posix()
        h.update(f"{name}\0{digest}\n".encode())
    if cache is not None and changed:
        atomic_write(cache, json.dumps(entries, indent=1, sort_keys=True) + "\n", fsync=False)
    return h.hexdigest()[:16]
