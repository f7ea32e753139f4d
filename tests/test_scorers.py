from __future__ import annotations

from typing import Any

import pytest

from evalledger.benchmarks.base import Item
from evalledger.errors import ConfigError
from evalledger.plugins import load_scorer
from evalledger.scorers.choice import MultipleChoice
from evalledger.scorers.extract import RegexScorer, TagScorer
from evalledger.scorers.match import ExactMatch, NumericMatch, number, numbers

ABC = ("Lima", "Paris", "Rome")
ABCD = ("Lima", "Paris", "Rome", "Oslo")

# scorer config, target, choices, output, (correct, partial, formatted, extracted)
Case = tuple[Any, str, tuple[str, ...] | None, str, tuple[bool, bool, bool, str | None]]

EXACT: list[Case] = [
    ("exact", "Paris", None, "  paris. ", (True, True, True, "paris")),
    ("exact", "Paris", None, '"Paris"', (True, True, True, "paris")),
    ("exact", "New York", None, "new   york!", (True, True, True, "new york")),
    ("exact", "Paris", None, "Paris, France", (False, False, True, "paris, france")),
    ("exact", "C++", None, "C", (False, False, True, "c")),  # + is not framing
    ("exact", "-5", None, "5", (False, False, True, "5")),  # nor is a sign
    ("exact", "Lima", None, "Answer: Lima", (False, False, True, "answer: lima")),
    (
        {"name": "exact", "strip_prefixes": ["answer:"]},
        "Lima",
        None,
        "Answer: Lima",
        (True, True, True, "lima"),
    ),
    (
        {"name": "exact", "strip_prefixes": ["answer:", "final answer:"]},
        "Lima",
        None,
        "**Final  Answer:** Lima.",
        (True, True, True, "lima"),
    ),
    ({"name": "exact", "normalize": False}, "Paris", None, "paris", (False, False, True, "paris")),
    ({"name": "exact", "normalize": False}, "Paris", None, " Paris\n", (True, True, True, "Paris")),
    (
        {"name": "exact", "normalize": False, "strip_prefixes": ["Answer:"]},
        "Paris",
        None,
        "answer: Paris",
        (True, True, True, "Paris"),
    ),
]

NUMERIC: list[Case] = [
    ("numeric", "1234", None, "It is $1,234.", (True, True, False, "$1,234")),
    ("numeric", "1234.5", None, "1,234.50 total", (True, True, False, "1,234.50")),
    ("numeric", "100", None, "maybe 95", (False, True, False, "95")),
    ("numeric", "100", None, "maybe 85", (False, False, False, "85")),
    ("numeric", "-7", None, "The answer is -7.", (True, True, True, "-7")),
    ("numeric", "-3", None, "It went down by \u22123", (True, True, False, "\u22123")),
    ("numeric", "0.5", None, "about .5", (True, True, False, ".5")),
    ("numeric", "2.5", None, "<answer>2.5</answer>", (True, True, True, "2.5")),
    ("numeric", "5", None, "no idea", (False, False, False, None)),
    ("numeric", "1", None, "on 2024-05-01", (True, True, False, "01")),  # hyphens, not signs
    ("numeric", "3", None, "1,2,3", (True, True, False, "3")),  # not one number 123
    ("numeric", "72", None, "The answer is \\boxed{72}.", (True, True, True, "72")),
    ({"name": "numeric", "extract": "first"}, "3", None, "3 then 4", (True, True, False, "3")),
    (
        {"name": "numeric", "extract": "answer_is"},
        "4",
        None,
        "3 and 5; answer is 4 (not 6)",
        (True, True, True, "4"),
    ),
    (
        {"name": "numeric", "extract": "answer_is"},
        "4",
        None,
        "The answer is 3. No wait, the answer is: 4",
        (True, True, True, "4"),
    ),
    ({"name": "numeric", "extract": "answer_is"}, "4", None, "4", (False, False, False, None)),
    ({"name": "numeric", "abs_tol": 0.01}, "3.14", None, "3.141", (True, True, False, "3.141")),
    ({"name": "numeric", "abs_tol": 0.01}, "3.14", None, "3.16", (False, True, False, "3.16")),
    ({"name": "numeric", "rel_tol": 0.05}, "100", None, "94", (False, False, False, "94")),
    ({"name": "numeric", "rel_tol": 0.05}, "100", None, "96", (False, True, False, "96")),
]

REGEX_TAG: list[Case] = [
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
        {"name": "regex", "pattern": r"final: (\d+)", "then": "numeric"},
        "10",
        None,
        "Final: 10",
        (False, False, False, None),  # case-sensitive without flags: i
    ),
    ({"name": "regex", "pattern": r"[A-D]\)"}, "b)", None, "B)", (True, True, True, "B)")),
    (
        {"name": "regex", "pattern": r"FINAL: (\w+)"},
        "yes",
        None,
        "yes",
        (False, False, False, None),
    ),
    (
        {"name": "regex", "pattern": r"^=> (.*)$", "flags": "m"},
        "two words",
        None,
        "=> one\n=> Two  words.\n",
        (True, True, True, "Two  words."),
    ),
    (
        "tag",
        "Paris",
        None,
        "<answer>x</answer> then <ANSWER> Paris </ANSWER>",
        (True, True, True, "Paris"),
    ),
    ("tag", "Paris", None, "<answer>\nParis\n</answer>", (True, True, True, "Paris")),
    ("tag", "Paris", None, "Paris", (False, False, False, None)),
    ("tag", "Paris", None, "<answer>Paris", (False, False, False, None)),  # never closed
    ("tag", "Rome", None, "<answer>Paris</answer>", (False, False, True, "Paris")),
    (
        {"name": "tag", "tag": "final", "then": "numeric"},
        "8",
        None,
        "<final>8.0</final>",
        (True, True, True, "8.0"),
    ),
    (
        {"name": "tag", "then": "numeric"},
        "1234",
        None,
        "<answer>$1,234 in total</answer>",
        (True, True, True, "$1,234 in total"),
    ),
    (
        {"name": "tag", "then": "numeric", "rel_tol": 0.0},
        "100",
        None,
        "<answer>99</answer>",
        (False, False, True, "99"),
    ),
]

CHOICE: list[Case] = [
    ("choice", "B", ABC, "B", (True, True, True, "B")),
    ("choice", "B", ABC, "b", (True, True, True, "B")),
    ("choice", "B", ABC, "(B)", (True, True, True, "B")),
    ("choice", "B", ABC, "**B**", (True, True, True, "B")),
    ("choice", "B", ABC, "Answer: B", (True, True, True, "B")),
    ("choice", "B", ABC, "Answer: (B)", (True, True, True, "B")),
    ("choice", "B", ABC, "The answer is b.", (True, True, True, "B")),
    ("choice", "B", ABC, "B. Paris", (True, True, True, "B")),
    ("choice", "B", ABC, "B) Paris, because...", (True, True, True, "B")),
    ("choice", "1", ABC, "B. Paris", (True, True, True, "B")),  # 0-based index target
    ("choice", "Paris", ABC, "B", (True, True, True, "B")),  # choice-text target
    ("choice", "Paris", ABC, "paris", (True, True, False, "B")),  # output is the text
    ("choice", "B", ABC, "It must be Paris.", (True, True, False, "B")),
    ("choice", "B", ABC, "I pick C", (False, False, True, "C")),  # I is not an option
    ("choice", "B", ABCD, "A good choice is B", (True, True, True, "B")),  # A is an article
    ("choice", "B", ABCD, "Option (C) looks wrong, so the answer is B", (True, True, True, "B")),
    ("choice", "B", ABCD, "Answer: C. B is wrong", (False, False, True, "C")),
    ("choice", "B", ABCD, "The answer must be B, not A.", (False, False, False, None)),
    ("choice", "D", ABC, "D", (False, False, False, None)),  # D names no option here
    ("choice", "A", ("Lima", "Paris"), "none of these", (False, False, False, None)),
    ("choice", "B", None, "Answer: B", (True, True, True, "B")),  # no choices: letters only
    ({"name": "choice", "letters": "WXYZ"}, "X", ABCD, "(X)", (True, True, True, "X")),
    ({"name": "choice", "letters": "wxyz"}, "1", ABCD, "Answer: X", (True, True, True, "X")),
]


def _item(target: str, choices: tuple[str, ...] | None = None) -> Item:
    return Item(id="x", input="?", target=target, choices=choices)


@pytest.mark.parametrize(
    ("config", "target", "choices", "output", "expected"), EXACT + NUMERIC + REGEX_TAG + CHOICE
)
def test_scorers(
    config: Any,
    target: str,
    choices: tuple[str, ...] | None,
    output: str,
    expected: tuple[bool, bool, bool, str | None],
) -> None:
    scorer = load_scorer(config, "benchmarks.b.scorer")
    s = scorer.score(_item(target, choices), output)
    assert (s.correct, s.partial, s.formatted, s.extracted) == expected
    assert s.score == float(s.correct)
    assert scorer.score(_item(target, choices), output) == s  # a pure function


def test_load_scorer_returns_the_entry_point_classes() -> None:
    numeric = load_scorer({"name": "numeric", "rel_tol": 0.05}, "benchmarks.x.scorer")
    assert type(numeric) is NumericMatch and numeric.name == "numeric"
    assert numeric.settings.rel_tol == 0.05 and numeric.settings.abs_tol == 0.0
    for name, cls in [
        ("exact", ExactMatch),
        ("tag", TagScorer),
        ("choice", MultipleChoice),
    ]:
        assert type(load_scorer(name, "s")) is cls
    assert type(load_scorer({"name": "regex", "pattern": "x"}, "s")) is RegexScorer


def test_numbers_in_text() -> None:
    assert numbers("It is $1,234.50, not -$3 or 1,2345 or v1.2 (x-5)") == [
        "$1,234.50",
        "-$3",
        "1",
        "2345",
        "5",
    ]
    assert numbers("1.2.3 and .5") == ["1.2", ".5"]
    assert [number(t) for t in ["1,234", "-7", "$-5", "+3", " 72 ", "--5", "inf", "5%", ""]] == [
        1234.0,
        -7.0,
        -5.0,
        3.0,
        72.0,
        None,
        None,
        None,
        None,
    ]


def test_targets_that_are_not_numbers_or_options() -> None:
    s = load_scorer("numeric", "w").score(_item("Paris"), "The answer is 42")
    assert (s.correct, s.score, s.formatted) == (False, 0.0, True)
    assert s.detail == "target is not a number"
    tagged = load_scorer({"name": "tag", "then": "numeric"}, "w")
    assert tagged.score(_item("Paris"), "<answer>4</answer>").detail == "target is not a number"
    s = load_scorer("choice", "w").score(_item("Madrid", ABC), "A")
    assert (s.correct, s.extracted, s.detail) == (False, "A", "target matches no option")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"name": "numeric", "tol": 1},
            "benchmarks.b.scorer: unknown setting 'tol'; known: rel_tol, abs_tol, extract",
        ),
        ({"name": "numeric", "extract": "middle"}, "benchmarks.b.scorer.extract: Input should be"),
        ({"name": "numeric", "rel_tol": -1}, "benchmarks.b.scorer.rel_tol: Input should be"),
        (
            {"name": "exact", "strip": True},
            "benchmarks.b.scorer: unknown setting 'strip'; known: normalize, strip_prefixes",
        ),
        ({"name": "regex"}, "benchmarks.b.scorer.pattern: Field required"),
        (
            {"name": "regex", "pattern": "("},
            "benchmarks.b.scorer.pattern: Value error, invalid regular expression '('",
        ),
        (
            {"name": "regex", "pattern": "a", "flags": "x"},
            "benchmarks.b.scorer.flags: Value error, unknown regex flag 'x'; known: i, m, s",
        ),
        ({"name": "regex", "pattern": "a", "then": "fuzzy"}, "benchmarks.b.scorer.then:"),
        ({"name": "tag", "tag": "<answer>"}, "benchmarks.b.scorer.tag: String should match"),
        ({"name": "choice", "letters": "AAB"}, "letters must be distinct letters or digits"),
        ({"name": "nope"}, "unknown scorer 'nope' in benchmarks.b.scorer.name"),
        (3, "benchmarks.b.scorer must be a scorer name or a mapping"),
    ],
)
def test_scorer_config_errors_are_one_line(config: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_scorer(config, "benchmarks.b.scorer")
    assert message in err.value.one_line()
    assert "\n" not in err.value.one_line()


def test_benchmark_default_check_reads_thousands_separators_and_tags() -> None:
    from evalledger.benchmarks.arith import ArithBenchmark, ArithSettings

    bench = ArithBenchmark("a", ArithSettings())
    item = _item("1234")
    assert bench.check(item, "so the total is 1,234").correct
    said = bench.check(item, "The answer is 1200")
    assert (said.correct, said.partial, said.formatted) == (False, True, True)
    assert bench.check(item, "<answer>1234</answer>").formatted
    assert bench.check(_item("Lima"), "It is lima.").correct is False  # no number at all
