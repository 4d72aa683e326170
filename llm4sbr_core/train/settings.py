"""The settings of one training run, from the config's ``train:`` section (no torch import:
the Snakefile uses this to name jobs and targets).

:class:`RunSettings` is built and validated once (:meth:`RunSettings.from_config`), its
variant parsed once; :meth:`RunSettings.record` is what metrics.json records as
``config`` and what the workflow passes to a training job, which rebuilds the settings
from it without validating again (:meth:`RunSettings.from_record`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

from ..config import load_schema
from ..errors import ConfigError
from ..variants import VARIANT_PATTERN, Variant, parse_variant

#: Keys of the ``train:`` section that select runs rather than configure one.
GRID_KEYS: tuple[str, ...] = ("backbones", "variants", "seeds", "backbone_params", "llmseqsim",
                              "knn", "tuning")


def train_schema() -> dict[str, Any]:
    return load_schema()["properties"]["train"]


def backbone_names() -> list[str]:
    """Backbone names the config accepts (= llm4sbr_core.models.BACKBONE_PATHS)."""
    return list(train_schema()["properties"]["backbones"]["items"]["enum"])


def train_defaults() -> dict[str, Any]:
    """The ``train:`` section with every key at its schema default."""
    return {k: copy.deepcopy(v["default"]) for k, v in train_schema()["properties"].items()}


@dataclass(frozen=True)
class RunSettings:
    """One run: dataset × backbone × variant × seed and the ``train:`` keys that configure
    it (their meaning: the config schema). Field order = the record's key order."""

    dataset: str
    backbone: str
    variant: Variant
    seed: int
    epochs: int
    patience: int
    batch_size: int
    eval_batch_size: int
    dim: int
    lr: float
    lr_step: int
    lr_gamma: float
    weight_decay: float
    max_len: int | None
    select_metric: str
    device: str
    num_threads: int | None
    tau: float
    shared_projection: bool
    #: this backbone's ``train.backbone_params`` entry
    backbone_params: Mapping[str, Any]
    #: the intent vectors an LLM variant reads (see :func:`intent_settings`); None without
    intents: Mapping[str, Any] | None

    @classmethod
    def from_config(cls, train: Mapping[str, Any] | None, dataset: str,
                    backbone: str | type, variant: str, seed: int, *,
                    intents: Mapping[str, Any] | None = None) -> RunSettings:
        """Validated settings of one run; see :func:`run_config` for the arguments."""
        return cls.from_record(run_config(train, dataset, backbone, variant, seed,
                                          intents=intents))

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RunSettings:
        """The settings a :meth:`record` describes (already validated: the keys are
        checked, the values are not validated again)."""
        names = [f.name for f in dataclasses.fields(cls)]
        if sorted(record) != sorted(names):
            missing, extra = sorted(set(names) - set(record)), sorted(set(record) - set(names))
            raise ConfigError("train", f"a run's settings need exactly the keys {names}; "
                              f"missing {missing}, unknown {extra}")
        values = {k: copy.deepcopy(record[k]) for k in names}
        values["variant"] = parse_variant(record["variant"])
        return cls(**values)

    def record(self) -> dict[str, Any]:
        """The settings as plain JSON values (metrics.json's ``config``; also what a
        checkpoint's fingerprint hashes)."""
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out["variant"] = self.variant.name
        out["backbone_params"] = dict(out["backbone_params"])
        return out


def run_config(train: Mapping[str, Any] | None, dataset: str, backbone: str | type,
               variant: str, seed: int, *, intents: Mapping[str, Any] | None = None
               ) -> dict[str, Any]:
    """The settings of one run as a record (what metrics.json records as ``config``).

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
    if spec.item_text_intents:  # no LLM, no localization
        for key in ("r", "llm"):
            out.pop(key, None)
    out.update(source=spec.source, views=list(spec.views), shuffled=spec.shuffled)
    return out


def variant_pattern() -> str:
    """The regular expression of variant names (Snakemake's wildcard constraint)."""
    return VARIANT_PATTERN
