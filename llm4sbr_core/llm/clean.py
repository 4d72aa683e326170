"""Turning a raw model answer into one item name.

The prompts ask for "only the item name", but models — small ones especially — wrap it:
``The user is interested in the item named "Heat (1995)_5".``, ``1. Heat (1995)``,
``**Heat**``, ``Heat (1995) because the user likes action movies``, or they echo the
prompt back. :func:`clean_answer` applies these rules, in order:

1. keep the first non-empty line;
2. drop markdown emphasis (``**``, ``__``, backticks) and leading list markers
   (``1.``, ``2)``, ``-``, ``*``);
3. drop lead-ins: "Answer:", "Item name:", "The user is (most likely) interested in (the
   item named)", "The item I'm referring to is", "The user's (favorite) item is (the item
   named)", "The item name is", "The most recent item in the short term is", "The user
   has identified the item as", "I (would) guess/recommend/suggest", "Based on …, ",
   "the 1997 film", a "the" before a quoted name, and the like, then a list marker again
   (after a lead-in also a lower-case "the movie");
4. keep only the quoted part of an answer that starts with a quoted name
   (``"Heat" (1995) is an action movie``), then drop explanations: everything from
   " because ", " since ", " as it ", ", which is", "(because" on;
5. strip surrounding quotes and a trailing period, then a trailing ``_<id>`` (the prompt's
   item-id suffix), then quotes again.

Each answer gets a flag: ``ok``; ``empty`` (nothing with a letter left: "", "15");
``echo`` (the answer repeats the prompt's instructions, e.g. "A user has interacted with
the following items"); or ``truncated`` (the model hit max_new_tokens mid-name: the text
is kept but flagged). Flags are counted in the logs and kept in the output; nothing is
dropped. Answers are treated as data only: never evaluated or executed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FLAGS = ("ok", "empty", "echo", "truncated")

_MARKUP = re.compile(r"\*\*|__|`")
_LIST_MARKER = re.compile(r"^\s*(?:\d{1,3}\s*[.)]|[-*•])\s+")
_SUBJECT = r"(?:i|i'm|i am|we|the\s+user|the\s+customer|they|he|she)"
_LEAD_INS = [re.compile(p, re.IGNORECASE) for p in (
    r"^(?:final\s+)?(?:answer|output|item(?:\s+name)?|name|recommendation|guess)\s*:\s*",
    r"^based on [^,:]{0,200}[,:]\s*",
    r"^(?:i\s+(?:would\s+|will\s+)?(?:guess|recommend|suggest|think)(?:\s+that)?\s*:?\s*)",
    # "The user is most likely interested in", "They might be looking for"
    rf"^{_SUBJECT}\s+(?:is|are|am|might\s+be|may\s+be|would\s+be|could\s+be|seems\s+to\s+be)"
    r"\s+(?:most\s+likely\s+|likely\s+|probably\s+|also\s+)?(?:interested\s+in|looking\s+for|"
    r"referring\s+to|thinking\s+of|going\s+to\s+(?:like|buy|watch))\s*:?\s*",
    r"^(?:the\s+)?(?:user|customer)\s+(?:would|will|might|may)\s+(?:probably\s+|likely\s+)?"
    r"(?:like|enjoy|want|buy|watch)\s*:?\s*",
    # "The item (that) I'm interested in is", "The movie the user is referring to is:"
    rf"^(?:the\s+)?(?:item|product|movie|film|one)\s+(?:that\s+)?(?:{_SUBJECT}\s+(?:is|are|am|"
    r"was|would\s+be|might\s+be)?\s*(?:most\s+)?(?:interested\s+in|referring\s+to|"
    r"thinking\s+of|looking\s+for)\s+)?(?:is|would\s+be)\s*:?\s*",
    # "The user's (favorite) item is", "The item name is"
    r"^(?:the\s+)?(?:user|customer)'s\s+(?:(?:most\s+)?(?:favou?rite|preferred|likely|next|"
    r"top|best)\s+)?(?:item|choice|answer|guess|pick|movie|product)\s+(?:is|would\s+be)\s*:?\s*",
    r"^(?:the\s+)?(?:item|product|movie|film)(?:'s)?\s+(?:name|title)\s+(?:is|would\s+be)\s*:?\s*",
    # "The most recent item (in the short term) is"
    r"^the\s+most\s+recent\s+(?:item|product|movie|film)(?:\s+in\s+the\s+(?:short|long)"
    r"[\s-]term)?\s+is\s*:?\s*",
    # "The user has identified the item (named) X as", "The user has chosen"
    r"^(?:the\s+)?(?:user|customer)\s+has\s+(?:identified|chosen|selected|picked)\s+"
    r"(?:the\s+(?:item|product|movie|film)\s+(?:(?:named|called|titled)\s+)?(?:as\s+)?|as\s+)",
    r"^(?:the|an?)\s+(?:item|product|movie|film)\s+(?:named|called|titled)\s*:?\s*",
    r"^(?:the\s+)?(?:item|product|movie|film)\s+(?=[\"“])",  # the item "X"
    # the 1997 film "X", the 1962 film-noir thriller "X", the "X"
    r"^(?:the|an?)\s+(?:\d{4}\s+)?(?:film|movie)(?:-\w+)?(?:\s+\w+)?\s+(?=[\"“])",
    r"^the\s+(?=[\"“])",
    r"^(?:\d{1,3}\s*[.)]|[-*•])\s+",  # a list marker after a lead-in
)]
# After a lead-in, lower case only ("... is the movie Heat"): a title may start "The Film".
_LOWER_LEAD_INS = [re.compile(r"^(?:the|a|an)\s+(?:\d{4}\s+)?(?:movie|film)\s+")]
_EXPLANATION = re.compile(r"\s*[,;]?\s+(?:because|since|as it|as they|as the user|which is|"
                          r"which are|due to)\s.*$|\s*\(because.*$", re.IGNORECASE)
_LEADING_QUOTED = re.compile(r'^["“]([^"”]+)["”]')
_QUOTES = "\"'“”‘’«»"
_ID_SUFFIX = re.compile(r"_\s*\d+\s*$")
_ECHO_MARKERS = ("the following items", "has clicked", "has interacted", "guess one",
                 "output only", "without explanation", "background:", "task:")


@dataclass(frozen=True)
class CleanAnswer:
    answer: str
    flag: str


def _strip_quotes(text: str) -> str:
    text = text.strip().rstrip(".").strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text.strip(_QUOTES + " ").strip()


def clean_answer(raw: str, hit_token_limit: bool = False) -> CleanAnswer:
    """The item name in ``raw`` and a flag from :data:`FLAGS`."""
    line = next((ln.strip() for ln in raw.splitlines() if ln.strip()), "")
    lowered = line.lower()
    if any(marker in lowered for marker in _ECHO_MARKERS):
        return CleanAnswer("", "echo")
    text = _LIST_MARKER.sub("", _MARKUP.sub("", line))
    # Lead-ins can be stacked ("Answer: The user is interested in the item named ...").
    for _ in range(3):
        before = text
        for pattern in _LEAD_INS:
            text = pattern.sub("", text).lstrip()
        if text != line:
            for pattern in _LOWER_LEAD_INS:
                text = pattern.sub("", text).lstrip()
        if text == before:
            break
    if quoted := _LEADING_QUOTED.match(text):  # "Name" (1993), plus an explanation
        text = quoted.group(1)
    text = _EXPLANATION.sub("", text)
    text = _strip_quotes(text)
    text = _strip_quotes(_ID_SUFFIX.sub("", text))
    if not any(ch.isalpha() for ch in text):  # "", "15", "1997": no name in it
        return CleanAnswer("", "empty")
    # The model ran out of tokens while still writing the name: the name reaches the end
    # of the generated text (a closed quote or a dropped explanation means it was whole).
    tail = _strip_quotes(_ID_SUFFIX.sub("", line))
    truncated = hit_token_limit and tail.endswith(text)
    return CleanAnswer(text, "truncated" if truncated else "ok")
