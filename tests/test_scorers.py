from __future__ import annotations

import pytest

from evalledger.benchmarks.base import Item
from evalledger.errors import ConfigError
from evalledger.plugins import load_scorer


def _item(target: str, choices: tuple[str, ...] | None = None) -> Item:
    return Item(id="x", input="?", target=target, choices=choices)


CASES = [
    # scorer config, target, choices, output, (correct, partial, formatted, extracted)
    ("exact", "Paris", None, "  paris. ", (True, True, True, "paris")),
    ("exact", "Paris", None, "Paris, France", (False, False, True, "paris, france")),
    (
        {"name": "exact", "strip_prefixes": ["answer:"]},
        "Lima",
        None,
        "Answer: Lima",
        (True, True, True, "lima"),
    ),
    ({"name": "exact", "normalize": False}, "Paris", None, "paris", (False, False, True, "paris")),
    ("numeric", "1234", None, "It is $1,234.", (True, True, False, "$1,234")),
    ("numeric", "100", None, "maybe 95", (False, True, False, "95")),
    ("numeric", "100", None, "maybe 85", (False, False, False, "85")),
    ("numeric", "-7", None, "The answer is -7.", (True, True, True, "-7")),
    ("numeric", "2.5", None, "<answer>2.5</answer>", (True, True, True, "2.5")),
    ("numeric", "5", None, "no idea", (False, False, False, None)),
    ({"name": "numeric", "extract": "first"}, "3", None, "3 then 4", (True, True, False, "3")),
    (
        {"name": "numeric", "extract": "answer_is"},
        "4",
        None,
        "3 and 5; answer is 4 (not 6)",
        (True, True, True, "4"),
    ),
    ({"name": "numeric", "abs_tol": 0.01}, "3.14", None, "3.141", (True, True, False, "3.141")),
    ({"name": "numeric", "rel_tol": 0.05}, "100", None, "94", (False, False, False, "94")),
    (
        {"name": "regex", "pattern": r"FINAL: (\w+)"},
        "yes",
        None,
        "FINAL: no ... FINAL: Yes",
        (True, True, True, "Yes"),
    ),
    (
        {"name": "regex", "pattern": r"final: (\d+)", "flags": "i", "then": "numeric"},
        "10",
        None,
        "Final: 11",
        (False, True, True, "11"),
    ),
    (
        {"name": "regex", "pattern": r"FINAL: (\w+)"},
        "yes",
        None,
        "yes",
        (False, False, False, None),
    ),
    (
        "tag",
        "Paris",
        None,
        "<answer>x</answer> then <ANSWER> Paris </ANSWER>",
        (True, True, True, "Paris"),
    ),
    ("tag", "Paris", None, "Paris", (False, False, False, None)),
    (
        {"name": "tag", "tag": "final", "then": "numeric"},
        "8",
        None,
        "<final>8.0</final>",
        (True, True, True, "8.0"),
    ),
    ("choice", "B", ("Lima", "Paris", "Rome"), "Answer: (B)", (True, True, True, "B")),
    ("choice", "1", ("Lima", "Paris", "Rome"), "B. Paris", (True, True, True, "B")),
    ("choice", "Paris", ("Lima", "Paris", "Rome"), "paris", (True, True, True, "B")),
    ("choice", "B", ("Lima", "Paris", "Rome"), "I pick C", (False, False, True, "C")),
    ("choice", "A", ("Lima", "Paris"), "none of these", (False, False, False, None)),
]


@pytest.mark.parametrize(("config", "target", "choices", "output", "expected"), CASES)
def test_scorers(config, target, choices, output, expected) -> None:  # type: ignore[no-untyped-def]
    scorer = load_scorer(config, "benchmarks.b.scorer")
    s = scorer.score(_item(target, choices), output)
    assert (s.correct, s.partial, s.formatted, s.extracted) == expected
    assert s.score == float(s.correct)


def test_numeric_target_that_is_not_a_number() -> None:
    s = load_scorer("numeric", "w").score(_item("Paris"), "42")
    assert not s.correct and s.detail == "target is not a number"


def test_scorer_config_errors_are_one_line() -> None:
    with pytest.raises(ConfigError, match=r"b\.scorer: unknown setting 'tol'; known: rel_tol"):
        load_scorer({"name": "numeric", "tol": 1}, "b.scorer")
    with pytest.raises(ConfigError, match="invalid scorer pattern"):
        load_scorer({"name": "regex", "pattern": "("}, "b.scorer")
    with pytest.raises(ConfigError, match="unknown regex flag 'x'; known: i, m, s"):
        load_scorer({"name": "regex", "pattern": "a", "flags": "x"}, "b.scorer")
    with pytest.raises(ConfigError, match=r"b.scorer must be a scorer name or a mapping"):
        load_scorer(3, "b.scorer")
