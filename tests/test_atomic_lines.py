"""Text written line by line is as safe as text written whole."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from evalledger.atomic import atomic_write, atomic_write_lines
from evalledger.redact import REDACTED, register_secret


def test_lines_are_written_whole_and_scrubbed_in_every_batch(tmp_path: Path) -> None:
    secret = "sk-lines-" + "Zq81kLm0" * 4
    register_secret(secret)
    lines = [f"row {i}" + (f" key={secret}" if i % 2047 == 0 else "") + "\n" for i in range(9000)]
    path = tmp_path / "p.jsonl"
    atomic_write_lines(path, iter(lines))
    text = path.read_text()
    assert secret not in text and text.count(REDACTED) == len(range(0, 9000, 2047))
    assert text == "".join(lines).replace(secret, REDACTED)
    atomic_write(tmp_path / "whole.jsonl", "".join(lines))
    assert (tmp_path / "whole.jsonl").read_text() == text  # the same as written whole


def test_a_failure_midway_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    atomic_write(path, "old\n")

    def broken() -> Iterator[str]:
        yield from (f"{i}\n" for i in range(5000))
        raise RuntimeError("disk went away")

    with pytest.raises(RuntimeError):
        atomic_write_lines(path, broken())
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]
