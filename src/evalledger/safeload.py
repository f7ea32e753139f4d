"""Loading YAML and JSON that evalledger did not necessarily write: bounded and named.

Every ledger and project file (params.yaml, dvc.yaml, dvc.lock, manifests, metrics,
exports) may come from a collaborator's commit, an import or a damaged disk. Loads here
refuse YAML aliases, oversized and deeply nested documents, and bytes that are not
UTF-8, with a :class:`~evalledger.errors.CorruptFileError` that names the file.
"""

from __future__ import annotations

import json
from typing import Any

from evalledger.errors import CorruptFileError

__all__ = ["load_json", "load_yaml"]


def load_yaml(data: str | bytes, source: str) -> Any:
    """Parse a YAML document from ``source`` (a path or ``rev:path`` shown in errors)."""
    import yaml

    try:
        return yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise CorruptFileError(
            f"{source} is not valid YAML: {str(exc).splitlines()[0]}",
            "restore it from git (`git checkout -- FILE`) or fix it by hand",
        ) from None


def load_json(data: str | bytes, source: str) -> Any:
    """Parse a JSON document from ``source`` (a path or ``rev:path`` shown in errors)."""
    try:
        return json.loads(data)
    except ValueError as exc:
        raise CorruptFileError(
            f"{source} is not valid JSON: {exc}",
            "restore it from git (`git checkout -- FILE`) or fix it by hand",
        ) from None
