"""Benchmarks from local files: JSONL, CSV, Parquet and Hugging Face datasets on disk.

``fields`` maps item fields (id, input, target, choices, category) to the file's columns.
Without an id column, items are numbered ``<benchmark>-00000`` in file order, so two runs
of the same file pair up item by item.
"""

from __future__ import annotations

import csv
import json
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from evalledger.benchmarks.base import Benchmark, Item
from evalledger.errors import ConfigError
from evalledger.models.base import AdapterSettings

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "CsvBenchmark",
    "FileBenchmark",
    "HFDiskBenchmark",
    "JsonlBenchmark",
    "ParquetBenchmark",
    "read_jsonl",
]

_FIELDS = ("id", "input", "target", "choices", "category")
_OPTIONAL = ("id", "choices", "category")


class FileSettings(AdapterSettings):
    """Settings shared by the file loaders."""

    path: str
    """The file (or folder); relative paths resolve against the project root."""
    fields: dict[str, str] = {}
    """Item field -> column name; defaults to the field's own name."""
    limit: int | None = Field(default=None, ge=1)
    """Use only the first N items."""


class FileBenchmark(Benchmark):
    """Items from rows of a local file; subclasses implement ``rows``."""

    Settings: ClassVar[type[AdapterSettings]] = FileSettings
    settings: FileSettings

    def _where(self) -> str:
        return f"benchmarks.{self.name}"

    def rows(self, path: Path) -> list[dict[str, Any]]:
        """The file's rows as mappings of column -> value."""
        raise NotImplementedError

    def _file(self) -> Path:
        path = self.resolve(self.settings.path)
        if not path.exists():
            raise ConfigError(
                f"{self._where()}: file {self.settings.path} not found",
                "fix benchmarks.<name>.path (relative paths start at the project root), "
                "or `dvc pull` the data",
            )
        return path

    def load(self) -> list[Item]:
        """Rows mapped to items, ids checked for duplicates."""
        unknown = sorted(set(self.settings.fields) - set(_FIELDS))
        if unknown:
            raise ConfigError(
                f"{self._where()}.fields: unknown item field {unknown[0]!r}; "
                f"known: {', '.join(_FIELDS)}"
            )
        rows = self.rows(self._file())
        if self.settings.limit:
            rows = rows[: self.settings.limit]
        cols = {f: self.settings.fields.get(f, f) for f in _FIELDS}
        if rows:
            for f in _FIELDS:
                explicit = f in self.settings.fields
                if (explicit or f not in _OPTIONAL) and cols[f] not in rows[0]:
                    raise ConfigError(
                        f"{self._where()}: column {cols[f]!r} (for {f}) is not in the data; "
                        f"columns: {', '.join(map(str, rows[0]))}",
                        f"map it with fields: {{{f}: <column>}}",
                    )
        items, seen = [], set()
        for i, row in enumerate(rows):
            item_id = str(row[cols["id"]]) if cols["id"] in row else f"{self.name}-{i:05d}"
            if item_id in seen:
                raise ConfigError(f"{self._where()}: duplicate item id {item_id!r}")
            seen.add(item_id)
            items.append(Item(
                id=item_id, input=str(row[cols["input"]]), target=str(row[cols["target"]]),
                category=str(row.get(cols["category"]) or ""),
                choices=_choices(row.get(cols["choices"])),
            ))  # fmt: skip
        return items


def _choices(value: Any) -> tuple[str, ...] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return tuple(v.strip() for v in value.split("|"))
    if hasattr(value, "tolist"):
        value = value.tolist()
    return tuple(str(v) for v in value)


def read_jsonl(path: Path, where: str) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file; blank lines skipped, a bad line named."""
    rows = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"{where}: {path.name} line {n} is not valid JSON ({exc.msg})"
                ) from None
            if not isinstance(row, dict):
                raise ConfigError(f"{where}: {path.name} line {n} is not an object")
            rows.append(row)
    return rows


class JsonlBenchmark(FileBenchmark):
    """One JSON object per line (``loader: jsonl``)."""

    def rows(self, path: Path) -> list[dict[str, Any]]:
        """Parse each non-empty line."""
        return read_jsonl(path, self._where())


class CsvBenchmark(FileBenchmark):
    """A CSV file with a header row (``loader: csv``); choices as JSON or ``a|b|c``."""

    def rows(self, path: Path) -> list[dict[str, Any]]:
        """The rows as dicts keyed by the header."""
        with path.open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))


class ParquetBenchmark(FileBenchmark):
    """A Parquet file (``loader: parquet``)."""

    def rows(self, path: Path) -> list[dict[str, Any]]:
        """All row groups, as Python values."""
        import pyarrow.parquet as pq

        rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
        return rows


class HFDiskSettings(FileSettings):
    """Settings of the ``hf_disk`` loader."""

    split: str | None = None
    """For a DatasetDict folder: which split (subfolder) to load."""


class HFDiskBenchmark(FileBenchmark):
    """A Hugging Face dataset saved with ``save_to_disk`` (``loader: hf_disk``).

    Reads the Arrow files listed in ``state.json`` directly; ``datasets`` is not needed.
    """

    Settings = HFDiskSettings
    settings: HFDiskSettings

    def rows(self, path: Path) -> list[dict[str, Any]]:
        """The rows of the dataset (or of ``split`` in a DatasetDict)."""
        import pyarrow as pa

        folder = path
        if (path / "dataset_dict.json").exists():
            splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
            if self.settings.split not in splits:
                raise ConfigError(
                    f"{self._where()}.split: {self.settings.split!r} is not a split of "
                    f"{self.settings.path}; splits: {', '.join(splits)}"
                )
            folder = path / str(self.settings.split)
        state_file = folder / "state.json"
        if not state_file.exists():
            raise ConfigError(
                f"{self._where()}: {folder} is not a dataset saved with save_to_disk "
                "(no state.json)"
            )
        files = [f["filename"] for f in json.loads(state_file.read_text())["_data_files"]]
        tables = []
        for name in files:
            with pa.memory_map(str(folder / name)) as source:
                tables.append(pa.ipc.open_stream(source).read_all())
        rows: list[dict[str, Any]] = pa.concat_tables(tables).to_pylist() if tables else []
        return rows
