"""Redaction of secrets from anything evalledger writes (configs, environments, commands).

Two rules, applied to everything evalledger records (params.yaml snapshots, logged
parameters, environment variables, command lines):

* **Names.** A value is hidden when its key or variable name says it is a secret: a word of
  the name is, or ends with, ``key``, ``token``, ``secret``, ``password``/``passwd``,
  ``credential(s)``, or is ``auth``/``authorization``/``pwd`` (``OPENAI_API_KEY``,
  ``HF_TOKEN``, ``apiKey``, ``DB_PASSWORD``), see :func:`is_secret_name`. ``max_tokens`` or
  ``tokenizer`` are not secrets; neither is a key that only *names* where a secret is, such
  as ``api_key_env`` or ``api_key_header``.
* **Values.** Whatever the name, a value holding a known token (``sk-...``, ``sk-ant-...``,
  ``ghp_``/``gho_``/``github_pat_...``, ``hf_...``, ``xox?-...``, ``AKIA...``, JWTs,
  ``Bearer ...``, private key blocks, ...) or a URL with a password
  (``https://user:pass@host``) is redacted, see :func:`redact_text`.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "REDACTED",
    "contains_secret",
    "is_secret_name",
    "redact",
    "redact_assignment",
    "redact_command",
    "redact_text",
    "scrub_text",
    "secret_paths",
]

REDACTED = "<redacted>"

# Words of a name: snake_case, kebab-case, dotted and camelCase parts.
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_SECRET_SUFFIXES = ("key", "token", "secret", "password", "passwd", "credential", "credentials")
_SECRET_WORDS = frozenset({"auth", "authorization", "pwd", "secrets"})
# A key that *names* where a secret is (an environment variable, a header) holds none.
_NAMES_A_VAR = re.compile(r"[_.-](env|var|env_var|header|name)$", re.IGNORECASE)

_TOKENS = (
    r"sk-[A-Za-z0-9_-]{16,}",  # OpenAI (sk-, sk-proj-), Anthropic (sk-ant-), DeepSeek, ...
    r"[sr]k_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe
    r"gh[pousr]_[A-Za-z0-9]{20,}",  # GitHub tokens
    r"github_pat_[A-Za-z0-9_]{20,}",
    r"glpat-[A-Za-z0-9_-]{20,}",  # GitLab
    r"hf_[A-Za-z0-9]{20,}",  # Hugging Face
    r"xox[abposr]-[A-Za-z0-9-]{10,}",  # Slack
    r"(?:AKIA|ASIA)[0-9A-Z]{16}",  # AWS access key IDs
    r"AIza[0-9A-Za-z_-]{35}",  # Google API keys
    r"npm_[A-Za-z0-9]{36}",
    r"pypi-[A-Za-z0-9_-]{50,}",
    r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",  # JWTs
)
_SECRET_VALUE = re.compile(
    r"(?<![A-Za-z0-9])(?:" + "|".join(_TOKENS) + r")"
    r"|\b[Bb]earer\s+[A-Za-z0-9._~+/=-]{16,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"
)
# scheme://user:password@host -- the password part.
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*:)([^\s/?#@]+)(@)")


def is_secret_name(name: str) -> bool:
    """Whether a key or variable called ``name`` holds a secret (see the module doc)."""
    if _NAMES_A_VAR.search(name):
        return False
    for word in _WORD.findall(name):
        w = word.lower()
        if w in _SECRET_WORDS or w.endswith(_SECRET_SUFFIXES):
            return True
    return False


def contains_secret(text: str) -> bool:
    """Whether ``text`` holds a known token pattern or a URL with a password."""
    return bool(_SECRET_VALUE.search(text) or _URL_PASSWORD.search(text))


def redact_text(text: str) -> str:
    """``text`` with each token replaced and URL passwords hidden; the rest kept.

    ``Bearer sk-...`` becomes ``<redacted>``, ``https://me:pw@host/x`` becomes
    ``https://me:<redacted>@host/x``.
    """
    text = _SECRET_VALUE.sub(REDACTED, text)
    return _URL_PASSWORD.sub(lambda m: f"{m[1]}{REDACTED}{m[3]}", text)


def redact_assignment(text: str) -> str:
    """A ``NAME=value`` string (an override, a command-line argument) with secrets hidden."""
    name, sep, value = text.partition("=")
    if sep and value and is_secret_name(name.rsplit(".", 1)[-1].lstrip("-")):
        return f"{name}={REDACTED}"
    return redact_text(text)


def redact_command(argv: list[str]) -> list[str]:
    """A command line with secrets hidden.

    That is: ``NAME=value`` arguments with a secret name, the values of secret-named options
    (``--api-key X``, ``--token=X``) and token-looking arguments.
    """
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next and not arg.startswith("-"):
            out.append(REDACTED)
        else:
            out.append(redact_assignment(arg))
        hide_next = arg.startswith("-") and "=" not in arg and is_secret_name(arg.lstrip("-"))
    return out


def redact(data: Any) -> Any:
    """A copy of ``data`` with values of secret-named keys and secret-holding strings hidden.

    A string that holds a secret anywhere is replaced whole by ``<redacted>`` (not just its
    secret part): a snapshot value is then either exact or redacted, and ``evalledger
    revert`` restores redacted ones from params.yaml.
    """
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            if (
                isinstance(k, str)
                and is_secret_name(k)
                and isinstance(v, str | int | float)
                and not isinstance(v, bool)
                and v != ""
            ):
                out[k] = REDACTED
            else:
                out[k] = redact(v)
        return out
    if isinstance(data, list | tuple):
        return [redact(v) for v in data]
    if isinstance(data, str) and contains_secret(data):
        return REDACTED
    return data


def secret_paths(data: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the values :func:`redact` would hide, in document order."""
    found: list[str] = []

    def walk(original: Any, hidden: Any, path: str) -> None:
        if isinstance(original, dict) and isinstance(hidden, dict):
            for key, value in original.items():
                walk(value, hidden.get(key), f"{path}.{key}" if path else str(key))
        elif isinstance(original, list | tuple) and isinstance(hidden, list):
            for i, (value, masked) in enumerate(zip(original, hidden, strict=True)):
                walk(value, masked, f"{path}[{i}]")
        elif original != hidden:
            found.append(path)

    walk(data, redact(data), prefix)
    return found


def scrub_text(text: str) -> str:
    """The one redaction point for text on its way to disk, a commit message or a mirror.

    Every sink (atomic file writes, checkpoint lines, commit messages, mirrors) passes its
    text through here, so a secret that reached a value by any route (an endpoint echoing
    the key in an error, a note, an item error) is not written.
    """
    return redact_text(text)
