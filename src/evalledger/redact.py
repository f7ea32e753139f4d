"""Redaction of secrets from anything evalledger writes: the one redaction point.

:func:`scrub_text` is where every text passes on its way to a file (``atomic_write``,
checkpoint lines), a commit message or a mirror. It removes:

* **Literal secrets.** The values of the environment variables whose name says they are
  secret (below), of the variables an adapter was configured to read its key from
  (``api_key_env: MY_VAR``, see :func:`register_secret_env`), and values registered with
  :func:`register_secret`; each also JSON-escaped and URL-encoded. Values shorter than
  :data:`MIN_LITERAL` characters are not literals (they would eat ordinary words).
* **Known token patterns**: ``sk-...``, ``sk-ant-...``, ``sk_live_...``,
  ``ghp_``/``gho_``/``github_pat_...``, ``glpat-...``, ``hf_...``, ``xox?-...``,
  ``AKIA...``, ``AIza...``, ``npm_...``, ``pypi-...``, JWTs, private key blocks.
* **Credentials**: ``Bearer``/``Basic`` followed by a credential-looking word of six
  characters or more (a digit, a ``_~+/=``, mixed case, or sixteen characters), and the
  value of an ``Authorization``, ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie`` or
  ``X-Api-Key``/``Api-Key`` header in any text (``Authorization: Bearer abc123``, JSON,
  a Python dict's repr, YAML folded over lines), of any length.
* **URLs**: a password (``https://user:<redacted>@host``) and the value of a token-like
  query parameter (``?api_key=<redacted>&page=2``: a secret name below, or ``code``,
  ``sig``, ``signature``, ``session``...); the rest of the URL is kept.

Replacements stop at quotes and backslashes, so a JSON, YAML or CSV string stays one
string and the file stays parseable; header, cookie and query values also stop at commas,
semicolons and brackets. Each rule's pattern starts with a literal, which the regex engine
scans for quickly: text holding no candidate costs about one pass of memory per rule.

For structured values (params.yaml snapshots, logged parameters, environments, command
lines) two more rules apply, in :func:`redact`:

* **Names.** A value is hidden when its key or variable name says it is a secret: a word of
  the name is, or ends with, ``key``, ``token``, ``secret``, ``password``/``passwd``,
  ``credential(s)``, or is ``auth``/``authorization``/``pwd``, or its last word is
  ``cookie`` (``OPENAI_API_KEY``, ``HF_TOKEN``, ``apiKey``, ``DB_PASSWORD``,
  ``Set-Cookie``), see :func:`is_secret_name`. ``max_tokens`` or ``tokenizer`` are not
  secrets; neither is a key that only *names* where a secret is, such as ``api_key_env`` or
  ``api_key_header``. Inside a mapping named ``query``, ``params`` or ``headers``, the
  query-parameter names (``code``, ``sig``, ``signature``...) are secret too.
* **Values.** A string holding anything :func:`scrub_text` would remove is replaced whole.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus, unquote

__all__ = [
    "MIN_LITERAL",
    "REDACTED",
    "contains_secret",
    "is_secret_name",
    "is_secret_parameter",
    "redact",
    "redact_assignment",
    "redact_command",
    "redact_text",
    "register_secret",
    "register_secret_env",
    "scrub_text",
    "secret_paths",
]

REDACTED = "<redacted>"
#: Shorter values are not redacted as literals: they would eat ordinary words.
MIN_LITERAL = 8

# ------------------------------------------------------------------------------- names

# Words of a name: snake_case, kebab-case, dotted and camelCase parts.
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_SECRET_SUFFIXES = ("key", "token", "secret", "password", "passwd", "credential", "credentials")
_SECRET_WORDS = frozenset({"auth", "authorization", "pwd", "secrets"})
_SECRET_LAST_WORDS = frozenset({"cookie", "cookies"})
# A key that *names* where a secret is (an environment variable, a header) holds none.
_NAMES_A_VAR = re.compile(r"[_.-](env|var|env_var|header|name)$", re.IGNORECASE)
#: Query parameters that carry a credential although their name is not a secret name.
_QUERY_SECRETS = frozenset({
    "code", "sig", "signature", "x-amz-signature", "x-goog-signature", "session",
    "sessionid", "session_id", "sid", "jwt", "ticket", "otp", "passcode", "pass", "hmac",
})  # fmt: skip
#: Mappings whose keys are query parameters or HTTP headers.
_PARAMETER_MAPPINGS = frozenset({"query", "params", "query_params", "headers", "extra_headers"})


def is_secret_name(name: str) -> bool:
    """Whether a key or variable called ``name`` holds a secret (see the module doc)."""
    if _NAMES_A_VAR.search(name):
        return False
    words = [w.lower() for w in _WORD.findall(name)]
    if words and words[-1] in _SECRET_LAST_WORDS:
        return True
    return any(w in _SECRET_WORDS or w.endswith(_SECRET_SUFFIXES) for w in words)


def is_secret_parameter(name: str) -> bool:
    """Whether a URL query parameter or header called ``name`` carries a credential."""
    return name.lower() in _QUERY_SECRETS or is_secret_name(name)


@lru_cache(maxsize=4096)
def _is_secret_env(name: bytes) -> bool:
    return is_secret_name(os.fsdecode(name))


# ---------------------------------------------------------------------------- literals

_lock = threading.Lock()
_registered_values: set[str] = set()
_registered_envs: set[bytes] = set()  # as os.environ keeps them
# (the secret values seen last, the strings removed for them: longest first)
_literal_cache: tuple[frozenset[str], tuple[str, ...]] = (frozenset(), ())


def register_secret(value: str) -> None:
    """Redact ``value`` wherever it appears from now on (if it has ``MIN_LITERAL`` chars)."""
    if isinstance(value, str) and len(value) >= MIN_LITERAL:
        with _lock:
            _registered_values.add(value)


def register_secret_env(name: str) -> None:
    """Redact the value of environment variable ``name``, whatever its name.

    The value is read at each scrub. Adapters call this for the variable their key is
    configured to come from (``api_key_env``).
    """
    if name:
        with _lock:
            _registered_envs.add(os.fsencode(name))


def _forms(value: str) -> set[str]:
    """``value`` as it may appear in text: as is, JSON-escaped, URL-encoded."""
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    forms |= {quote(value, safe=""), quote_plus(value, safe="")}
    # A placeholder such as API_KEY=redacted would grow <redacted> at every rewrite.
    return {f for f in forms if len(f) >= MIN_LITERAL and f not in REDACTED}


def _literals() -> tuple[str, ...]:
    """The literal strings to remove now, longest first; rebuilt when the secrets change."""
    global _literal_cache
    with _lock:
        found = set(_registered_values)
        envs = set(_registered_envs)
    # os.environ decodes every entry it yields; its bytes are read as they are, and only
    # the secret values decoded (about 3 us instead of 20 for a usual environment).
    raw = getattr(os.environ, "_data", None)
    entries: Iterable[tuple[bytes, bytes]]
    if isinstance(raw, dict) and os.name == "posix":
        entries = raw.items()
    else:  # pragma: no cover - not POSIX
        entries = ((os.fsencode(k), os.fsencode(v)) for k, v in os.environ.items())
    for name, value in entries:
        if len(value) >= MIN_LITERAL and (name in envs or _is_secret_env(name)):
            text = os.fsdecode(value)
            if len(text) >= MIN_LITERAL:
                found.add(text)
    key = frozenset(found)
    cached = _literal_cache
    if cached[0] == key:
        return cached[1]
    forms: set[str] = set()
    for value in key:
        forms |= _forms(value)
    literals = tuple(sorted(forms, key=lambda f: (-len(f), f)))
    _literal_cache = (key, literals)
    return literals


# ---------------------------------------------------------------------------- patterns

# Whitespace between words, also where YAML folded a long string over lines (a newline
# and indentation; in double quotes, an escaped line break and an escaped space). Atomic:
# what follows is never whitespace, so nothing is given back, and nothing backtracks.
_GAP = r"(?>(?:[ \t]|\\?\r?\n[ \t]*(?:\\(?=[ \t]))?)+)"
_NOT_AFTER_ALNUM = "(?<![A-Za-z0-9]{lead})"
_CRED = r"[A-Za-z0-9._~+/=:%@!$*-]++"
_SCHEMES = r"(?i:bearer|basic|token|digest|negotiate|ntlm|apikey|api-key|key|jwt|dpop|sso-key)"
_AUTH_VALUE = rf"(?:{_SCHEMES}{_GAP})?(?!{_SCHEMES}\b){_CRED}"
_COOKIE_PAIR = r"[\w!#$%&*+./:=?@^`|~-]++"
_COOKIE_VALUE = rf"{_COOKIE_PAIR}(?:;[ \t]*{_COOKIE_PAIR})*+"
# After a header name: `": "` (a quoted key, whose value must be quoted too: a JSON null
# or number is left alone), `\": \"` (JSON inside JSON), `"": ""` (inside a CSV field),
# or a bare `: ` or `=`, then perhaps a quote.
_HEADER_SEP = (
    r"""(?:\\*["']{1,2}[ \t]*:[ \t]*\\*["']{1,2}"""
    rf"""|[ \t]*[:=]{_GAP}?["']?)"""
)
_QUERY_VALUE = r"""[^&#\s"'<>\\,;(){}\[\]]++"""
_QUERY_NAME = r"[\w.%\[\]-]{1,64}"


def _token(lead: str, rest: str) -> str:
    """A token pattern that starts with the literal ``lead`` and follows no letter/digit."""
    return re.escape(lead) + _NOT_AFTER_ALNUM.format(lead=re.escape(lead)) + rest


def _header(tail: str, name: str, value: str) -> str:
    """A header's ``value`` after its ``name``, scanned for by ``tail``, the name's end.

    ``tail`` starts with a literal; the look-behinds check the whole name and that no
    letter or digit comes before it (``Proxy-`` and ``Set-`` may).
    """
    check = f"(?<={name})(?<![A-Za-z0-9]{name})"
    return f"(?P<head>{tail}{check}{_HEADER_SEP})(?P<value>{value})"


def _credential_like(word: str) -> bool:
    """Whether a word after ``Bearer``/``Basic`` looks like a credential, not English."""
    if len(word) >= 16 or any(c.isdigit() or c in "_~+/=" for c in word):
        return True
    inner_upper = sum(c.isupper() for c in word[1:])
    return inner_upper >= 2 and any(c.islower() for c in word)


def _scheme_credential(m: re.Match[str]) -> str:
    return REDACTED if _credential_like(m["cred"]) else m[0]


def _query_parameter(m: re.Match[str]) -> str:
    if is_secret_parameter(unquote(m["name"])):
        return f"{m['head']}{REDACTED}"
    return m[0]


_Rule = tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]
_RULES: list[_Rule] = [
    (re.compile(p), REDACTED)
    for p in (
        _token("sk", r"(?:-[A-Za-z0-9_-]{16,}|_(?:live|test)_[A-Za-z0-9]{16,})"),  # OpenAI..
        _token("rk_", r"(?:live|test)_[A-Za-z0-9]{16,}"),  # Stripe restricted keys
        _token("gh", r"[pousr]_[A-Za-z0-9]{20,}"),  # GitHub
        _token("github_pat_", r"[A-Za-z0-9_]{20,}"),
        _token("glpat-", r"[A-Za-z0-9_-]{20,}"),  # GitLab
        _token("hf_", r"[A-Za-z0-9]{20,}"),  # Hugging Face
        _token("xox", r"[abposr]-[A-Za-z0-9-]{10,}"),  # Slack
        _token("A", r"(?:(?:KIA|SIA)[0-9A-Z]{16}|Iza[0-9A-Za-z_-]{35})"),  # AWS, Google
        _token("npm_", r"[A-Za-z0-9]{36}"),
        _token("pypi-", r"[A-Za-z0-9_-]{50,}"),
        _token("eyJ", r"[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),  # JWTs
        # A private key block. One cut short (no END line) ends where its base64 does: a
        # line break is taken only before another base64 line, a header or the END line.
        r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----"
        r"""(?:(?:Proc-Type|DEK-Info):[^\n\\"']*|\\[nrt]|[A-Za-z0-9+/= \t]"""
        r"|\r?\n(?=[ \t]*(?:[A-Za-z0-9+/=]{16}|-----END|Proc-Type|DEK-Info|\r?\n)))*"
        r"(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----)?",
    )
]
_RULES += [
    (re.compile(_header(tail, name, value)), rf"\g<head>{REDACTED}")
    for tail, name, value in (
        ("uthorization", "[Aa]uthorization", _AUTH_VALUE),  # also Proxy-Authorization
        ("UTHORIZATION", "AUTHORIZATION", _AUTH_VALUE),
        ("ookie", "[Cc]ookie", _COOKIE_VALUE),  # also Set-Cookie
        ("OOKIE", "COOKIE", _COOKIE_VALUE),
        ("pi-[Kk]ey", "[Aa]pi-[Kk]ey", _CRED),  # api-key, X-Api-Key
        ("PI-K(?:EY|ey)", "API-K(?:EY|ey)", _CRED),
    )
]
_RULES += [
    (re.compile(_token(lead, rf"{_GAP}(?P<cred>{cred}{{6,}}={{0,2}})")), _scheme_credential)
    for lead, cred in (
        ("Bearer", r"[A-Za-z0-9._~+/-]"),
        ("bearer", r"[A-Za-z0-9._~+/-]"),
        ("Basic", r"[A-Za-z0-9+/]"),
    )
]
_RULES += [
    # scheme://user:password@host: the password goes.
    (
        re.compile(r"""://(?<=[A-Za-z0-9+.-]://)(?P<user>[^\s:/?#@"'\\<>]*+):[^\s/?#@"'\\<>]++@"""),
        rf"://\g<user>:{REDACTED}@",
    ),
    (
        re.compile(rf"(?P<head>\?(?P<name>{_QUERY_NAME})=){_QUERY_VALUE}"),
        _query_parameter,
    ),
    (
        re.compile(rf"(?P<head>&(?:amp;)?(?P<name>{_QUERY_NAME})=){_QUERY_VALUE}"),
        _query_parameter,
    ),
]


# Every rule at once (a superset where a rule's function may decline): one search answers
# for a short text, faster than one per rule; over a long one, a rule at a time is faster.
_ANY_RULE = re.compile(
    "|".join(f"(?:{re.sub(r'[(][?]P<[a-z]+>', '(?:', p.pattern)})" for p, _ in _RULES)
)
# Below this length one search of the combined rules is faster than running each rule
# (measured: 6 us against 24 at 250 characters, even at about 1,500).
_SHORT_TEXT = 1024


def redact_text(text: str) -> str:
    """``text`` with the secret patterns of :func:`scrub_text` removed (not the literals).

    ``Bearer sk-...`` becomes ``<redacted>``, ``https://me:pw@host/x`` becomes
    ``https://me:<redacted>@host/x``, ``Cookie: a=1; b=2`` becomes ``Cookie: <redacted>``.
    """
    if len(text) < _SHORT_TEXT and _ANY_RULE.search(text) is None:
        return text
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)  # the same object back when nothing matched
    return text


def scrub_text(text: str) -> str:
    """The one redaction point for text on its way to disk, a commit message or a mirror.

    Every sink (atomic file writes, checkpoint lines, commit messages, mirrors) passes its
    text through here, so a secret that reached a value by any route (an endpoint echoing
    the key in an error, a note, an item error) is not written. See the module doc for
    what goes.
    """
    for literal in _literals():
        if literal in text:
            text = text.replace(literal, REDACTED)
    return redact_text(text)


def contains_secret(text: str) -> bool:
    """Whether ``text`` holds anything :func:`scrub_text` removes."""
    return scrub_text(text) != text


# -------------------------------------------------------------------- structured values


def redact_assignment(text: str) -> str:
    """A ``NAME=value`` string (an override, a command-line argument) with secrets hidden."""
    name, sep, value = text.partition("=")
    if sep and value and is_secret_name(name.rsplit(".", 1)[-1].lstrip("-")):
        return f"{name}={REDACTED}"
    return scrub_text(text)


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
    return _redact(data, None)


def _redact(data: Any, mapping_name: str | None) -> Any:
    if isinstance(data, dict):
        parameters = mapping_name is not None and mapping_name.lower() in _PARAMETER_MAPPINGS
        out = {}
        for k, v in data.items():
            named = isinstance(k, str) and (
                is_secret_parameter(k) if parameters else is_secret_name(k)
            )
            if named and isinstance(v, str | int | float) and not isinstance(v, bool) and v != "":
                out[k] = REDACTED
            else:
                out[k] = _redact(v, k if isinstance(k, str) else None)
        return out
    if isinstance(data, list | tuple):
        return [_redact(v, None) for v in data]
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
