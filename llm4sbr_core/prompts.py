"""Multi-view prompts (LLM4SBR §4.1.1, Fig. 2).

A prompt is a *background description* — the clicked items in order, each written as
``<number>. <name>_<id>`` — followed by a *task definition* whose view-limiting qualifier
("in the short term", "in the long term", nothing for the ``normal`` ablation) steers the
model towards one view of the session's intent. Templates, qualifiers and the number of
items kept come from the `prompts:` config block, so a user can add views.

Every prompt carries a content hash: identical prompts (Beauty's prefixes repeat across
users) are answered once, and the answer store is keyed by it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from string import Formatter
from typing import Any

import pandas as pd

from .errors import ConfigError

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class PromptSettings:
    """The `prompts:` config block."""

    template: str
    item_format: str
    qualifiers: Mapping[str, str]
    max_items: int = 20
    max_name_chars: int = 120

    @classmethod
    def from_config(cls, block: Mapping[str, Any]) -> PromptSettings:
        settings = cls(**block)
        settings.check()
        return settings

    def check(self) -> None:
        """Reject templates with unknown or missing fields (a typo would otherwise only
        surface as a KeyError deep inside a job)."""
        _check_fields("prompts.template", self.template, required={"items", "qualifier"},
                      allowed={"items", "qualifier"})
        _check_fields("prompts.item_format", self.item_format, required={"name"},
                      allowed={"number", "name", "id", "raw_id"})

    def qualifier(self, view: str) -> str:
        try:
            return self.qualifiers[view]
        except KeyError:
            raise ConfigError("views", f"view {view!r} has no entry in prompts.qualifiers "
                              f"(defined: {sorted(self.qualifiers)})") from None


def _check_fields(key: str, template: str, required: set[str], allowed: set[str]) -> None:
    try:
        fields = {name for _, name, _, _ in Formatter().parse(template) if name is not None}
    except ValueError as e:
        raise ConfigError(key, f"not a valid format string: {e}") from None
    if unknown := fields - allowed:
        raise ConfigError(key, f"unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    if missing := required - fields:
        raise ConfigError(key, f"missing field(s) {sorted(missing)}")


def prompt_hash(prompt: str) -> str:
    """The content key of a prompt (hex, 32 characters of SHA-256)."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:32]


def item_names(items: pd.DataFrame, max_chars: int) -> dict[int, tuple[str, str]]:
    """item_id → (name shown in prompts, raw id). Long product titles are cut at a word
    boundary; an item without text is named by its raw id."""
    names = {}
    for item_id, raw_id, text in zip(items["item_id"], items["raw_id"], items["text"],
                                     strict=True):
        name = " ".join(str(text).split()) or f"item {raw_id}"
        if len(name) > max_chars:
            cut = name[:max_chars].rsplit(" ", 1)[0]
            name = (cut if len(cut) > max_chars // 2 else name[:max_chars]) + "…"
        names[int(item_id)] = (name, str(raw_id))
    return names


def render_prompt(clicks: Sequence[int], names: Mapping[int, tuple[str, str]],
                  settings: PromptSettings, view: str) -> str:
    """The prompt of one session prefix for one view (the last ``max_items`` clicks)."""
    kept = list(clicks)[-settings.max_items:]
    lines = []
    for number, item_id in enumerate(kept, start=1):
        name, raw_id = names[int(item_id)]
        lines.append(settings.item_format.format(number=number, name=name, id=int(item_id),
                                                 raw_id=raw_id))
    return settings.template.format(items="\n".join(lines),
                                    qualifier=settings.qualifier(view)).strip()


def build_prompts(samples: Mapping[str, pd.DataFrame], items: pd.DataFrame,
                  settings: PromptSettings, view: str) -> pd.DataFrame:
    """Prompts of every sample of every split, in sample_id order.

    Returns a frame with columns sample_id, split, session_id, prompt, prompt_hash (one
    row per sample; row i is sample_id i because sample ids run across the splits). The
    session lets generation answer the prompts of one session together, whose prefixes
    are shared (:func:`~.llm.generate.shard_prompts`).
    """
    settings.qualifier(view)  # fail before any work on an unknown view
    names = item_names(items, settings.max_name_chars)
    frames = []
    for split in SPLITS:
        df = samples[split]
        prompts = [render_prompt(clicks, names, settings, view) for clicks in df["items"]]
        frames.append(pd.DataFrame({"sample_id": df["sample_id"].to_numpy(), "split": split,
                                    "session_id": df["session_id"].to_numpy(),
                                    "prompt": prompts}))
    out = pd.concat(frames, ignore_index=True).sort_values("sample_id", kind="stable")
    out = out.reset_index(drop=True)
    out["prompt_hash"] = [prompt_hash(p) for p in out["prompt"]]
    unique = out["prompt_hash"].nunique()
    log.info("view %s: %d prompts, %d distinct (%.1f%% answered once for several samples)",
             view, len(out), unique, 100 * (1 - unique / max(len(out), 1)))
    return out
