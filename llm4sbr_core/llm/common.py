"""Helpers every generation backend may use; this module imports nothing of the package.

The backends sit above :mod:`.base` and never import one another: what two of them share
(hiding a server URL's credentials, telling a truncated answer from a complete one)
lives here, below all of them.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def public_url(url: str) -> str:
    """``url`` without user/password, query and fragment, and without a trailing slash."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def hit_token_limit(finish_reason: str | None, tokens_out: int | None, text: str,
                    max_new_tokens: int) -> bool:
    """Whether decoding stopped at ``max_new_tokens`` before the first line was complete.

    Uses the server's ``finish_reason`` ("length"), else the completion token count. An
    answer that already holds a line break is complete (its first line is the answer).
    """
    if "\n" in text.strip():
        return False
    if finish_reason is not None:
        return finish_reason == "length"
    return tokens_out is not None and tokens_out >= max_new_tokens
