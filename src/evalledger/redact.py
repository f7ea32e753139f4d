"""Redaction of secrets from anything evalledger writes (configs, environments)."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["REDACTED", "redact"]

REDACTED = "<redacted>"
_SECRET_KEY = re.compile(
    r"(^|[_.-])(api_?key|key|token|secret|password|passwd|credentials?|auth)($|[_.-])",
    re.IGNORECASE,
)
# A key that *names* an environment variable holds no secret itself.
_NAMES_A_VAR = re.compile(r"_(env|var|env_var)$", re.IGNORECASE)
_SECRET_VALUE = re.compile(
    r"^(sk-[A-Za-z0-9_-]{16,}|ghp_[A-Za-z0-9]{20,}|gho_[A-Za-z0-9]{20,}|hf_[A-Za-z0-9]{20,}"
    r"|xox[abpr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\..*)$"
)


def redact(data: Any) -> Any:
    """A copy of ``data`` with values of secret-looking keys and token-like strings hidden."""
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            if (
                isinstance(k, str)
                and _SECRET_KEY.search(k)
                and not _NAMES_A_VAR.search(k)
                and isinstance(v, str | int | float)
                and v != ""
            ):
                out[k] = REDACTED
            else:
                out[k] = redact(v)
        return out
    if isinstance(data, list):
        return [redact(v) for v in data]
    if isinstance(data, str) and _SECRET_VALUE.match(data):
        return REDACTED
    return data
