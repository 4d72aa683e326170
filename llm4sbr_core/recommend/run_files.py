"""Everything a trained run needs at inference time, found from its folder and checked.

A run folder ``results/{dataset}/runs/{backbone}/{variant}/seed{k}`` (``layout.RUN_DIR``)
holds the run's resolved settings (metrics.json's ``config``, a
:class:`~llm4sbr_core.train.settings.RunSettings` record) and its weights (model.pt).
From them and the layout, the rest is found next to it:

    the dataset          results/{dataset}/data/{train,valid,test,items}.parquet
    the encoder          results/{dataset}/text/{encoder}/items.npy + items.stats.json
                         (the stats record the encoder settings the vectors were made with)
    the LLM              results/{dataset}/llm/{llm}/shards/{views}/*.stats.json (the model
                         identity, weights digest included, the decoding settings and the
                         answer store the shards used)
    the prompts          results/{dataset}/prompts/{view}.parquet (checked against the
                         prompt settings, which the workflow does not record elsewhere)
    the intents          results/{dataset}/intents/{llm}/{encoder}/r{r}/{view}.npy

Checks (each failure is an :class:`~llm4sbr_core.errors.Llm4sbrError` saying what
differs, never a silently wrong ranking):

* the folder's names agree with the recorded settings (dataset, backbone, variant, seed);
* the files the run was trained on are the ones found: model.pt's checkpoint fingerprint
  (:func:`~llm4sbr_core.train.trainer.fingerprint`: the settings and the digests of the
  split tables, the item table, the intent and item-text vectors) is recomputed; the item
  count is checked against the model's item table in any case;
* the encoder: the item-text vectors are re-encoded for a few items with the recorded
  encoder settings (through the embedding store) and must point the same way;
* the LLM: the configured model's identity (backend, model, weights digest) and decoding
  settings must be the ones that answered the run's prompts;
* the prompts: re-rendered for a few stored samples, they must hash to the stored ones.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import layout
from ..config import deep_update, load_config, load_schema
from ..errors import ConfigError, InvalidInputError, Llm4sbrError
from ..llm.generate import generator_settings
from ..llm.identity import model_identity
from ..llm.settings import DecodingSettings, GeneratorSettings
from ..prompts import PromptSettings, item_names, prompt_hash, render_prompt
from ..text.encoder import EncoderSettings, encode_cached
from ..train.settings import RunSettings
from ..train.trainer import fingerprint

log = logging.getLogger(__name__)

#: The config sections inference reads (the rest describes how to build a dataset).
SECTIONS: tuple[str, ...] = ("prompts", "llm", "localize", "cache_dir")
#: Items re-encoded to check that the encoder is the one of the item vectors.
ENCODER_PROBES = 4
#: Least cosine between a stored item vector and the same title re-encoded: float16 on a
#: GPU against float32 on a CPU stays above 0.999; another encoder is far below.
ENCODER_MIN_COSINE = 0.99
#: Stored prompts re-rendered to check the prompt settings.
PROMPT_PROBES = 3


class RunMismatchError(InvalidInputError):
    """A file found for a run is not the one the run was trained with (another item
    table, encoder, LLM or prompt template)."""


def section_defaults(name: str) -> Any:
    """A config section at its schema defaults (the ``default`` of the section, then the
    defaults of its keys), for use without a config file."""
    schema = load_schema()["properties"][name]
    value = copy.deepcopy(schema.get("default"))
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if "default" in sub:
                value.setdefault(key, copy.deepcopy(sub["default"]))
    return value


def inference_config(paths: Sequence[str | Path] = (),
                     overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config sections of :data:`SECTIONS`: from the workflow's config files (merged
    and validated as the Snakefile does) when given, else at their schema defaults, with
    ``overrides`` merged over them."""
    if paths:
        full = load_config(*paths)
        config = {k: copy.deepcopy(full[k]) for k in SECTIONS}
    else:
        config = {k: section_defaults(k) for k in SECTIONS}
    if overrides:
        deep_update(config, dict(overrides))
    return config


@dataclass(frozen=True)
class RunFiles:
    """A run folder and the files around it that inference reads (see the module
    docstring); build it with :meth:`find`."""

    run_dir: Path
    #: the workflow's working directory (where ``results/`` and a relative cache live)
    workdir: Path
    settings: RunSettings
    metrics: Mapping[str, Any]
    items: Path
    tables: tuple[Path, ...]
    graph: Path | None
    item_vectors: Path | None
    #: view → the localized intent vectors the run was trained on (LLM intents only)
    intents: Mapping[str, Path] = field(default_factory=dict)

    @property
    def model(self) -> Path:
        return self.run_dir / layout.MODEL_FILE

    @property
    def dataset(self) -> str:
        return self.settings.dataset

    def path(self, pattern: str, **values: object) -> Path:
        """A ``layout`` pattern of this run's dataset, under the working directory."""
        return self.workdir / layout.fill(pattern, dataset=self.dataset, **values)

    @classmethod
    def find(cls, run_dir: str | Path) -> RunFiles:
        """The files of the run at ``run_dir`` (checked to exist, not yet compared)."""
        run_dir = Path(run_dir)
        metrics_path = run_dir / layout.METRICS_FILE
        for path in (metrics_path, run_dir / layout.MODEL_FILE):
            if not path.is_file():
                raise InvalidInputError("not a trained run folder: it has no "
                                        f"{path.name} (give results/<dataset>/runs/<backbone>/"
                                        "<variant>/seed<k>)", run_dir)
        metrics = json.loads(metrics_path.read_text())
        if "config" not in metrics:
            raise InvalidInputError("metrics.json has no `config` (the run's settings)",
                                    metrics_path)
        settings = RunSettings.from_record(metrics["config"])
        parts = run_dir.resolve().parts
        expected = (settings.dataset, "runs", settings.backbone, settings.variant.name,
                    f"seed{settings.seed}")
        if len(parts) < 7 or tuple(parts[-5:]) != expected:
            raise InvalidInputError(
                f"the folder does not sit where layout.RUN_DIR puts this run "
                f"(…/{'/'.join(expected)}): its data, intents and LLM files cannot be found "
                "next to it", run_dir)
        workdir = Path(*parts[:-6])
        data_dir = workdir / layout.fill(layout.DATA_DIR, dataset=settings.dataset)
        tables = tuple(data_dir / name for name in layout.TABLE_FILES)
        files = cls(run_dir, workdir, settings, metrics, tables[-1], tables, None, None)
        variant = settings.variant
        graph = files.path(layout.GRAPH_FILE, backbone=settings.backbone)
        intents: dict[str, Path] = {}
        if variant.reads_llm_intents:
            record = settings.intents or {}
            for view in variant.views:
                intents[view] = files.path(layout.INTENT_FILE, llm=record["llm"],
                                           encoder=record["encoder"], r=record["r"],
                                           view=view)
        vectors = None
        encoder = (settings.intents or {}).get("encoder")
        if variant.uses_item_text or variant.reads_llm_intents:
            vectors = files.path(layout.ITEM_VECTORS, encoder=encoder)
        return dataclasses.replace(files, graph=graph if graph.is_file() else None,
                                   item_vectors=vectors, intents=intents)

    # ------------------------------------------------------------------ checks

    def check_training_files(self, state: Mapping[str, Any]) -> None:
        """The dataset files found are the ones the run was trained on (see the module
        docstring); ``state`` is model.pt's content."""
        for path in self.tables:
            if not path.is_file():
                raise InvalidInputError(f"missing (run {self.run_dir} was trained on it)", path)
        n_items = int(self.metrics.get("data", {}).get("items", -1))
        weights = state["model"]
        table = next((v for k, v in weights.items() if k.endswith("item_embedding.weight")),
                     None)
        found = int(pd.read_parquet(self.items, columns=["item_id"])["item_id"].max())
        trained = table.shape[0] - 1 if table is not None else n_items
        if found != trained or (n_items >= 0 and found != n_items):
            raise RunMismatchError(f"another item table: {found} items, but run "
                                   f"{self.run_dir} was trained on {trained}", self.items)
        recorded = state.get("fingerprint")
        extra: dict[str, Path] = {f"intents_{v}": p for v, p in self.intents.items()}
        if self.settings.variant.uses_item_text and self.item_vectors is not None:
            extra["item_vectors"] = self.item_vectors
        missing = [p for p in (*self.tables, *extra.values()) if not p.is_file()]
        if not recorded or missing:
            log.warning("cannot compare the dataset files with the ones run %s was trained "
                        "on (%s); only the item count was checked", self.run_dir,
                        f"missing {missing[0]}" if missing else "model.pt has no fingerprint")
            return
        if fingerprint(self.settings, self.tables, extra) != recorded:
            listed = ", ".join(str(p) for p in (*self.tables, *extra.values()))
            raise RunMismatchError(
                "the dataset files are not the ones this run was trained on (one of "
                f"{listed} changed since: rebuilt data, another encoder or other intents); "
                "train the run again, or restore the files", self.run_dir)

    def encoder_settings(self, device: str = "auto") -> EncoderSettings:
        """The settings the run's item vectors were encoded with (items.stats.json)."""
        stats_path = self.path(layout.ITEM_VECTORS_STATS,
                               encoder=(self.settings.intents or {})["encoder"])
        if not stats_path.is_file():
            raise InvalidInputError("missing: the encoder settings of the item vectors",
                                    stats_path)
        recorded = json.loads(stats_path.read_text()).get("encoder")
        if not isinstance(recorded, dict):
            raise InvalidInputError("records no `encoder` settings", stats_path)
        names = {f.name for f in dataclasses.fields(EncoderSettings)}
        settings = EncoderSettings(**{k: v for k, v in recorded.items() if k in names})
        settings = dataclasses.replace(settings, device=device)
        expected = (self.settings.intents or {})["encoder"]
        if settings.slug != expected:
            raise RunMismatchError(f"encoder {settings.slug!r}, but run {self.run_dir} "
                                   f"records encoder {expected!r}", stats_path)
        return settings

    def check_encoder(self, settings: EncoderSettings, vectors: np.ndarray,
                      catalog_titles: Sequence[str], cache_dir: Path) -> None:
        """Re-encode a few item titles: they must point where items.npy's rows do."""
        probes = [i for i in range(1, len(catalog_titles) + 1) if catalog_titles[i - 1]]
        probes = probes[:ENCODER_PROBES]
        if not probes:
            return
        again, _ = encode_cached([catalog_titles[i - 1] for i in probes], settings, cache_dir)
        stored = np.asarray(vectors[probes], dtype=np.float64)
        cos = (again * stored).sum(1) / np.maximum(
            np.linalg.norm(again, axis=1) * np.linalg.norm(stored, axis=1), 1e-12)
        if again.shape[1] != stored.shape[1] or (cos < ENCODER_MIN_COSINE).any():
            raise RunMismatchError(
                f"the encoder {settings.model!r} does not give the stored item vectors "
                f"(cosine {float(cos.min()):.3f} for item {probes[int(cos.argmin())]}): "
                "another encoder, or other weights under the same name",
                self.item_vectors)

    def llm_record(self) -> tuple[dict[str, Any], dict[str, Any], Path]:
        """(model identity, decoding settings, answer-store folder) of the run's answers,
        from the newest shard stats of its views; the views must agree."""
        record = self.settings.intents or {}
        seen: dict[str, tuple[str, Path]] = {}
        shards = self.path(layout.ANSWER_SHARD_STATS, llm=record["llm"], views="x",
                           shard="x", shards="x").parent.parent
        for view in self.settings.variant.views:
            # the jobs that answered `view`: those of every view group naming it
            stats = sorted((p for folder in shards.glob("*") if folder.is_dir()
                            and view in layout.group_views(folder.name)
                            for p in folder.glob("*.stats.json")),
                           key=lambda p: p.stat().st_mtime)
            if not stats:
                raise InvalidInputError("no shard stats: the LLM that answered this run's "
                                        f"{view!r} prompts is unknown", shards)
            data = json.loads(stats[-1].read_text())
            key = json.dumps({"model": data["model"], "decoding": data["decoding"]},
                             sort_keys=True)
            seen[view] = (key, Path(data["store"]))
        if len({k for k, _ in seen.values()}) > 1:
            raise RunMismatchError(f"the views of run {self.run_dir} were answered by "
                                   f"different LLM settings: {sorted(seen)}")
        key, store = next(iter(seen.values()))
        parsed = json.loads(key)
        return parsed["model"], parsed["decoding"], store

    def generator_settings(self, llm: Mapping[str, Any]
                           ) -> tuple[GeneratorSettings, Path, str]:
        """The LLM of the run's answers, with the runtime settings (batch size, device,
        backend options) of the config's ``llm`` block; the cache directory and key of
        the answer store the run's answers are in. The identity must match the recorded
        one (weights digest included)."""
        identity, decoding, store = self.llm_record()
        configured = generator_settings(llm)
        fields = {k: decoding[k] for k in ("max_new_tokens", "system_prompt",
                                           "stop_at_newline") if k in decoding}
        settings = dataclasses.replace(configured, backend=identity["backend"],
                                       model=identity["model"],
                                       decoding=DecodingSettings(**fields))
        if identity["backend"] != configured.backend:
            settings = dataclasses.replace(settings, options={})
        if "dtype" in identity:  # compute as the run's answers were computed
            settings = dataclasses.replace(settings, dtype=identity["dtype"])
        found = model_identity(settings)
        # the keys the run recorded decide (identities recorded before a key was added
        # to model_identity still match on the ones they have)
        differing = {k: (v, found.get(k)) for k, v in identity.items() if found.get(k) != v}
        if differing:
            raise RunMismatchError(
                "the LLM found is not the one that answered this run's prompts: "
                + "; ".join(f"{k} recorded {a!r}, found {b!r}" for k, (a, b) in
                            differing.items()) + " (weights changed, or another server)",
                store)
        cache_dir = store.parents[1]
        if not cache_dir.is_absolute():
            cache_dir = self.workdir / cache_dir
        return settings, cache_dir, store.name

    def check_prompts(self, settings: PromptSettings, catalog: pd.DataFrame) -> None:
        """Re-render a few stored prompts of each view: their hashes must match."""
        names = item_names(catalog, settings.max_name_chars)
        samples = pd.read_parquet(self.tables[0], columns=["sample_id", "items"]).head(
            PROMPT_PROBES)
        for view in self.settings.variant.views:
            path = self.path(layout.PROMPTS_FILE, view=view)
            if not path.is_file():
                raise InvalidInputError("missing: the run's prompts of this view", path)
            stored = pd.read_parquet(path, columns=["sample_id", "prompt_hash"])
            stored = dict(zip(stored["sample_id"], stored["prompt_hash"], strict=True))
            for sample_id, clicks in zip(samples["sample_id"], samples["items"], strict=True):
                try:
                    again = prompt_hash(render_prompt(clicks, names, settings, view))
                except Llm4sbrError as e:
                    raise ConfigError("prompts", f"cannot build the {view!r} prompts: {e}"
                                      ) from None
                if stored.get(int(sample_id)) != again:
                    raise ConfigError(
                        "prompts", f"the prompt settings give another {view!r} prompt for "
                        f"sample {int(sample_id)} than {path} holds: pass the config the "
                        "run was made with (--config)")
