"""Secrets in params.yaml: refused, since DVC copies params into dvc.lock and git keeps them.

A secret is a value that looks like one (what :func:`evalledger.redact.contains_secret`
finds: a token, a password in a URL...) or a value under a well-known secret's name
(:func:`is_secret_key`: ``api_key``, ``token``, ``password``, ``client_secret``...). Inside
a ``headers:`` or ``query:`` mapping, credential parameters (``code``, ``sig``,
``Cookie``...) count too. A name that merely ends in "key" (``nosuchkey``, ``sort_key``)
is no secret's: such a key is judged by the rest of the validation, as any other.
"""

from __future__ import annotations

import re
from typing import Any

from evalledger.errors import ConfigError

__all__ = ["is_secret_key", "refuse_secrets", "secret_path"]

#: Words that make a key name a secret's (``DB_PASSWORD``, ``hf_token``, ``authToken``).
_SECRET_WORDS = frozenset({
    "token", "secret", "secrets", "password", "passwd", "pwd", "passphrase", "credential",
    "credentials", "auth", "authorization", "cookie", "cookies", "apikey", "bearer",
})  # fmt: skip
#: ``<word> key`` is a secret's name for these words (``api_key``, ``secretKey``...).
_KEY_QUALIFIERS = frozenset({
    "api", "access", "secret", "private", "auth", "client", "signing", "encryption",
    "master", "session", "license", "subscription", "account", "service",
})  # fmt: skip
_WORD_RE = r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+"
#: A key that *names* where a secret is (a variable, a header) holds none.
_NAMES_A_VAR = r"[_.-](env|var|env_var|header|name)$"


def is_secret_key(name: str) -> bool:
    """Whether a params.yaml key is a well-known secret's name (``api_key``, ``token``...).

    Narrower than :func:`evalledger.redact.is_secret_name`, which redacts any name with a
    word ending in ``key``: refusing ``nosuchkey`` or ``sort_key`` would be wrong words.
    """
    if re.search(_NAMES_A_VAR, name, re.IGNORECASE):
        return False
    words = [w.lower() for w in re.findall(_WORD_RE, name)]
    for i, word in enumerate(words):
        if word in _SECRET_WORDS or word.endswith(("token", "password", "passwd", "secret")):
            return True
        if word == "key" and i > 0 and words[i - 1] in _KEY_QUALIFIERS:
            return True
        if word.endswith("key") and word[:-3] in _KEY_QUALIFIERS:
            return True
    return False


def secret_path(data: Any, path: str = "", mapping: str | None = None) -> str | None:
    """The first path of a secret in params data: a secret's value or a secret's name."""
    from evalledger.redact import contains_secret, is_secret_parameter

    if isinstance(data, dict):
        parameters = mapping is not None and mapping.lower() in _PARAMETER_MAPPINGS
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            named = isinstance(key, str) and (
                is_secret_parameter(key) if parameters else is_secret_key(key)
            )
            scalar = isinstance(value, str | int | float) and not isinstance(value, bool)
            if named and scalar and value != "":
                return where
            found = secret_path(value, where, key if isinstance(key, str) else None)
            if found:
                return found
    elif isinstance(data, list | tuple):
        for i, value in enumerate(data):
            found = secret_path(value, f"{path}[{i}]")
            if found:
                return found
    elif isinstance(data, str) and contains_secret(data):
        return path
    return None


#: Mappings whose keys are query parameters or HTTP headers (``code``, ``sig`` are secrets).
_PARAMETER_MAPPINGS = frozenset({"query", "params", "query_params", "headers", "extra_headers"})


def refuse_secrets(data: dict[str, Any]) -> None:
    """A secret in params.yaml would be copied into dvc.lock and git history: refuse it.

    A secret is a value that looks like one (a token, a password in a URL...) or a value
    under a well-known secret's name (:func:`is_secret_key`).
    """
    leak = secret_path(data)
    if leak:
        raise ConfigError(
            f"params.yaml holds a secret at {leak}; DVC copies params into dvc.lock and "
            "git keeps them forever",
            "put it in an environment variable and name the variable instead, e.g. "
            "api_key_env: OPENAI_API_KEY",
        )
