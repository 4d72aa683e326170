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


#: Raw answers of the embedded SmolLM2-135M-Instruct on MovieLens-100K prompts (greedy,
#: max_new_tokens 24), with the lead-ins it uses most; each must leave the name alone.
EMBEDDED_MODEL_ANSWERS = [
    ('The user\'s favorite item is the item named "Heat (1995)_5"', "Heat (1995)"),
    ('The most recent item in the short term is the item named "Blood & Wine" (1997).',
     "Blood & Wine"),
    ("The item name is \"The (1987) -- Action Adventure Comedy Romance_145\"",
     "The (1987) -- Action Adventure Comedy Romance"),
    ('The user has identified the item as "2 Days in the Valley"', "2 Days in the Valley"),
    ('The user has identified the item named "Butch Cassidy and the Sundance Kid" as '
     '"Butch Cassidy', "Butch Cassidy and the Sundance Kid"),
    ("The item I'm interested in is the movie Return of the Pink Panther, The.",
     "Return of the Pink Panther, The"),
    ('The item I\'m interested in is the "It\'s a Wonderful Life" (1947) by Martin',
     "It's a Wonderful Life"),
    ('The 1997 film "Air Force One" is a classic example of a short film that has been',
     "Air Force One"),
    ('The 1962 film-noir thriller "A Nightmare on Elm Street" is the most',
     "A Nightmare on Elm Street"),
    ('The item the user is interested in is "The Nightmare on Elm Street, A"',
     "The Nightmare on Elm Street, A"),
    ("The user's item is: 10. My Favorite Year, The (1982)", "My Favorite Year, The (1982)"),
    ("The Celluloid Closet, The (1995) -- Documentary_793",
     "The Celluloid Closet, The (1995) -- Documentary"),
    ("The Film Festival (1990)", "The Film Festival (1990)"),  # a title, not a lead-in
]


@pytest.mark.parametrize("raw, answer", EMBEDDED_MODEL_ANSWERS)
def test_lead_ins_of_the_embedded_model_are_dropped(raw, answer):
    assert clean_answer(raw).answer == answer
    assert clean_answer(raw).flag == "ok"
