"""The settings of one training run, from the config's ``train:`` section (no torch import:
the Snakefile uses this to name jobs and targets)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonschema

from ..config import load_schema
from ..errors import ConfigError
from ..variants import VARIANT_PATTERN, Variant, parse_variant

#: Keys of the ``train:`` section that select runs rather than configure one.
GRID_KEYS: tuple[str, ...] = ("backbones", "variants", "seeds", "backbone_params", "llmseqsim")


def train_schema() -> dict[str, Any]:
    return load_schema()["properties"]["train"]


def backbone_names() -> list[str]:
    """Backbone names the config accepts (= llm4sbr_core.models.BACKBONE_PATHS)."""
    return list(train_schema()["properties"]["backbones"]["items"]["enum"])


def train_defaults() -> dict[str, Any]:
    """The ``train:`` section with every key at its schema default."""
    return {k: copy.deepcopy(v["default"]) for k, v in train_schema()["properties"].items()}


def run_config(train: Mapping[str, Any] | None, dataset: str, backbone: str | type,
               variant: str, seed: int, *, intents: Mapping[str, Any] | None = None
               ) -> dict[str, Any]:
    """The settings of one run (what metrics.json records as ``config``).

    ``train`` is the config's ``train:`` section (validated here; missing keys take their
    schema defaults). The grid keys are replaced by this run's backbone, variant and seed,
    and ``backbone_params`` by this backbone's entry. ``backbone`` may be a Backbone class
    (tests, custom models); its ``name`` is recorded. ``tau`` is the variant's own
    (``-tau<x>``) where it names one.

    ``intents`` describes the intent vectors an LLM variant reads, ``{"llm": name,
    "encoder": name, "r": the localize.r of the config}``; the variant's ``-r<k>``
    overrides r, and the views it reads are added. It is recorded under ``intents`` (None
    for variants without intent views), so two runs on different intents never share a
    checkpoint fingerprint.
    """
    merged = train_defaults()
    merged.update(copy.deepcopy(dict(train or {})))
    # The grid keys are checked below, for this run only (a custom Backbone class in
    # tests has a name the schema does not list).
    del merged["backbones"], merged["variants"]
    all_params = merged.pop("backbone_params")
    if not isinstance(all_params, Mapping) or not all(
            isinstance(v, Mapping) for v in all_params.values()):
        raise ConfigError("train.backbone_params", "must map backbone names to {keyword: value}")
    try:
        jsonschema.validate(merged, {**train_schema(), "required": []})
    except jsonschema.ValidationError as e:
        raise ConfigError(".".join(["train", *map(str, e.absolute_path)]), e.message) from None
    if isinstance(backbone, type):
        name = getattr(backbone, "name", "") or backbone.__name__.lower()
    elif backbone in backbone_names():
        name = backbone
    else:
        raise ConfigError("train.backbones", f"unknown backbone {backbone!r}; known backbones: "
                          f"{sorted(backbone_names())}")
    spec = parse_variant(variant)
    params = copy.deepcopy(dict(all_params.get(name, {})))
    for key in GRID_KEYS:
        merged.pop(key, None)
    if spec.tau is not None:
        merged["tau"] = spec.tau
    return {"dataset": dataset, "backbone": name, "variant": variant, "seed": int(seed),
            **merged, "backbone_params": params, "intents": intent_settings(spec, intents)}


def intent_settings(spec: Variant, intents: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What a run records of its intents: None without views, else their source,
    llm/encoder/r (r and llm only for LLM intents), views and whether they are shuffled."""
    if not spec.views:
        return None
    out = dict(intents or {})
    if spec.r is not None:
        out["r"] = spec.r
    if spec.source != "llm":  # item-text intents: no LLM, no localization
        for key in ("r", "llm"):
            out.pop(key, None)
    out.update(source=spec.source, views=list(spec.views), shuffled=spec.shuffled)
    return out


def variant_pattern() -> str:
    """The regular expression of variant names (Snakemake's wildcard constraint)."""
    return VARIANT_PATTERN
