"""Loading YAML and JSON that evalledger did not necessarily write: bounded and named.

Every ledger and project file (params.yaml, dvc.yaml, dvc.lock, manifests, metrics,
exports) may come from a collaborator's commit, an import or a damaged disk. Loads here
refuse YAML aliases, oversized and deeply nested documents, and bytes that are not
UTF-8, with a :class:`~evalledger.errors.CorruptFileError` that names the file.

The parse functions (:func:`parse_yaml`, :func:`parse_json`) raise :class:`DamagedData`,
which does not know the file yet; the load functions name it. Readers that can answer
without one bad file skip it with :func:`warn_skipped` (a :class:`CorruptFileWarning`,
which the command line prints as one ``Warning:`` line).

Size bounds, each far above what evalledger writes and low enough that a file at the
bound still loads in seconds (libyaml reads about 3.5 MiB/s into Python objects;
ruamel.yaml's round trip, for edits, about 0.3 MiB/s):

- ``params.yaml``: 1 MiB. It defines the matrix: 500 models of ten settings each are
  about 150 KiB. An edit (``run -S``, ``revert``) of 1 MiB takes about 5 s.
- ``dvc.yaml``: 2 MiB. One ``foreach`` stage, and a line per declared metrics file
  (about 35,000 tracked evaluations); it is edited round trip, in about 9 s at 2 MiB.
- ``dvc.lock`` and ``.dvc`` files: 32 MiB, about 45,000 stages at 700 bytes each.
- a manifest: 64 MiB in JSON's syntax (about 130,000 cells with their configuration
  snapshot, read in about a second), 16 MiB in block YAML (older ones, about 40,000 cells).
- a metrics file: 16 MiB (a few KiB per cell; categories and error patterns grow it).
- a scores file: 256 MiB, two million items at about 100 bytes a row.

Nesting is bounded at 100 levels: real files nest fewer than 15, and the recursive code
that reads them (pydantic, ``json``, ``copy.deepcopy``) breaks at a few hundred.
"""

from __future__ import annotations

import json
import os
import secrets
import warnings
from typing import TYPE_CHECKING, Any

from evalledger.errors import CorruptFileError, describe

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "MAX_DEPTH",
    "MAX_DVC_FILE_BYTES",
    "MAX_DVC_YAML_BYTES",
    "MAX_MANIFEST_BYTES",
    "MAX_METRICS_BYTES",
    "MAX_PARAMS_BYTES",
    "MAX_SCORES_BYTES",
    "MAX_YAML_MANIFEST_BYTES",
    "CorruptFileWarning",
    "DamagedData",
    "check_depth",
    "check_size",
    "corrupt_file",
    "load_json",
    "load_yaml",
    "loads_batch",
    "parse_json",
    "parse_json_objects",
    "parse_json_or_yaml",
    "parse_yaml",
    "read_bounded",
    "restore_hint",
    "warn_skipped",
]

_MIB = 1 << 20
MAX_PARAMS_BYTES = 1 * _MIB
MAX_DVC_YAML_BYTES = 2 * _MIB
MAX_DVC_FILE_BYTES = 32 * _MIB
MAX_MANIFEST_BYTES = 64 * _MIB
#: Block YAML reads some 50x slower than JSON: a manifest in it is bounded lower.
MAX_YAML_MANIFEST_BYTES = 16 * _MIB
MAX_METRICS_BYTES = 16 * _MIB
MAX_SCORES_BYTES = 256 * _MIB
MAX_DEPTH = 100

_RESTORE_HINT = "restore it from git (`git checkout -- FILE`) or fix it by hand"


class DamagedData(ValueError):
    """Bytes that are not a loadable document; :meth:`describe` names the file."""

    def __init__(self, template: str) -> None:
        super().__init__(template.replace("{source}", "the document"))
        self.template = template
        """The reason, with ``{source}`` where the file's name goes."""

    def describe(self, source: str) -> str:
        """The reason as one sentence about ``source``."""
        return self.template.replace("{source}", source)


class CorruptFileWarning(UserWarning):
    """A damaged file was skipped; the rest of the answer stands without it."""


def corrupt_file(source: str, damage: Exception | str, hint: str | None = None) -> CorruptFileError:
    """The error for a damaged ``source`` (a path or ``path at rev``), with a fix as hint.

    ``damage`` is a :class:`DamagedData`, another exception that refused the bytes
    (e.g. a UnicodeDecodeError), or a reason that follows the file's name.
    """
    if isinstance(damage, DamagedData):
        text = damage.describe(source)
    elif isinstance(damage, Exception):
        text = f"{source} cannot be read: {describe(damage)}"
    else:
        text = f"{source} {damage}"
    return CorruptFileError(text, hint or _RESTORE_HINT.replace("FILE", source))


def restore_hint(path: str, commit: str | None = None) -> str:
    """How to fix a damaged ledger file ``path`` of the working tree or of ``commit``."""
    rerun = " or re-run its cell (`evalledger run --force`)" if path.startswith("metrics/") else ""
    if commit is None:
        return f"restore it with `git checkout -- {path}`{rerun}, or fix it by hand"
    return (
        f"commit {commit[:7]} holds it damaged; restore a good copy "
        f"(`git checkout <good commit> -- {path}`){rerun} and commit it"
    )


def warn_skipped(error: CorruptFileError, consequence: str = "that file is left out") -> None:
    """Say, as a warning, that a damaged file was read around, and what it costs."""
    text = f"{error.message}; {consequence}"
    if error.hint:
        text += f" ({error.hint})"
    warnings.warn(text, CorruptFileWarning, stacklevel=2)


def check_size(size: int, max_bytes: int) -> None:
    """DamagedData when ``size`` bytes is over the bound."""
    if size > max_bytes:
        raise DamagedData(
            f"{{source}} is {size / _MIB:.1f} MiB, over the {max_bytes // _MIB} MiB that "
            "evalledger reads for such a file"
        )


def read_bounded(path: Path, max_bytes: int, source: str | None = None) -> bytes:
    """A file's bytes, refused unread (CorruptFileError) when over ``max_bytes``.

    FileNotFoundError passes through for the caller to word.
    """
    with open(path, "rb") as fh:
        try:
            check_size(os.fstat(fh.fileno()).st_size, max_bytes)
        except DamagedData as exc:
            raise corrupt_file(source or str(path), exc, _size_hint(source or str(path))) from None
        return fh.read(max_bytes + 1)


def _size_hint(source: str) -> str:
    return f"evalledger never writes {source} this large; restore a good copy from git"


def _text(data: str | bytes) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DamagedData(
            f"{{source}} is not UTF-8 text (bad byte at offset {exc.start})"
        ) from None


def parse_yaml(
    data: str | bytes, *, max_bytes: int = MAX_YAML_MANIFEST_BYTES, unique_keys: bool = False
) -> Any:
    """A YAML document as plain data; DamagedData for anything :func:`load_yaml` refuses."""
    import yaml

    check_size(len(data), max_bytes)
    text = _text(data)
    loader = _loader_class(unique_keys)(data)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        # An alias needs a literal `*`; without one the walk only measures the depth.
        _check_nodes(node, aliases="*" in text)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _yaml_damage(exc) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        if isinstance(exc, DamagedData):
            raise
        raise DamagedData(f"invalid YAML in {{source}}: {type(exc).__name__}: {exc}") from None
    finally:
        loader.dispose()


def _yaml_damage(exc: Exception) -> DamagedData:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = "{source}" if mark is None else f"{{source}} line {mark.line + 1}"
    return DamagedData(f"invalid YAML in {where}: {' '.join(str(problem).split())}")


_LOADERS: dict[bool, Any] = {}


def _loader_class(unique_keys: bool) -> Any:
    """The libyaml safe loader; with ``unique_keys``, refusing duplicate keys as DVC does."""
    if unique_keys in _LOADERS:
        return _LOADERS[unique_keys]
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    if not unique_keys:
        _LOADERS[False] = base
        return base

    class UniqueKeyLoader(base):  # type: ignore[valid-type,misc]
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    _LOADERS[True] = UniqueKeyLoader
    return UniqueKeyLoader


def _check_nodes(root: Any, *, aliases: bool) -> None:
    """Refuse a composed document that nests too deep or reuses a node (an alias).

    libyaml composes an alias as the very node it names, so an alias is a node met
    twice. The walk goes level by level, which costs a few percent of the load.
    """
    from yaml.nodes import MappingNode, SequenceNode

    level, depth, seen = [root], 0, set[int]()
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            mark = level[0].start_mark
            raise DamagedData(
                f"{{source}} nests deeper than {MAX_DEPTH} levels (line {mark.line + 1}); "
                "evalledger never writes such a file"
            )
        if aliases:
            before = len(seen)
            seen.update(map(id, level))
            if len(seen) != before + len(level):
                raise DamagedData(_alias_reason(root))
        deeper: list[Any] = []
        for node in level:
            cls = node.__class__
            if cls is MappingNode:
                for key, value in node.value:
                    deeper.append(key)
                    deeper.append(value)
            elif cls is SequenceNode:
                deeper += node.value
        level = deeper


def _alias_reason(root: Any) -> str:
    """Why a document that reuses a node is refused, naming the line of that node."""
    seen: set[int] = set()
    stack, line = [root], None
    while stack:
        node = stack.pop()
        if id(node) in seen:
            line = node.start_mark.line + 1
            break
        seen.add(id(node))
        if isinstance(node.value, list):
            for child in node.value:
                stack.extend(child if isinstance(child, tuple) else (child,))
    where = f" (of the node at line {line})" if line else ""
    return (
        f"{{source}} uses a YAML alias{where}, which evalledger refuses: aliases can expand "
        "without bound; write the values out"
    )


def load_yaml(
    data: str | bytes,
    source: str,
    *,
    max_bytes: int = MAX_YAML_MANIFEST_BYTES,
    unique_keys: bool = False,
    hint: str | None = None,
) -> Any:
    """Parse a YAML document from ``source`` (a path or ``path at rev``, shown in errors).

    Refused with a CorruptFileError: more than ``max_bytes``, bytes that are not UTF-8,
    aliases, nesting deeper than :data:`MAX_DEPTH`, and invalid YAML.
    """
    try:
        return parse_yaml(data, max_bytes=max_bytes, unique_keys=unique_keys)
    except DamagedData as exc:
        raise corrupt_file(source, exc, hint) from None


def parse_json(data: str | bytes, *, max_bytes: int = MAX_METRICS_BYTES) -> Any:
    """A JSON document as plain data; DamagedData for anything :func:`load_json` refuses."""
    check_size(len(data), max_bytes)
    text = _text(data)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DamagedData(f"invalid JSON in {{source}} line {exc.lineno}: {exc.msg}") from None
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise DamagedData(f"invalid JSON in {{source}}: {exc}") from None
    # Fewer brackets than the bound cannot nest past it: most files need no walk.
    if text.count("[") + text.count("{") > MAX_DEPTH:
        _check_depth(value)
    return value


def parse_json_objects(
    datas: list[bytes], *, max_bytes: int = MAX_METRICS_BYTES
) -> list[dict[str, Any] | None]:
    r"""Many JSON documents parsed in one ``json`` call: each one's object, or None.

    None is no verdict: that file is to go through :func:`parse_json` alone (it may be
    damaged, not an object, too large, or bracket-heavy enough to need the depth walk).
    An object given here is the one :func:`parse_json` gives for that text. One call
    costs a fraction of one a file, and its scanner keeps one copy of each key for all
    (thousands of metrics files name the same few).

    The texts are parsed together by :func:`loads_batch`; one damaged text sends every
    text to be parsed alone.
    """
    kept: list[str] = []
    fit: list[bool] = []
    for data in datas:
        try:
            text = data.decode("utf-8") if len(data) <= max_bytes else ""
        except UnicodeDecodeError:
            text = ""
        ok = bool(text) and text.count("[") + text.count("{") <= MAX_DEPTH
        fit.append(ok)
        if ok:
            kept.append(text)
    out: list[dict[str, Any] | None] = [None] * len(datas)
    parsed = loads_batch(kept) if kept else None
    if parsed is None:
        return out
    values = iter(parsed)
    for i, ok in enumerate(fit):
        if ok and type(value := next(values)) is dict:
            out[i] = value
    return out


def loads_batch(texts: list[str]) -> list[Any] | None:
    r"""Each text's JSON value, all parsed in one ``json`` call; None if any is not one.

    Each text goes in as ``["<nonce>",\n<text>\n]``, ``nonce`` random per call: a text
    that is not one JSON value cannot shift the boundaries without writing a nonce it
    cannot know, so when all N elements come back as ``[nonce, value]``, each value is
    exactly its text's. Anything else is None: parse the texts one by one.
    """
    nonce = secrets.token_hex(16)
    if not texts or any(nonce in text for text in texts):
        return None
    head = f'["{nonce}",\n'
    try:
        pairs = json.loads(f"[{head}" + f"\n],{head}".join(texts) + "\n]]")
    except (ValueError, RecursionError):
        return None
    if type(pairs) is not list or len(pairs) != len(texts):
        return None
    values = []
    for pair in pairs:
        if type(pair) is not list or len(pair) != 2 or pair[0] != nonce:
            return None
        values.append(pair[1])
    return values


def parse_json_or_yaml(
    data: str | bytes, *, max_bytes: int = MAX_MANIFEST_BYTES, check_depth: bool = True
) -> Any:
    """A YAML document that may be written in JSON's syntax (YAML includes it).

    A document that is one JSON object, followed by nothing but comment lines, is read
    by ``json``, about a hundred times faster than by libyaml into Python objects; any
    other text, or JSON with ``NaN`` (a string to YAML), goes to :func:`parse_yaml`, so
    the data and the refusals are the same either way. Without ``check_depth`` a JSON
    document's nesting is left to the caller (:func:`check_depth`), who may know that
    most of it is flat.
    """
    check_size(len(data), max_bytes)
    text = _text(data)
    start = len(text) - len(text.lstrip())
    if text[start : start + 1] == "{":
        try:
            value, end = _JSON_DOCUMENT.raw_decode(text, start)
        except (ValueError, RecursionError):
            pass
        else:
            rest = text[end:].split("\n")
            if all(not line.strip() or line.lstrip().startswith("#") for line in rest):
                if check_depth and text.count("[") + text.count("{") > MAX_DEPTH:
                    _check_depth(value)
                return value
    return parse_yaml(data, max_bytes=min(max_bytes, MAX_YAML_MANIFEST_BYTES))


def _not_yaml_constant(name: str) -> Any:
    raise ValueError(f"{name} is a string in YAML")


_JSON_DOCUMENT = json.JSONDecoder(parse_constant=_not_yaml_constant)


def _too_deep() -> DamagedData:
    return DamagedData(
        f"{{source}} nests deeper than {MAX_DEPTH} levels; evalledger never writes such a file"
    )


def check_depth(value: Any) -> None:
    """DamagedData when parsed data nests deeper than :data:`MAX_DEPTH` levels."""
    _check_depth(value)


def _check_depth(value: Any) -> None:
    level, depth = [value], 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise _too_deep()
        deeper: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                deeper += item.values()
            elif isinstance(item, list):
                deeper += item
        level = deeper


def load_json(
    data: str | bytes,
    source: str,
    *,
    max_bytes: int = MAX_METRICS_BYTES,
    hint: str | None = None,
) -> Any:
    """Parse a JSON document from ``source`` (a path or ``path at rev``, shown in errors).

    Refused with a CorruptFileError: more than ``max_bytes``, bytes that are not UTF-8,
    nesting deeper than :data:`MAX_DEPTH`, and invalid JSON.
    """
    try:
        return parse_json(data, max_bytes=max_bytes)
    except DamagedData as exc:
        raise corrupt_file(source, exc, hint) from None
