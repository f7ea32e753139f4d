"""Benchmarks from local files: JSONL, CSV, Parquet and Hugging Face datasets on disk.

``fields`` maps item fields (id, input, target, choices, category, cluster) to the
file's columns; each defaults to the column of the same name, and the id, choices and
category columns may be absent unless mapped explicitly. Without an id column, items are
numbered ``<benchmark>-00000`` in file order, so two runs of the same file pair up item
by item. ``cluster`` (items that share a passage, a conversation...) is read only when
mapped; it goes to ``Item.meta["cluster"]`` and to the scores' ``cluster`` column.
"""

from __future__ import annotations

import csv
import itertools
import json
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from evalledger.benchmarks.base import Benchmark
from evalledger.errors import ConfigError
from evalledger.plugin_types import AdapterSettings, Item

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

__all__ = [
    "FIELDS",
    "CsvBenchmark",
    "FileBenchmark",
    "FileSettings",
    "HFDiskBenchmark",
    "HFDiskSettings",
    "JsonlBenchmark",
    "ParquetBenchmark",
    "data_file",
    "iter_jsonl",
]

FIELDS = ("id", "input", "target", "choices", "category", "cluster")
"""The item fields a file's columns can be mapped to."""
_OPTIONAL = frozenset({"id", "choices", "category", "cluster"})
#: Fields read only when ``fields:`` maps them (no default column).
_MAPPED_ONLY = frozenset({"cluster"})

Row = dict[str, Any]


class FileSettings(AdapterSettings):
    """Settings shared by the file loaders."""

    path: str = Field(min_length=1)
    """The file (or folder); relative paths resolve against the project root."""
    fields: dict[str, str] = {}
    """Item field -> column name; each defaults to the field's own name."""
    limit: int | None = Field(default=None, ge=1)
    """Use only the first N items."""

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown item field {unknown[0]!r}; known: {', '.join(FIELDS)}")
        return value


def data_file(bench: Benchmark, path: str) -> Path:
    """``path`` resolved against the project root; a one-line error if it does not exist."""
    resolved = bench.resolve(path)
    if not resolved.exists():
        raise ConfigError(
            f"benchmarks.{bench.name}: file {path} not found",
            f"fix benchmarks.{bench.name}.path (relative paths start at the project root), "
            "or fetch the data (e.g. `dvc pull`)",
        )
    return resolved


def iter_jsonl(path: Path, where: str) -> Iterator[tuple[int, Row]]:
    """(line number, object) for each non-blank line; a bad line is a one-line error."""
    n = 0
    try:
        with path.open(encoding="utf-8-sig") as fh:
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
                    raise ConfigError(f"{where}: {path.name} line {n} is not a JSON object")
                yield n, row
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: {path.name} is not UTF-8 text (near line {n + 1})") from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: {path} is a folder, not a JSON-lines file") from None


def _text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


class FileBenchmark(Benchmark):
    """Items from the rows of a local file; subclasses implement ``rows``."""

    Settings: ClassVar[type[AdapterSettings]] = FileSettings
    settings: FileSettings

    @property
    def where(self) -> str:
        """The params.yaml section errors name."""
        return f"benchmarks.{self.name}"

    def columns(self) -> dict[str, str]:
        """Item field -> column, defaults filled in (``cluster`` only when mapped)."""
        mapped = self.settings.fields
        return {f: mapped.get(f, f) for f in FIELDS if f not in _MAPPED_ONLY or f in mapped}

    def data_files(self) -> list[Path]:
        """The data file."""
        return [data_file(self, self.settings.path)]

    def required(self, field: str) -> bool:
        """Whether the field's column must be present (mapped explicitly, or input/target)."""
        return field in self.settings.fields or field not in _OPTIONAL

    def check_columns(self, available: Iterable[str], source: str) -> None:
        """Raise unless every required column is among ``available``."""
        names = list(available)
        for field, column in self.columns().items():
            if self.required(field) and column not in names:
                raise ConfigError(
                    f"{self.where}: {source} has no column {column!r} (for {field}); "
                    f"columns: {', '.join(map(str, names)) or 'none'}",
                    f"map it with fields: {{{field}: <column>}}",
                )

    @abstractmethod
    def rows(self, path: Path, limit: int | None) -> Iterator[tuple[str, Row]]:
        """(location, row) pairs in file order, at most ``limit`` of them.

        The location (``line 3``, ``row 2``) names the row in error messages.
        """

    def load(self) -> list[Item]:
        """The rows mapped to items; missing columns and duplicate ids are errors."""
        path = data_file(self, self.settings.path)
        cols = self.columns()
        items: list[Item] = []
        seen: dict[str, str] = {}
        for index, (loc, row) in enumerate(self.rows(path, self.settings.limit)):
            values = {f: self._value(row, f, c, f"{path.name} {loc}") for f, c in cols.items()}
            item_id = f"{self.name}-{index:05d}" if values["id"] is None else _text(values["id"])
            if item_id in seen:
                raise ConfigError(
                    f"{self.where}: duplicate item id {item_id!r} "
                    f"({path.name} {seen[item_id]} and {loc})",
                    "item ids must be unique; map another column with fields: {id: <column>}",
                )
            seen[item_id] = loc
            category = values["category"]
            cluster = values.get("cluster")
            items.append(
                Item(
                    id=item_id,
                    input=_text(values["input"]),
                    target=_text(values["target"]),
                    category="" if category is None else _text(category),
                    choices=self._choices(values["choices"], f"{path.name} {loc}"),
                    meta={} if cluster is None else {"cluster": _text(cluster)},
                )
            )
        return items

    def _value(self, row: Row, field: str, column: str, source: str) -> Any:
        if column not in row:
            if self.required(field):
                self.check_columns(row, source)
            return None
        value = row[column]
        if value is None and self.required(field):
            raise ConfigError(f"{self.where}: {source}: {field} column {column!r} is empty")
        return value

    def _choices(self, value: Any, source: str) -> tuple[str, ...] | None:
        if value is None or value == "":
            return None
        if isinstance(value, str):
            text = value.strip()
            if not text.startswith("["):
                return tuple(v.strip() for v in text.split("|"))
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"{self.where}: {source}: choices {text[:40]!r} is not a JSON list ({exc.msg})"
                ) from None
        if isinstance(value, dict) and isinstance(value.get("text"), list):
            value = value["text"]  # {"text": [...], "label": [...]}, as in ARC
        if hasattr(value, "tolist"):
            value = value.tolist()
        if not isinstance(value, list | tuple):
            raise ConfigError(
                f"{self.where}: {source}: choices must be a list, not {type(value).__name__}"
            )
        return tuple(_text(v) for v in value)


class JsonlBenchmark(FileBenchmark):
    """One JSON object per line (``loader: jsonl``); blank lines are skipped."""

    def rows(self, path: Path, limit: int | None) -> Iterator[tuple[str, Row]]:
        """Parse lines until ``limit`` objects are read."""
        for n, row in itertools.islice(iter_jsonl(path, self.where), limit):
            yield f"line {n}", row


class CsvBenchmark(FileBenchmark):
    """A CSV file with a header row (``loader: csv``).

    Choices are a JSON list (``["Lima", "Quito"]``) or ``Lima|Quito``.
    """

    def rows(self, path: Path, limit: int | None) -> Iterator[tuple[str, Row]]:
        """The rows as mappings keyed by the header."""
        try:
            with path.open(encoding="utf-8-sig", newline="") as fh:
                reader = csv.DictReader(fh)
                if reader.fieldnames is None:
                    return
                self.check_columns(reader.fieldnames, path.name)
                for row in itertools.islice(reader, limit):
                    loc = f"line {reader.line_num}"
                    if None in row:
                        raise ConfigError(
                            f"{self.where}: {path.name} {loc} has more fields than the header",
                            "quote values that contain commas",
                        )
                    yield loc, row
        except csv.Error as exc:
            raise ConfigError(f"{self.where}: {path.name} is not valid CSV ({exc})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{self.where}: {path.name} is not UTF-8 text") from None
        except IsADirectoryError:
            raise ConfigError(f"{self.where}: {path} is a folder, not a CSV file") from None


class ParquetBenchmark(FileBenchmark):
    """A Parquet file (``loader: parquet``); only the mapped columns are read."""

    def rows(self, path: Path, limit: int | None) -> Iterator[tuple[str, Row]]:
        """The rows of the mapped columns, as Python values."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise ConfigError(f"{self.where}: {path.name} is not a Parquet file ({exc})") from None
        names = pf.schema_arrow.names
        self.check_columns(names, path.name)
        wanted = [c for c in dict.fromkeys(self.columns().values()) if c in names]
        batches = pf.iter_batches(columns=wanted, batch_size=min(limit or 65_536, 65_536))
        yield from _batch_rows(batches, limit)


def _batch_rows(batches: Iterable[Any], limit: int | None) -> Iterator[tuple[str, Row]]:
    """Rows of Arrow record batches, named ``row <0-based index>``, at most ``limit``."""
    index = 0
    for batch in batches:
        for row in batch.to_pylist():
            if limit is not None and index >= limit:
                return
            yield f"row {index}", row
            index += 1


class HFDiskSettings(FileSettings):
    """Settings of the ``hf_disk`` loader."""

    split: str | None = None
    """For a DatasetDict folder: which split (subfolder) to load."""


class HFDiskBenchmark(FileBenchmark):
    """A Hugging Face dataset saved with ``save_to_disk`` (``loader: hf_disk``).

    Reads the Arrow stream files listed in ``state.json`` directly, so ``datasets`` is
    not needed. ``path`` is a Dataset folder, or a DatasetDict folder with ``split:``.
    ``ClassLabel`` targets and categories become their label names.
    """

    Settings = HFDiskSettings
    settings: HFDiskSettings

    def _folder(self, path: Path) -> Path:
        s = self.settings
        if not path.is_dir():
            raise ConfigError(
                f"{self.where}: {s.path} is not a folder saved with save_to_disk",
                "use loader: jsonl, csv or parquet for single files",
            )
        dict_file = path / "dataset_dict.json"
        if dict_file.exists():
            splits = [str(x) for x in _read_json(dict_file, self.where).get("splits", [])]
            if s.split is None:
                raise ConfigError(
                    f"{self.where}: {s.path} is a DatasetDict; set split: to one of "
                    f"{', '.join(splits)}"
                )
            if s.split not in splits:
                raise ConfigError(
                    f"{self.where}.split: {s.split!r} is not a split of {s.path}; "
                    f"splits: {', '.join(splits)}"
                )
            return path / s.split
        if s.split is not None:
            raise ConfigError(
                f"{self.where}.split: {s.path} is a single dataset, not a DatasetDict "
                "(no dataset_dict.json)",
                "remove split:, or point path: at the DatasetDict folder",
            )
        return path

    def data_files(self) -> list[Path]:
        """Every file of the dataset folder (of ``split``'s folder in a DatasetDict)."""
        folder = self._folder(data_file(self, self.settings.path))
        return sorted(p for p in folder.rglob("*") if p.is_file())

    def rows(self, path: Path, limit: int | None) -> Iterator[tuple[str, Row]]:
        """The rows of the dataset (or of ``split`` in a DatasetDict)."""
        import pyarrow as pa

        folder = self._folder(path)
        state_file = folder / "state.json"
        if not state_file.exists():
            raise ConfigError(
                f"{self.where}: {folder} is not a dataset saved with save_to_disk (no state.json)"
            )
        state = _read_json(state_file, self.where)
        try:
            files = [folder / str(f["filename"]) for f in state["_data_files"]]
            indices = [folder / str(f["filename"]) for f in state.get("_indices_data_files") or []]
        except (KeyError, TypeError):
            raise ConfigError(f"{self.where}: {state_file} has no valid _data_files list") from None
        tables = [self._read_arrow(f) for f in files]
        if not tables:
            return
        names = tables[0].schema.names
        self.check_columns(names, folder.name)
        wanted = [c for c in dict.fromkeys(self.columns().values()) if c in names]
        table = pa.concat_tables([t.select(wanted) for t in tables])
        if indices:  # saved by old versions of datasets without flattening a selection
            take = pa.concat_tables([self._read_arrow(f) for f in indices]).column(0)
            table = table.take(take.slice(0, limit) if limit is not None else take)
        labels = self._class_labels(folder)
        for loc, row in _batch_rows(table.to_batches(), limit):
            for column, label_names in labels.items():
                value = row.get(column)
                if isinstance(value, int) and 0 <= value < len(label_names):
                    row[column] = label_names[value]
            yield loc, row

    def _read_arrow(self, file: Path) -> Any:
        import pyarrow as pa

        if not file.exists():
            raise ConfigError(f"{self.where}: {file} (listed in state.json) not found")
        try:
            with pa.memory_map(str(file)) as source:
                try:
                    return pa.ipc.open_stream(source).read_all()
                except pa.ArrowInvalid:  # the IPC file format, as some tools write
                    source.seek(0)
                    return pa.ipc.open_file(source).read_all()
        except (pa.ArrowException, OSError) as exc:
            raise ConfigError(f"{self.where}: {file} is not an Arrow file ({exc})") from None

    def _class_labels(self, folder: Path) -> dict[str, list[str]]:
        """Label names of the ClassLabel target and category columns, from dataset_info."""
        info_file = folder / "dataset_info.json"
        if not info_file.exists():
            return {}
        features = _read_json(info_file, self.where).get("features")
        if not isinstance(features, dict):
            return {}
        cols = self.columns()
        out: dict[str, list[str]] = {}
        for field in ("target", "category"):
            feature = features.get(cols[field])
            if isinstance(feature, dict) and feature.get("_type") == "ClassLabel":
                out[cols[field]] = [str(n) for n in feature.get("names") or []]
        return out


def _read_json(path: Path, where: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise ConfigError(f"{where}: {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {path} is not a JSON object")
    return data
