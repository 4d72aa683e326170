"""Answer cleaning: each documented rule, and flags instead of silent drops."""

from __future__ import annotations

import pytest

from llm4sbr_core.llm.clean import FLAGS, clean_answer


@pytest.mark.parametrize("raw, answer", [
    ("Heat (1995)", "Heat (1995)"),
    ('The user is interested in the item named "Heat (1995)_5".', "Heat (1995)"),
    ("1. Heat (1995)", "Heat (1995)"),
    ("- **Heat**", "Heat"),
    ("`Heat`", "Heat"),
    ("Heat (1995) because the user likes action movies", "Heat (1995)"),
    ("Heat, which is an action movie", "Heat"),
    ("\n\n  “Toy Story (1995)_1”  \nIt is a classic.", "Toy Story (1995)"),
    ("Answer: The user would like: Jumanji", "Jumanji"),
    ("Based on the short-term interest, the user might be interested in Casino (1995).",
     "Casino (1995)"),
    ("The item I'm referring to is \"The Nightmare Before Christmas, The\" (1993).",
     "The Nightmare Before Christmas, The"),
    ("The user's item is: 10. Seven (Se7en) (1995) -- Drama", "Seven (Se7en) (1995) -- Drama"),
    ('The user is interested in the item named "Mimic" but not the item named "X"', "Mimic"),
    ("Star Wars: Episode IV - A New Hope", "Star Wars: Episode IV - A New Hope"),
    ("Dr. Strangelove", "Dr. Strangelove"),
    ("M*A*S*H (1970)", "M*A*S*H (1970)"),
])
def test_cleaning_rules(raw, answer):
    cleaned = clean_answer(raw)
    assert (cleaned.answer, cleaned.flag) == (answer, "ok")


@pytest.mark.parametrize("raw, flag", [
    ("", "empty"),
    ("   \n  ", "empty"),
    ("The user's item is: 15", "empty"),
    ("1. 1997", "empty"),
    ("The item I'm interested in is:", "empty"),
    ("A user has interacted with the following items, in this order:", "echo"),
    ("The user is interested in the item named \"Guess One\"", "echo"),
    ("Guess one item the user is interested in", "echo"),
])
def test_unusable_answers_are_flagged_with_no_text(raw, flag):
    cleaned = clean_answer(raw)
    assert (cleaned.answer, cleaned.flag) == ("", flag)


def test_truncation_flag_only_when_the_name_runs_to_the_token_limit():
    cut = clean_answer('The user is interested in the item named "Faster Pussycat! Kill! (19',
                       hit_token_limit=True)
    assert (cut.answer, cut.flag) == ("Faster Pussycat! Kill! (19", "truncated")
    whole = clean_answer('The user is interested in the item named "Mimic" but not the item',
                         hit_token_limit=True)
    assert (whole.answer, whole.flag) == ("Mimic", "ok")
    assert clean_answer("Heat (1995)", hit_token_limit=False).flag == "ok"
    assert set(FLAGS) == {"ok", "empty", "echo", "truncated"}


def test_answers_are_never_evaluated():
    raw = "__import__('os').system('touch /tmp/llm4sbr-pwned')"
    cleaned = clean_answer(raw)
    assert cleaned.flag == "ok" and "import" in cleaned.answer
