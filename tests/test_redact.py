"""The one redaction point: what `scrub_text` removes, what it keeps, and its sinks."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import invoke, make_project
from evalledger.atomic import atomic_write
from evalledger.gitinfo import git, git_commit
from evalledger.mirrors import scrubbed
from evalledger.redact import (
    REDACTED,
    contains_secret,
    redact,
    register_secret,
    register_secret_env,
    scrub_text,
    secret_paths,
)

SHORT = "q7Rt2x"  # six characters, no token pattern: only the header and Bearer rules see it
LONGER = "plain-but-secret-42"  # no token pattern: only a literal rule sees it

# -- headers and credentials ------------------------------------------------------------

HEADER_TEXTS = {
    "plain": f"AuthenticationError: 401: Authorization: Bearer {SHORT}",
    "lower case": f"authorization: bearer {SHORT}\n",
    "upper case, env style": f"HTTP_AUTHORIZATION=Bearer {SHORT}",
    "proxy": f"Proxy-Authorization: Basic {SHORT}==",
    "json": json.dumps({"headers": {"Authorization": f"Bearer {SHORT}", "X-Trace": "1"}}),
    "json in json": json.dumps({"error": json.dumps({"Authorization": f"Bearer {SHORT}"})}),
    "python repr": repr({"Authorization": f"Token {SHORT}"}),
    "a bare credential": f"Authorization: {SHORT}",
    "cookie": f"Cookie: session={SHORT}; theme=dark",
    "set-cookie": f"Set-Cookie: id={SHORT}; Path=/; HttpOnly",
    "api key header": f"x-api-key: {SHORT}",
    "bearer alone": f"the call sent Bearer {SHORT} and failed",
    "basic alone": f"Basic {SHORT}ZXJ2==",
}


@pytest.mark.parametrize("case", sorted(HEADER_TEXTS))
def test_header_values_and_credentials_are_removed_and_the_names_kept(case: str) -> None:
    text = HEADER_TEXTS[case]
    out = scrub_text(text)
    assert SHORT not in out
    assert REDACTED in out
    for name in ("Authorization", "Cookie", "x-api-key", "X-Trace"):
        if name in text:
            assert name in out
    assert contains_secret(text)


def test_structured_texts_stay_parseable() -> None:
    record = {"id": "q-1", "error": f"401: {{'Authorization': 'Bearer {SHORT}'}}",
              "url": f"https://h/v1?api_key={SHORT}&page=2", "n": None}  # fmt: skip
    line = scrub_text(json.dumps(record))
    assert SHORT not in line
    back = json.loads(line)
    assert back["url"] == f"https://h/v1?api_key={REDACTED}&page=2" and back["n"] is None

    buf = io.StringIO()
    csv.writer(buf).writerows([["id", "error", "cluster"], ["q-1", HEADER_TEXTS["json"], "c"]])
    rows = list(csv.reader(io.StringIO(scrub_text(buf.getvalue()))))
    assert rows[1][0] == "q-1" and rows[1][2] == "c" and SHORT not in rows[1][1]

    # YAML folds a long string over lines, here between "Bearer" and the credential.
    words = " ".join(["word"] * 20)
    error = f"{words} Authorization: Bearer {SHORT} {words}"
    doc = {"notes": f"{'x' * 87} Bearer {SHORT}x1 and more", "cells": {"m/b": {"error": error}}}
    text = yaml.safe_dump(doc, width=100, sort_keys=False)
    assert f" Bearer\n  {SHORT}x1" in text  # the fold this is about
    back = yaml.safe_load(scrub_text(text))
    assert SHORT not in json.dumps(back)
    assert back["notes"] == f"{'x' * 87} {REDACTED} and more"
    assert back["cells"]["m/b"]["error"] == f"{words} Authorization: {REDACTED} {words}"


@pytest.mark.parametrize(
    "text",
    ["Send it as 'Authorization: Bearer <key>'.", "Basic arithmetic, Bearer instruments",
     "Basic JavaScript", '{"authorization": null, "cookie": 3}', "the cookie jar",
     "api_key_header: Authorization\n", "https://api.openai.com/v1?api-version=2024-06-01",
     "x?page=2&max_tokens=5&code_hash=ab12cd", "What is 3+4? The answer is 7 & more.",
     "http://proxy:3128", "risk-adjusted-performance-metric"],
)  # fmt: skip
def test_ordinary_text_is_kept(text: str) -> None:
    assert scrub_text(text) == text
    assert not contains_secret(text)


@pytest.mark.parametrize(
    "name", ["api_key", "apikey", "key", "token", "access_token", "code", "sig", "signature",
             "password", "X-Amz-Signature", "X-Amz-Credential", "client_secret", "session"],
)  # fmt: skip
def test_token_like_query_parameters_lose_their_value_only(name: str) -> None:
    url = f"https://h.example/v1/x?page=2&{name}=V4lue-{SHORT}&lang=en#top"
    assert scrub_text(url) == f"https://h.example/v1/x?page=2&{name}={REDACTED}&lang=en#top"
    assert scrub_text(f"GET /cb?{name}={SHORT}") == f"GET /cb?{name}={REDACTED}"
    assert scrub_text(f"<a href='/cb?x=1&amp;{name}={SHORT}'>") == (
        f"<a href='/cb?x=1&amp;{name}={REDACTED}'>"
    )


def test_url_passwords_and_tokens_and_private_keys() -> None:
    assert scrub_text(f"postgres://bob:{SHORT}@db/x") == f"postgres://bob:{REDACTED}@db/x"
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEF\n"
    assert scrub_text(f"key: |\n  {pem}  -----END RSA PRIVATE KEY-----\nnext: 1") == (
        f"key: |\n  {REDACTED}\nnext: 1"
    )
    # cut short (no END line): the key goes, the next line stays
    assert scrub_text(f"{pem}next: 1") == f"{REDACTED}\nnext: 1"
    for token in ("sk-proj-" + "A1b2" * 6, "github_pat_11ABCDEFG0123456789_abcdefghijkl",
                  "xoxb-1234567890-abcdefghij", "AKIAIOSFODNN7EXAMPLE"):  # fmt: skip
        assert scrub_text(f"got {token}.") == f"got {REDACTED}."


def test_scrubbing_twice_changes_nothing_more() -> None:
    for text in HEADER_TEXTS.values():
        once = scrub_text(text)
        assert scrub_text(once) == once


def test_hostile_inputs_are_linear() -> None:
    hostile = [
        "Authorization:" + " \n" * 20_000 + "!",
        "Bearer" + "\n " * 20_000 + "!",
        "-----BEGIN PRIVATE KEY-----" + "A" * 1_000_000,
        "https://" + "u:" * 50_000,
        "?" + "a" * 100_000 + "=",
        "Cookie: " + "a=b;" * 50_000 + " ",
        "://x:" + "y" * 200_000,
    ]
    for text in hostile:
        started = time.perf_counter()
        scrub_text(text)
        assert time.perf_counter() - started < 1.0, text[:40]


def test_a_large_ordinary_file_is_scrubbed_quickly() -> None:
    line = json.dumps({"id": "arith-000001", "prompt": "Tom has 3 apples and buys 4 more. "
                       "How many apples are there? Answer with a number.",
                       "output": "3 + 4 = 7. The answer is 7.", "target": "7"})  # fmt: skip
    text = "\n".join([line] * 40_000)  # ~8 MB
    started = time.perf_counter()
    assert scrub_text(text) is text  # nothing to remove: the very same string back
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"{len(text) / elapsed / 1e6:.0f} MB/s"


# -- literals ------------------------------------------------------------------------------


def test_values_of_secret_named_variables_are_removed_in_every_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = 'pa55 w/rd"+é'
    monkeypatch.setenv("MY_SERVICE_PASSWORD", value)
    text = f"raw {value} json {json.dumps(value)} url https://h/?q=pa55%20w%2Frd%22%2B%C3%A9"
    out = scrub_text(text)
    assert "pa55" not in out and out.count(REDACTED) == 3
    monkeypatch.setenv("MY_SERVICE_PASSWORD", "changed-value-1")  # the set is rebuilt
    assert scrub_text("changed-value-1 and pa55") == f"{REDACTED} and pa55"
    monkeypatch.setenv("MY_SERVICE_PASSWORD", "short")  # under 8 characters: not a literal
    assert scrub_text("a short story") == "a short story"
    monkeypatch.setenv("MY_SERVICE_PASSWORD", "redacted")  # a placeholder: left alone
    assert scrub_text(scrub_text(f"x {REDACTED} y")) == f"x {REDACTED} y"


def test_registered_variables_and_values_are_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALLEDGER_TEST_ENDPOINT_ACCESS", LONGER)  # a harmless name
    assert scrub_text(f"echo {LONGER}") == f"echo {LONGER}"
    register_secret_env("EVALLEDGER_TEST_ENDPOINT_ACCESS")
    assert scrub_text(f"echo {LONGER}") == f"echo {REDACTED}"
    register_secret("kept-after-unset-77")
    register_secret("tiny")  # too short to be a literal
    monkeypatch.delenv("EVALLEDGER_TEST_ENDPOINT_ACCESS")
    assert scrub_text(f"{LONGER} kept-after-unset-77 tiny") == f"{LONGER} {REDACTED} tiny"


# -- params.yaml (finding 13) ------------------------------------------------------------

PARAMS_LEAKS = {
    "a short bearer under another header": (
        "headers: {X-Api: 'Bearer abc123xyz'}", "models.m.headers.X-Api"),
    "a cookie header": ("headers: {Cookie: 'session=abc123'}", "models.m.headers.Cookie"),
    "a code in the query": ("query: {code: abc123}", "models.m.query.code"),
    "a signature in the query": ("query: {api-version: '1', sig: zz9}", "models.m.query.sig"),
    "an api_key in base_url": (
        "base_url: 'https://h.example/v1?api_key=abc123'", "models.m.base_url"),
}  # fmt: skip


def _openai_params(settings: str) -> str:
    return (
        "axes: {model: [m], benchmark: [b]}\n"
        "models:\n  m:\n    adapter: openai\n    model: x\n"
        + ("" if "base_url" in settings else "    base_url: 'http://127.0.0.1:9/v1'\n")
        + f"    {settings}\n"
        "benchmarks: {b: {loader: arith, n_items: 3}}\n"
    )


@pytest.mark.parametrize("case", sorted(PARAMS_LEAKS))
def test_params_yaml_secrets_are_refused_with_one_line(tmp_path: Path, case: str) -> None:
    settings, where = PARAMS_LEAKS[case]
    project = make_project(tmp_path / "p", _openai_params("temperature: 0"))
    project.params_path.write_text(_openai_params(settings))
    result = invoke(project, "run", "--dry-run")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert f"params.yaml holds a secret at {where}" in result.output
    assert "abc123" not in result.output and "zz9" not in result.output


def test_names_like_code_outside_query_and_header_mappings_are_kept() -> None:
    data = {
        "code": "abc123",  # a top-level section of the user's own
        "models": {"m": {"code_hash": "ab12", "options": {"code": 3, "sig": "x1"},
                         "headers": {"X-Code-Hash": "ab12", "Accept": "text/plain"},
                         "query": {"api-version": "2024-06-01", "page": 2}}},
    }  # fmt: skip
    assert secret_paths(data) == []
    assert redact({"params": {"token": 1, "signature": "s", "code": "c", "n": 2}}) == {
        "params": {"token": REDACTED, "signature": REDACTED, "code": REDACTED, "n": 2}
    }


# -- the sinks ---------------------------------------------------------------------------


def test_atomic_write_scrubs_text_and_keeps_bytes(tmp_path: Path) -> None:
    line = f"error: Authorization: Bearer {SHORT}\n"
    atomic_write(tmp_path / "a.txt", line)
    assert (tmp_path / "a.txt").read_text() == f"error: Authorization: {REDACTED}\n"
    atomic_write(tmp_path / "b.bin", line.encode())  # a binary payload is written as given
    assert (tmp_path / "b.bin").read_bytes() == line.encode()


def test_commit_and_tag_messages_are_scrubbed(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "f.txt").write_text("1\n")
    sha = git_commit(root, ["f.txt"], f"run: failed (401 Authorization: Bearer {SHORT})")
    (root / "f.txt").write_text("2\n")
    git(root, "commit", "-qam", "second", "-m", f"see https://h/?token={SHORT}")
    git(root, "tag", "-a", "v1", "-m", f"Cookie: s={SHORT}", sha)
    log = subprocess.run(["git", "log", "--all", "--format=%B"], cwd=root, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    tag = subprocess.run(["git", "tag", "-n9"], cwd=root, check=True, capture_output=True,
                         text=True).stdout  # fmt: skip
    assert SHORT not in log + tag
    assert f"Authorization: {REDACTED}" in log and f"token={REDACTED}" in log
    assert f"Cookie: {REDACTED}" in tag


def test_mirror_values_are_scrubbed_keys_too() -> None:
    value = {f"Bearer {SHORT}": [f"Bearer {SHORT}", 3, ("ok", f"?sig={SHORT}")], "n": 1.5}
    assert scrubbed(value) == {REDACTED: [REDACTED, 3, ["ok", f"?sig={REDACTED}"]], "n": 1.5}
    assert scrubbed(None) is None and scrubbed(f"notes: Cookie: a={SHORT}") == (
        f"notes: Cookie: {REDACTED}"
    )
