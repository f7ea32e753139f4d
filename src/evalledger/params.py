"""Reading, validating and overriding ``params.yaml``, the definition of the matrix.

``params.yaml`` holds the axes (``axes:``), one section per axis that defines each axis
value (``models:``, ``benchmarks:``, ...), and run settings (``run:``). Reads use the
libyaml loader through :mod:`evalledger.safeload` (bounded, no aliases) for speed; edits
go through ruamel.yaml's round-trip mode so comments and formatting survive, and ruamel
only ever parses text that the safe loader accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalledger.atomic import atomic_write
from evalledger.errors import ConfigError
from evalledger.metrics import Directions
from evalledger.names import check_name, did_you_mean
from evalledger.runsettings import RunSettings, parse_run_settings
from evalledger.secret_keys import is_secret_key, refuse_secrets

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

__all__ = [
    "AXES",
    "AXIS_ORDER",
    "MatrixSpec",
    "RunSettings",
    "apply_overrides",
    "axis_section",
    "blame_overrides",
    "canonical_axes",
    "checked_params_text",
    "entry_kinds",
    "is_secret_key",
    "load_params",
    "override_params",
    "parse_spec",
    "plain_data",
]

#: Known axes and the params.yaml section that defines each axis value.
AXES: dict[str, str] = {
    "model": "models",
    "benchmark": "benchmarks",
    "prompt_set": "prompt_sets",
    "decoding": "decodings",
}
AXIS_ORDER = tuple(AXES)
REQUIRED_AXES = ("model", "benchmark")
# No leading "_": metrics/_<name>/ folders are reserved for evalledger's own files.
_TOP_LEVEL = {"axes", "run", "judges", "metrics", *AXES.values()}
_RESERVED = {"axes", "run", "judges", "metrics"}
_AXIS_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def axis_section(axis: str) -> str:
    """The params.yaml section that defines an axis's values: ``models`` for ``model``.

    A built-in axis has its own; any other axis ``<name>`` is defined by ``<name>s``
    (``condition`` by ``conditions:``, ``agent_config`` by ``agent_configs:``).
    """
    return AXES.get(axis, f"{axis}s")


def canonical_axes(names: Iterable[str]) -> list[str]:
    """Axis names in canonical order: built-ins first, then the others as given.

    The built-ins go model, benchmark, prompt_set, decoding; any other axis follows in
    params.yaml's order. This is the order of a cell's path and stage name.
    """
    given = list(dict.fromkeys(names))
    return [a for a in AXIS_ORDER if a in given] + [a for a in given if a not in AXES]


@dataclass(frozen=True)
class MatrixSpec:
    """The validated content of params.yaml."""

    axes: dict[str, list[str]]
    sections: dict[str, dict[str, dict[str, Any]]]
    run: RunSettings
    raw: dict[str, Any] = field(repr=False)
    judges: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Models that grade outputs (LLM-as-judge), by name; same settings as ``models:``."""
    prompt_files: bool = False
    """The prompt sets read their prompts from ``prompts/`` (``from: files``)."""

    @property
    def stage_options(self) -> tuple[bool, bool, bool]:
        """What else the eval stage depends on: judges, prompt files, ``run.repeats``."""
        run = self.raw.get("run")
        return bool(self.judges), self.prompt_files, isinstance(run, dict) and "repeats" in run

    @property
    def axis_names(self) -> list[str]:
        """Axis names in canonical order (the order of stage names and paths)."""
        return canonical_axes(self.axes)

    def value_config(self, axis: str, value: str) -> dict[str, Any]:
        """The params.yaml entry that defines ``value`` on ``axis``."""
        return self.sections[axis_section(axis)][value]

    def judge_name(self, benchmark: str) -> str | None:
        """The judge model a benchmark's scorer names, if it uses the ``judge`` scorer."""
        scorer = self.value_config("benchmark", benchmark).get("scorer")
        if isinstance(scorer, dict) and scorer.get("name") == "judge":
            model = scorer.get("model")
            return str(model) if model is not None else None
        return None

    def judge_config(self, name: str, where: str) -> dict[str, Any]:
        """A judge's model settings: from ``judges:``, else from ``models:``."""
        if name in self.judges:
            return self.judges[name]
        if name in self.sections["models"]:
            return self.sections["models"][name]
        known = ", ".join([*self.judges, *self.sections["models"]]) or "none"
        raise ConfigError(
            f"unknown judge model {name!r} in {where}; known: {known}",
            "define it under 'judges:' in params.yaml",
        )


def _params_text(path: Path) -> str:
    """params.yaml's text: refused unread when over the size bound, and UTF-8 only."""
    from evalledger.errors import CorruptFileError
    from evalledger.safeload import MAX_PARAMS_BYTES, DamagedData, check_size, read_bounded

    try:
        data = read_bounded(path, MAX_PARAMS_BYTES, path.name)
    except FileNotFoundError:
        raise ConfigError(
            f"{path} not found", "run `evalledger init` to create a project"
        ) from None
    except CorruptFileError as exc:
        raise ConfigError(exc.message, "params.yaml defines the matrix; keep data in "
                          "benchmark files, or restore it with `git checkout -- params.yaml`"
                          ) from None  # fmt: skip
    try:
        check_size(len(data), MAX_PARAMS_BYTES)  # grew while it was read
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path.name} is not UTF-8 text (bad byte at offset {exc.start})",
            "save it as UTF-8, or restore it with `git checkout -- params.yaml`",
        ) from None
    except DamagedData as exc:
        raise ConfigError(exc.describe(path.name)) from None


def _parse_params(text: str, path: Path) -> dict[str, Any]:
    """params.yaml's data: safe YAML (no aliases, bounded depth) without duplicate keys."""
    from evalledger.safeload import MAX_PARAMS_BYTES, DamagedData, parse_yaml

    try:
        data: Any = parse_yaml(text, max_bytes=MAX_PARAMS_BYTES, unique_keys=True)
    except DamagedData as exc:
        raise ConfigError(exc.describe(path.name), "fix it and run again") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name} must be a mapping at the top level")
    return data


def checked_params_text(path: Path) -> str:
    """params.yaml's text once the safe loader accepts it, for a round-trip parser.

    ruamel.yaml expands aliases and recurses without bound, so every round-trip edit of
    params.yaml starts here.
    """
    text = _params_text(path)
    _parse_params(text, path)
    return text


def load_params(path: Path) -> dict[str, Any]:
    """Parse params.yaml into plain data, with a one-line error for bad YAML.

    Refused: over 1 MiB (:data:`~evalledger.safeload.MAX_PARAMS_BYTES`), not UTF-8,
    YAML aliases, nesting deeper than 100 levels, duplicate keys.
    """
    return _parse_params(_params_text(path), path)


def _check_name(kind: str, name: Any) -> str:
    return check_name(f"{kind} name", name, numbers=True)


def parse_spec(data: dict[str, Any]) -> MatrixSpec:
    """Validate params data and return the matrix it defines."""
    import difflib

    # Other sections are the user's own knobs (a `train:` stage's params, say); only a
    # near-miss of one of ours is refused, since it is almost surely a typo.
    custom = set(entry_kinds(data)) - _TOP_LEVEL
    for name in sorted(set(data) - _TOP_LEVEL - custom):
        close = difflib.get_close_matches(str(name), sorted(_TOP_LEVEL), n=1, cutoff=0.75)
        if close:
            raise ConfigError(
                f"unknown section {name!r} in params.yaml; did you mean {close[0]!r}?",
                f"rename it, or give your own section a name unlike {close[0]!r}",
            )
    refuse_secrets(data)
    Directions.from_params(data)  # a bad `metrics:` direction is refused before any run
    axes_raw = data.get("axes")
    if not isinstance(axes_raw, dict) or not axes_raw:
        raise ConfigError(
            "params.yaml has no 'axes:' mapping, so the matrix is empty",
            "add axes.model and axes.benchmark lists",
        )
    axes: dict[str, list[str]] = {}
    for axis, values in axes_raw.items():
        if axis not in AXES and not (
            isinstance(axis, str) and _AXIS_NAME.fullmatch(axis)
            and axis_section(axis) not in _RESERVED and axis not in _RESERVED
        ):  # fmt: skip
            raise ConfigError(
                f"bad axis name {axis!r} in params.yaml",
                "an axis is lowercase letters, digits and _ (e.g. condition), defined by "
                f"a section of its plural name; built-in axes: {', '.join(AXIS_ORDER)}",
            )
        if values is None or values == []:
            raise ConfigError(
                f"empty matrix: axes.{axis} has no values",
                f"list at least one {axis} under axes.{axis}",
            )
        if not isinstance(values, list):
            raise ConfigError(f"axes.{axis} must be a list, got {type(values).__name__}")
        names = [_check_name(axis, v) for v in values]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise ConfigError(f"axes.{axis} lists {dup!r} twice", "remove the duplicate")
        axes[axis] = names
    for axis in REQUIRED_AXES:
        if axis not in axes:
            raise ConfigError(
                f"empty matrix: params.yaml has no axes.{axis}",
                f"add axes.{axis} with at least one {axis}",
            )
    sections: dict[str, dict[str, dict[str, Any]]] = {}
    for axis in [*AXES, *(a for a in axes if a not in AXES)]:
        section = axis_section(axis)
        if axis not in AXES and section not in data:
            values = ", ".join(axes[axis])
            raise ConfigError(
                f"axes.{axis} lists {values}, but params.yaml has no '{section}:' section",
                f"define each {axis} under '{section}:' (an empty mapping is enough: "
                f"{section}: {{{axes[axis][0]}: {{}}}})",
            )
        entries = data.get(section) or {}
        if not isinstance(entries, dict):
            raise ConfigError(f"'{section}:' in params.yaml must be a mapping of names")
        clean: dict[str, dict[str, Any]] = {}
        for name, cfg in entries.items():
            name = _check_name(axis, name)
            if cfg is None:
                cfg = {}
            if not isinstance(cfg, dict):
                raise ConfigError(f"{section}.{name} must be a mapping of settings")
            clean[name] = cfg
        sections[section] = clean
        for value in axes.get(axis, []):
            if value not in clean:
                known = ", ".join(clean) or "none"
                raise ConfigError(
                    f"unknown {axis} {value!r} in axes.{axis}; known: {known}",
                    f"define it under '{section}:' or fix the name",
                )
    settings = parse_run_settings(data.get("run"), sections)
    judges = data.get("judges") or {}
    if not isinstance(judges, dict) or not all(isinstance(v, dict) for v in judges.values()):
        raise ConfigError("'judges:' in params.yaml must map judge names to model settings")
    return MatrixSpec(
        axes=axes, sections=sections, run=settings, raw=data,
        judges={_check_name("judge", k): v for k, v in judges.items()},
        prompt_files=_prompt_files(axes, sections["prompt_sets"]),
    )  # fmt: skip


def _prompt_files(axes: dict[str, list[str]], prompt_sets: dict[str, dict[str, Any]]) -> bool:
    """Whether the matrix's prompt sets come from files; all of them or none may."""
    used = axes.get("prompt_set", [])
    for name in used:
        source = prompt_sets[name].get("from")
        if source not in (None, "files"):
            raise ConfigError(f"prompt_sets.{name}.from must be 'files', not {source!r}",
                              "leave it out for an inline template")  # fmt: skip
        if source == "files" and "template" in prompt_sets[name]:
            raise ConfigError(f"prompt_sets.{name} has both 'from: files' and a template",
                              f"keep one: the template or prompts/{name}/user.md")  # fmt: skip
    files = [n for n in used if prompt_sets[n].get("from") == "files"]
    if files and len(files) != len(used):
        inline = next(n for n in used if n not in files)
        raise ConfigError(
            f"prompt set {files[0]!r} reads files but {inline!r} does not",
            "in one matrix every prompt set has 'from: files' or none has: each cell's "
            "prompt files are deps of dvc.yaml's one eval stage",
        )
    return bool(files)


def plain_data(node: Any) -> Any:
    """Plain dicts and lists from ruamel.yaml's round-trip nodes."""
    if isinstance(node, dict):
        return {str(k): plain_data(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain_data(v) for v in node]
    return node


def _parse_override(text: str) -> tuple[list[str], Any, bool]:
    """An override's key path, its value (YAML), and whether it adds a key (``+key``)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip().lstrip("+"):
        raise ConfigError(f"bad override {text!r}", "write it as -S key.path=value")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    key = key.strip()
    adds = key.startswith("+")
    return key.lstrip("+").split("."), parsed, adds


#: The kinds of entries each section defines, for messages.
_ENTRY_KINDS = {**{section: axis for axis, section in AXES.items()}, "judges": "judge"}


def entry_kinds(data: dict[str, Any]) -> dict[str, str]:
    """Section -> the kind of entry it defines, this params.yaml's own axes included."""
    axes = data.get("axes")
    custom = [str(a) for a in axes if a not in AXES] if isinstance(axes, dict) else []
    return {**_ENTRY_KINDS, **{axis_section(a): a for a in custom}}


def _used_entries(data: dict[str, Any], section: str) -> set[str]:
    """The entries of a section the matrix uses: on its axis, or named as a judge."""
    axes = data.get("axes")
    used: set[str] = set()
    axis = entry_kinds(data)[section]
    if isinstance(axes, dict) and isinstance(axes.get(axis), list):
        used |= {str(v) for v in axes[axis]}
    if section in ("models", "judges"):
        for cfg in (data.get("benchmarks") or {}).values():
            scorer = cfg.get("scorer") if isinstance(cfg, dict) else None
            if isinstance(scorer, dict) and scorer.get("model") is not None:
                used.add(str(scorer["model"]))
    return used


def _check_override_key(
    original: dict[str, Any], new: dict[str, Any], keys: list[str], adds: bool, text: str
) -> None:
    """Refuse an override naming a section or an entry that params.yaml does not have.

    A new entry is accepted when the overrides also put it to use (``-S axes.model=[a,new]``)
    or when the key says it adds one (``+models.new.adapter=...``, as in DVC's ``-S``).
    """
    top = keys[0]
    kinds = entry_kinds(new)
    if top not in original and top not in _TOP_LEVEL and top not in kinds and not adds:
        known = [*sorted(_TOP_LEVEL), *(str(k) for k in original if k not in _TOP_LEVEL)]
        raise ConfigError(
            f"unknown key {top!r} in -S {text}",
            f"{did_you_mean(top, known)}top-level sections: {', '.join(known)}; "
            f"write +{'.'.join(keys)}=... to add a section of your own",
        )
    if top not in kinds or len(keys) < 2 or adds:
        return
    entries = original.get(top)
    known = [str(k) for k in entries] if isinstance(entries, dict) else []
    name = keys[1]
    if name in known or name in _used_entries(new, top):
        return
    kind = kinds[top]
    raise ConfigError(
        f"unknown {kind} {name!r} in -S {text}",
        f"{did_you_mean(name, known)}{top}: {', '.join(known) or 'none'}",
    )


def blame_overrides(exc: ConfigError, overrides: list[str]) -> ConfigError:
    """``exc`` prefixed with the ``-S`` override it is about, if one is named in it.

    An override is about the error when its key and a dotted path of the message are one
    the prefix of the other (``models.noisy`` and ``-S models.noisy.error_rate=7``).
    """
    import re

    if "-S " in exc.message:
        return exc
    paths = [t.rstrip(".:") for t in re.findall(r"[\w.-]+\.[\w.-]+", exc.message)]
    for text in overrides:
        key = text.partition("=")[0].strip().lstrip("+")
        if any(key == p or key.startswith(p + ".") or p.startswith(key + ".") for p in paths):
            # "-S k=v: k: bad" says k twice: "-S k=v: bad" is enough.
            message = exc.message.removeprefix(f"{key}: ")
            return ConfigError(f"-S {text}: {message}", exc.hint)
    return exc


def override_params(path: Path, overrides: list[str]) -> tuple[str, dict[str, Any]]:
    """params.yaml's text with ``key.path=value`` overrides applied, comments kept.

    Returns the new text and its parsed data, validated in memory (:func:`parse_spec`,
    and every override's section and entry known); nothing is written. ``+key=value``
    adds a key params.yaml does not have, as in DVC's ``-S``.
    """
    import io

    from ruamel.yaml import YAML

    text = _params_text(path)
    data = _parse_params(text, path)  # ruamel below only ever sees safe YAML
    if not overrides:
        parse_spec(data)
        return text, data
    yaml_rt = YAML()
    yaml_rt.preserve_quotes = True
    doc = yaml_rt.load(text) or {}
    parsed = [(item, *_parse_override(item)) for item in overrides]
    for _, keys, value, _ in parsed:
        node = doc
        for k in keys[:-1]:
            if k not in node or not isinstance(node[k], dict):
                node[k] = {}
            node = node[k]
        node[keys[-1]] = value
    buf = io.StringIO()
    yaml_rt.dump(doc, buf)
    new = _reload(buf.getvalue())
    refuse_secrets(new)  # first: the messages below quote the overrides
    for item, keys, _, adds in parsed:
        _check_override_key(data, new, keys, adds, item)
    try:
        parse_spec(new)
    except ConfigError as exc:
        raise blame_overrides(exc, overrides) from None
    return buf.getvalue(), new


def apply_overrides(path: Path, overrides: list[str]) -> None:
    """Write ``key.path=value`` overrides into params.yaml, keeping its comments.

    This is what ``dvc exp run -S`` does, and it keeps dvc.lock consistent: the params
    that DVC records for each cell are the ones the cell ran with.
    """
    if overrides:
        text, _ = override_params(path, overrides)
        atomic_write(path, text)


def _reload(text: str) -> dict[str, Any]:
    from evalledger.safeload import parse_yaml

    try:
        data = parse_yaml(text)
    except ValueError as exc:  # an override made it so (e.g. a value nested too deep)
        raise ConfigError(f"params.yaml with the overrides: {exc}") from None
    return data if isinstance(data, dict) else {}
