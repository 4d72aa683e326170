"""Helpers every generation backend may use; this module imports nothing of the package.

The backends sit above :mod:`.base` and never import one another: what two of them share
(hiding a server URL's credentials, keeping secrets out of messages, telling a truncated
answer from a complete one) lives here, below all of them. The config validation and the
Snakemake rules use it too: :func:`url_secrets` is the one test of what a URL may not
carry, :func:`public_llm_block` what of the ``llm:`` block a rule may record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

#: What :func:`redact` puts in place of a secret.
REDACTED = "[REDACTED]"

# "Bearer sk-...", "Basic dXNlcjpwdw==": the credential of an Authorization header that
# a server echoes back in its error body (8 characters at least: not "Basic auth").
_AUTH_SCHEME = re.compile(r"\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
# "scheme://user:password@host": the user information of any URL in a text.
_URL_USERINFO = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^\s/?#@\"'<>]+@", re.IGNORECASE)
# "api_key=...", "access_token: ...", "password=...", "x-api-key: ..." in a query string,
# a header dump or a JSON echo.
_NAMED_SECRET = re.compile(
    r"""(\b(?:x-)?(?:api[_-]?key|access[_-]?token|auth[_-]?token|token|secret|password|"""
    r"""passwd|pwd|authorization)["']?\s*[:=]\s*["']?)([^\s"'&,;}<>]+)""", re.IGNORECASE)
# Words that make a config key's *value* a secret ("api_key", "token", "password"; not
# "max_new_tokens"), wherever the key appears in a config block.
_SECRET_WORDS = frozenset({"key", "apikey", "token", "secret", "password", "passwd",
                           "credential", "credentials", "auth"})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def public_url(url: str) -> str:
    """``url`` without user/password, query and fragment, and without a trailing slash."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that may carry a secret and must not be configured: a
    ``user:password@`` part, a query string, a fragment. Empty for a clean URL."""
    parts = urlsplit(url.strip())
    found = []
    if "@" in parts.netloc:
        found.append("a user name or password (user:password@host)")
    if parts.query or url.rstrip().endswith("?"):
        found.append("a query string (?...)")
    if parts.fragment:
        found.append("a fragment (#...)")
    return found


def base_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a server's base URL (not http(s); credentials, a query or a
    fragment in it), or ``None``. The reason shows the URL without its secrets.

    Credentials in the URL would reach job logs and Snakemake's metadata, and requests
    would send ``user:password`` as Basic auth in place of the API key: the key comes from
    the environment variable named by ``llm.openai.api_key_env`` only."""
    shown = public_url(url.strip())
    if urlsplit(url.strip()).scheme not in ("http", "https"):
        return f"expected an http(s) URL, got {shown!r}"
    found = url_secrets(url)
    if found:
        return (f"the URL ({shown!r}) carries {' and '.join(found)}; credentials must not "
                "be part of the URL: put the API key in the environment variable named by "
                "llm.openai.api_key_env (default OPENAI_API_KEY)")
    return None


def _strip_url(url: str) -> str:
    """``url`` without user information, query and fragment; the path stays as it is."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every secret replaced by :data:`REDACTED`: each of ``secrets`` (also
    URL-encoded), the credential after ``Bearer``/``Basic``, the user
    information of every URL and the value after ``api_key=``, ``token:``,
    ``password=``, ``Authorization:`` and the like.

    Applied to everything a server or a URL puts into a message, a log line or an
    exception, before it is shortened (a cut key would no longer match)."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
        encoded = quote(secret, safe="")
        if encoded != secret:
            text = text.replace(encoded, REDACTED)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    return _NAMED_SECRET.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def is_env_name(name: object) -> bool:
    """Whether ``name`` can be an environment variable's name (``OPENAI_API_KEY``)."""
    return isinstance(name, str) and bool(_ENV_NAME.match(name))


def _is_secret_key(key: str) -> bool:
    return bool(_SECRET_WORDS & set(re.split(r"[^a-z0-9]+", key.lower())))


def public_llm_block(llm: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the ``llm:`` config block that holds no secret: what a Snakemake rule may
    put in its ``params`` (recorded in ``.snakemake/metadata`` and printed in its logs).

    URLs lose their user information, query and fragment (the config validation rejects
    them anyway); a key named like a secret (``*key*``, ``*token*``, ``*password*``) is
    dropped unless it names an environment variable (``api_key_env: OPENAI_API_KEY``,
    whose value is read only inside the job). Nothing else changes, so the job builds
    the same generator from it."""
    def clean(value: Any, key: str = "") -> Any:
        if isinstance(value, Mapping):
            out = {}
            for k, v in value.items():
                k = str(k)
                if _is_secret_key(k) and not (k.endswith("_env") and is_env_name(v)):
                    continue
                out[k] = clean(v, k)
            return out
        if isinstance(value, list | tuple):
            return [clean(v, key) for v in value]
        if isinstance(value, str) and "://" in value:
            return _strip_url(value) if urlsplit(value).scheme else value
        return value

    return clean(llm)


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
