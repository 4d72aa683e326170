"""Recommend for new sessions with a trained run, and show why.

For each session (item ids in click order) a :class:`Recommender` computes what the
training pipeline computed for its samples, with the same code:

1. prompts: :func:`~llm4sbr_core.prompts.render_prompt` for each view the variant reads;
2. answers: the run's answer store first (:class:`~llm4sbr_core.llm.store.AnswerStore`,
   keyed by prompt hash and model identity); prompts it has no usable answer for are
   asked of the run's LLM and the answers added to the store; then cleaned and flagged
   (:func:`~llm4sbr_core.llm.clean.clean_answer`), as the gather step does;
3. encoding: :func:`~llm4sbr_core.text.encoder.encode_cached` with the encoder settings
   the item vectors were made with; answers without text (flags ``empty``, ``echo``) get
   a zero vector (:func:`~llm4sbr_core.localize_stage.empty_answers`);
4. localization: :func:`~llm4sbr_core.localize.localize_intents` onto the same candidate
   items (:func:`~llm4sbr_core.localize_stage.localization_candidates`) with the run's r;
5. scoring: the run's network (:func:`~llm4sbr_core.models.build.build_model` + model.pt)
   on the session's last ``max_len`` clicks: the gates α of eqs. 10–11 and the fused
   session vector of eq. 12, scored against every item (eq. 13) — the ranking the run's
   test metrics measure, so items of the session itself may be recommended.

The "backbone alone" list is the ranking of the sibling ``base`` run (same dataset,
backbone and seed: ``…/{backbone}/base/seed{k}``) for the same session: inside an LLM4SBR
model the backbone has no trained head of its own (the wrapper's W replaces it), so the
backbone trained alone is the comparison the paper's tables make. Without that run the
comparison is left out, and the explanation says why.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import layout
from ..data.batches import SampleTensors, SessionBatch
from ..errors import InvalidInputError
from ..llm.clean import clean_answer
from ..llm.generate import make_generator
from ..llm.identity import model_identity
from ..llm.store import AnswerStore
from ..localize import localize_intents
from ..localize_stage import NO_TEXT_FLAGS, empty_answers, localization_candidates
from ..models import get_backbone
from ..models.build import build_model, build_training_graph
from ..models.llm4sbr import LLM4SBR
from ..prompts import PromptSettings, item_names, prompt_hash, render_prompt
from ..train.intents import item_text_intents
from ..train.run import load_training_graph
from .catalog import ItemCatalog, ItemNotFoundError
from .run_files import RunFiles, inference_config

log = logging.getLogger(__name__)

#: The gate of each view, by the paper's equation (α_lt: eq. 10, α_st: eq. 11).
GATE_NAMES: dict[str, str] = {"long": "alpha_lt (eq. 10)", "short": "alpha_st (eq. 11)",
                              "normal": "alpha_n"}
#: Sessions scored per forward pass (and rows of the intent buffers).
SCORE_BATCH = 256


# --------------------------------------------------------------------------- results

@dataclass
class Ranked:
    """An item with its score (a recommendation) or its similarity (a grounded item)."""

    item_id: int
    title: str
    score: float


@dataclass
class ViewExplanation:
    """What one view contributed: the LLM's answer, the items it was grounded in, and the
    view's gate weight in the fused session vector."""

    view: str
    prompt: str | None
    answer: str | None
    #: :data:`llm4sbr_core.llm.clean.FLAGS`: ok, empty, echo or truncated
    flag: str | None
    #: "store" (answered before), "generated" (asked now, added to the store) or
    #: "items" (the -items control: no LLM, the session's own item texts)
    source: str
    #: the top-r items of eq. 4 with their cosine similarities (empty for r = 0)
    grounded: list[Ranked] = field(default_factory=list)
    #: α of this view (eqs. 10–11), None when the variant has no gate for it (wo_sbr)
    gate: float | None = None


@dataclass
class BackboneComparison:
    """The backbone trained alone on the same session, and what the intents changed."""

    #: the base run compared with, None when there is none
    run: str | None
    note: str
    recommendations: list[Ranked] = field(default_factory=list)
    #: items in the run's top-K that the backbone alone does not rank in its top-K
    entered: list[Ranked] = field(default_factory=list)
    #: items of the backbone's top-K that left the run's top-K
    left: list[Ranked] = field(default_factory=list)


@dataclass
class Explanation:
    """One session explained: the top-K, each view's intent, the gates, the comparison."""

    run: str
    dataset: str
    backbone: str
    variant: str
    seed: int
    llm: str | None
    encoder: str | None
    r: int | None
    session: list[Ranked]
    k: int
    recommendations: list[Ranked]
    views: list[ViewExplanation]
    comparison: BackboneComparison | None
    #: seconds per stage of the call that produced this explanation (shared by a batch)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        """The explanation as one JSON document."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_text(self) -> str:
        """The explanation for a terminal."""
        head = f"run      {self.run}  ({self.backbone}, {self.variant}, seed {self.seed})"
        lines = [head]
        if self.llm:
            lines.append(f"intents  LLM {self.llm}, encoder {self.encoder}, r = {self.r}")
        lines.append(f"session  {len(self.session)} clicks, oldest first:")
        lines += [f"  [{s.item_id}] {s.title}" for s in self.session]
        for view in self.views:
            gate = f"   gate {GATE_NAMES.get(view.view, view.view)} = {view.gate:.4f}" \
                if view.gate is not None else "   (no gate)"
            if view.source == "items":
                lines.append(f"view {view.view}: item-text intent (no LLM){gate}")
            else:
                origin = ("from the answer store" if view.source == "store"
                          else "generated now")
                lines.append(f"view {view.view}: answer {view.answer!r} [{view.flag}, "
                             f"{origin}]{gate}")
            if view.flag in NO_TEXT_FLAGS:
                # the localize stage's rule: no text, a zero intent; its top-r are
                # placeholders (the first r candidates at similarity 0)
                lines.append("    no answer text: the intent is a zero vector, nothing is "
                             "grounded")
                continue
            for g in view.grounded:
                lines.append(f"    grounded [{g.item_id}] {g.title}  (cosine {g.score:.4f})")
        lines.append(f"top {self.k} ({self.variant}):")
        base_ids = ({r.item_id for r in self.comparison.recommendations}
                    if self.comparison and self.comparison.run else None)
        for rank, rec in enumerate(self.recommendations, 1):
            mark = "" if base_ids is None or rec.item_id in base_ids else "  + new"
            lines.append(f"  {rank:>3}. [{rec.item_id}] {rec.title}  {rec.score:.4f}{mark}")
        if self.comparison is not None:
            c = self.comparison
            if c.run is None:
                lines.append(f"backbone alone: {c.note}")
            else:
                lines.append(f"backbone alone ({c.run}): top {self.k}")
                for rank, rec in enumerate(c.recommendations, 1):
                    lines.append(f"  {rank:>3}. [{rec.item_id}] {rec.title}  {rec.score:.4f}")
                lines.append(f"entered ({len(c.entered)}): " +
                             ("; ".join(f"[{r.item_id}] {r.title}" for r in c.entered) or "–"))
                lines.append(f"left ({len(c.left)}): " +
                             ("; ".join(f"[{r.item_id}] {r.title}" for r in c.left) or "–"))
        return "\n".join(lines)


# --------------------------------------------------------------------------- the engine

def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k best item ids (column 0, padding, never) ordered by (-score, id):
    a deterministic order whatever torch's top-k does with ties."""
    scores = np.asarray(scores, dtype=np.float64).copy()
    scores[:, 0] = -np.inf
    k = min(k, scores.shape[1] - 1)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    out_ids = np.empty((scores.shape[0], k), dtype=np.int64)
    out_scores = np.empty((scores.shape[0], k), dtype=np.float64)
    for row in range(scores.shape[0]):
        # everything tied with the k-th score competes, so ties resolve by item id
        kth = scores[row, part[row]].min()
        pool = np.flatnonzero(scores[row] >= kth)
        order = np.lexsort((pool, -scores[row, pool]))[:k]
        out_ids[row] = pool[order]
        out_scores[row] = scores[row, pool[order]]
    return out_ids, out_scores


@dataclass
class _Intents:
    """Per view, the stages' outputs for a list of sessions."""

    prompts: list[str | None]
    answers: list[str | None]
    flags: list[str | None]
    sources: list[str]
    ids: np.ndarray  # [n, r] grounded items
    sims: np.ndarray  # [n, r]
    vectors: np.ndarray  # [n, t] localized intents h_infer


class Recommender:
    """A trained run loaded for inference (build with :meth:`load`)."""

    def __init__(self, files: RunFiles, catalog: ItemCatalog, model: torch.nn.Module,
                 device: torch.device):
        self.files = files
        self.settings = files.settings
        self.variant = files.settings.variant
        self.catalog = catalog
        self.model = model
        self.device = device
        self.base: Recommender | None = None
        self.base_note = "this run is the backbone alone"
        self.prompt_settings: PromptSettings | None = None
        self.generator_settings: Any = None
        self.store_key = ""
        self.encoder: Any = None
        self.cache_dir: Path | None = None
        self.item_vectors: np.ndarray | None = None
        self.candidates: np.ndarray | None = None
        self.localize_backend = "numpy"
        self._localize_batch = 4096
        self.llm_chunk = 256
        self.threads: int | None = None
        self.generate_missing = True
        self.timings: dict[str, float] = {}
        self._generator: Any = None

    def close(self) -> None:
        """Release the LLM (if one was loaded to answer new prompts)."""
        if self._generator is not None:
            self._generator.close()
            self._generator = None
        if self.base is not None:
            self.base.close()

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, run_dir: str | Path, *, config_files: Sequence[str | Path] = (),
             config: Mapping[str, Any] | None = None, cache_dir: str | Path | None = None,
             device: str = "cpu", threads: int | None = None, compare: bool = True,
             generate: bool = True, check: bool = True) -> Recommender:
        """Load the run at ``run_dir`` and everything it needs (see
        :mod:`~llm4sbr_core.recommend.run_files`), checked against what it was trained on.

        ``config_files`` are the workflow's config files (the prompt template and the
        LLM's runtime settings: batch size, device, server options); without them the
        schema defaults apply, and the prompts they build are checked against the
        stored ones either way. ``config`` overrides config sections. ``cache_dir``
        overrides the answer and embedding stores' directory (default: the one the run's
        answers were stored in). ``compare`` also loads the sibling ``base`` run;
        ``generate=False`` refuses to run the LLM (only stored answers are used).
        ``check=False`` skips the encoder re-encoding check (the fingerprint and identity
        checks always run).
        """
        started = time.perf_counter()
        if threads:
            torch.set_num_threads(threads)
        files = RunFiles.find(run_dir)
        variant = files.settings.variant
        if variant.random_intents or variant.shuffled:
            raise InvalidInputError(
                f"variant {variant.name!r} is a control whose intents come from other "
                "samples (shuffled) or from random draws: a new session has none, so it "
                "cannot be explained; use the run of the variant without the control",
                files.run_dir)
        state = torch.load(files.model, map_location="cpu", weights_only=True)
        files.check_training_files(state)
        catalog = ItemCatalog.read(files.items)
        n_items = catalog.n_items
        torch_device = torch.device(device)
        vectors = None
        if files.item_vectors is not None:
            if not files.item_vectors.is_file():
                raise InvalidInputError("missing: the run's item text vectors",
                                        files.item_vectors)
            vectors = np.load(files.item_vectors)
            if vectors.shape[0] != n_items + 1:
                raise InvalidInputError(f"{vectors.shape[0]} rows, but the item table has "
                                        f"{n_items} items (+ padding)", files.item_vectors)
        cls_ = get_backbone(files.settings.backbone)
        graph = None
        if cls_.needs_training_graph:
            if files.graph is not None:
                graph = load_training_graph(files.graph)
            else:  # built as run_training builds it when no graph file is given
                from ..data.batches import load_samples
                graph = build_training_graph(cls_, load_samples(files.tables[0]), n_items,
                                             files.settings.backbone_params)
        rows = {view: np.zeros((SCORE_BATCH, vectors.shape[1]), dtype=np.float32)
                for view in variant.views} if variant.views and vectors is not None else None
        s = files.settings
        model = build_model(cls_, variant, n_items, s.dim, s.backbone_params, graph,
                            intents=rows,
                            item_vectors=vectors if variant.kind == "textinit" else None,
                            tau=s.tau, shared_projection=s.shared_projection)
        model.load_state_dict(state["model"])
        model.to(torch_device).eval()
        loaded = cls(files, catalog, model, torch_device)
        loaded.threads = threads
        loaded.generate_missing = generate
        loaded.item_vectors = vectors
        if variant.reads_llm_intents:
            loaded._load_intent_stage(config_files, config, cache_dir, device, check)
        if compare:
            loaded._load_base(config_files, config, cache_dir, device, threads)
        loaded.timings["load"] = time.perf_counter() - started
        return loaded

    def _load_intent_stage(self, config_files: Sequence[str | Path],
                           config: Mapping[str, Any] | None,
                           cache_dir: str | Path | None, device: str, check: bool) -> None:
        files = self.files
        cfg = inference_config(config_files, config)
        self.prompt_settings = PromptSettings.from_config(cfg["prompts"])
        files.check_prompts(self.prompt_settings, self.catalog.frame)
        llm = dict(cfg["llm"])
        llm["device"] = llm.get("device") if device == "auto" else device
        self.generator_settings, store_dir, self.store_key = files.generator_settings(llm)
        self.llm_chunk = int(llm.get("chunk_size", 256))
        self.cache_dir = Path(cache_dir) if cache_dir is not None else store_dir
        self.encoder = files.encoder_settings(device)
        if check:
            files.check_encoder(self.encoder, self.item_vectors, self.catalog.titles,
                                self.cache_dir)
        self.candidates = localization_candidates(self.catalog.frame)
        backend = cfg["localize"]["backend"]
        self.localize_backend = backend
        self._localize_batch = int(cfg["localize"]["batch_size"])

    def _load_base(self, config_files: Sequence[str | Path], config: Mapping[str, Any] | None,
                   cache_dir: str | Path | None, device: str, threads: int | None) -> None:
        if self.variant.kind == "base":
            return
        sibling = self.files.run_dir.parent.parent / "base" / self.files.run_dir.name
        if not (sibling / layout.MODEL_FILE).is_file():
            self.base_note = (f"no base run of {self.settings.backbone} seed "
                              f"{self.settings.seed} at {sibling} (train it to compare: the "
                              "backbone inside an LLM4SBR model has no trained head of its "
                              "own, so it cannot rank alone)")
            return
        self.base = Recommender.load(sibling, config_files=config_files, config=config,
                                     cache_dir=cache_dir, device=device, threads=threads,
                                     compare=False)
        if self.base.catalog.n_items != self.catalog.n_items:
            raise InvalidInputError(f"the base run has {self.base.catalog.n_items} items, "
                                    f"this run {self.catalog.n_items}", sibling)
        self.base_note = f"the backbone trained alone: {sibling}"

    # ------------------------------------------------------------------ stages

    def _tick(self, stage: str, started: float, timings: dict[str, float]) -> float:
        now = time.perf_counter()
        timings[stage] = timings.get(stage, 0.0) + now - started
        self.timings[stage] = self.timings.get(stage, 0.0) + now - started
        return now

    def _samples(self, sessions: Sequence[Sequence[int]]) -> SampleTensors:
        """The sessions as training batches see them: the last ``max_len`` clicks, right-
        padded; sample ids 0..n-1 index the intent rows."""
        keep = [list(s)[-self.settings.max_len:] if self.settings.max_len else list(s)
                for s in sessions]
        width = max(len(s) for s in keep)
        items = torch.zeros((len(keep), width), dtype=torch.long)
        for row, clicks in enumerate(keep):
            items[row, :len(clicks)] = torch.tensor(clicks, dtype=torch.long)
        return SampleTensors(items, torch.tensor([len(s) for s in keep]),
                             torch.zeros(len(keep), dtype=torch.long),
                             torch.arange(len(keep)))

    def _answers(self, prompts: dict[str, list[str]], timings: dict[str, float]
                 ) -> dict[str, tuple[list[str], list[str], list[str], list[str]]]:
        """view → (answers, flags, raw answers, sources) of its prompts."""
        started = time.perf_counter()
        settings = dataclasses.replace(self.generator_settings, cache_dir=str(self.cache_dir))
        # the store the run's answers are in (its key as recorded, so a later change of
        # how keys are computed never hides the run's own answers)
        store = AnswerStore(self.cache_dir, self.store_key,
                            {"model": model_identity(settings),
                             "decoding": settings.decoding.key()})
        distinct: dict[str, str] = {}
        for texts in prompts.values():
            for text in texts:
                distinct.setdefault(prompt_hash(text), text)
        stored = store.load(distinct)
        stored = stored[stored["error"].isna()]
        known = {h: (raw, bool(limit)) for h, raw, limit in
                 zip(stored["prompt_hash"], stored["answer_raw"], stored["hit_token_limit"],
                     strict=True)}
        missing = [h for h in distinct if h not in known]
        log.info("%d distinct prompts: %d answered in %s, %d to generate", len(distinct),
                 len(known), store.path, len(missing))
        generated: set[str] = set()
        if missing:
            if not self.generate_missing:
                raise InvalidInputError(f"{len(missing)} prompts have no stored answer and "
                                        "generation is off", store.path)
            if self._generator is None:  # loaded once, kept for the next sessions
                t0 = time.perf_counter()
                self._generator = make_generator(settings, threads=self.threads)
                # loading is its own stage: "llm" is the answering alone
                started += self._tick("llm_load", t0, timings) - t0
            generator = self._generator
            for start in range(0, len(missing), self.llm_chunk):
                chunk = missing[start:start + self.llm_chunk]
                outputs = generator.generate([distinct[h] for h in chunk])
                # flushed chunk by chunk, as generate_shard does: a killed call
                # loses at most one chunk of answers
                store.add(pd.DataFrame({
                    "prompt_hash": chunk,
                    "answer_raw": [o.text for o in outputs],
                    "tokens_in": pd.array([o.tokens_in for o in outputs], dtype="Int64"),
                    "tokens_out": pd.array([o.tokens_out for o in outputs],
                                           dtype="Int64"),
                    "hit_token_limit": [o.hit_token_limit for o in outputs],
                    "error": [o.error for o in outputs]}))
                for h, o in zip(chunk, outputs, strict=True):
                    known[h] = (o.text, o.hit_token_limit)
                    generated.add(h)
        out = {}
        for view, texts in prompts.items():
            hashes = [prompt_hash(t) for t in texts]
            cleaned = [clean_answer(*known[h]) for h in hashes]
            out[view] = ([c.answer for c in cleaned], [c.flag for c in cleaned],
                         [known[h][0] for h in hashes],
                         ["generated" if h in generated else "store" for h in hashes])
        self._tick("llm", started, timings)
        return out

    def _intents(self, sessions: Sequence[Sequence[int]], timings: dict[str, float]
                 ) -> dict[str, _Intents]:
        """view → prompts, answers and localized intents of each session."""
        n = len(sessions)
        if self.variant.source == "items":
            started = time.perf_counter()
            vectors = item_text_intents([self._samples(sessions)], self.item_vectors,
                                        self.variant.views)
            self._tick("encode", started, timings)
            empty = np.zeros((n, 0), dtype=np.int64)
            return {v: _Intents([None] * n, [None] * n, [None] * n, ["items"] * n, empty,
                                empty.astype(np.float32), vectors[v])
                    for v in self.variant.views}
        names = item_names(self.catalog.frame, self.prompt_settings.max_name_chars)
        prompts = {v: [render_prompt(s, names, self.prompt_settings, v) for s in sessions]
                   for v in self.variant.views}
        answers = self._answers(prompts, timings)
        from ..text.encoder import encode_cached

        out = {}
        r = int(self.settings.intents["r"])
        for view, (texts, flags, _raw, sources) in answers.items():
            started = time.perf_counter()
            if any(texts):
                vectors, _ = encode_cached(texts, self.encoder, self.cache_dir, self.threads)
            else:  # no answer has text (all empty or echoes): nothing to encode
                vectors = np.zeros((n, self.item_vectors.shape[1]), dtype=np.float32)
            # as the localize stage does: answers without text are zero vectors, so
            # their intent carries no information instead of a meaningless embedding
            empty = empty_answers(vectors, pd.DataFrame({"answer": texts, "flag": flags}))
            vectors = np.where(empty[:, None], np.float32(0), vectors)
            started = self._tick("encode", started, timings)
            h_infer, ids, sims = localize_intents(
                vectors, self.item_vectors, r, backend=self.localize_backend,
                candidates=self.candidates, batch_size=self._localize_batch,
                device=self.device.type)
            self._tick("localize", started, timings)
            out[view] = _Intents(prompts[view], texts, flags, sources, ids, sims, h_infer)
        return out

    def scores(self, sessions: Sequence[Sequence[int]],
               intents: Mapping[str, np.ndarray] | None = None
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Scores over all N + 1 items (column 0 padding) [n, N+1] and, per gated view,
        α [n] (eqs. 10–11), for sessions whose intent vectors are ``intents`` (view →
        [n, t]; none for variants without views)."""
        samples = self._samples(sessions)
        all_scores, gates = [], {}
        with torch.inference_mode():
            for start in range(0, len(samples), SCORE_BATCH):
                index = torch.arange(start, min(start + SCORE_BATCH, len(samples)))
                batch = samples.batch(index)
                # rows 0..b-1 of the intent buffers hold this chunk's intents
                batch = SessionBatch(batch.items, batch.lengths, batch.targets,
                                     torch.arange(len(index))).to(self.device)
                if isinstance(self.model, LLM4SBR):
                    for view in self.model.views:
                        buffer = self.model.get_buffer(f"intents_{view}")
                        buffer[:len(index)] = torch.from_numpy(
                            np.ascontiguousarray(intents[view][index.numpy()]))
                    enc = self.model.encode(batch)
                    for view in self.model.gates:
                        # the wrapper's own eqs. 10–11 (the gate it fuses with)
                        alpha = self.model._gate(view, self.model.session_vector(view, enc),
                                                 enc)
                        gates.setdefault(view, []).append(alpha.squeeze(-1).float().cpu())
                    head = self.model.session_head(enc)
                    all_scores.append((head @ enc.item_table.T).float().cpu())
                else:
                    all_scores.append(self.model.scores(batch).float().cpu())
        return (torch.cat(all_scores).numpy(),
                {v: torch.cat(g).numpy() for v, g in gates.items()})

    # ------------------------------------------------------------------ explaining

    def check_session(self, session: Sequence[int]) -> list[int]:
        clicks = [int(i) for i in session]
        if not clicks:
            raise ItemNotFoundError("a session needs at least one item")
        for item in clicks:
            if not 1 <= item <= self.catalog.n_items:
                raise ItemNotFoundError(f"no item with id {item} (ids are "
                                        f"1..{self.catalog.n_items})")
        return clicks

    def explain(self, sessions: Sequence[Sequence[int | str]], k: int = 20
                ) -> list[Explanation]:
        """Explain every session (item ids or titles, in click order): one
        :class:`Explanation` each, computed in batches (one LLM pass for all)."""
        if k < 1:
            raise InvalidInputError(f"k must be >= 1, got {k}")
        timings: dict[str, float] = {}
        sessions = [self.check_session(self.catalog.resolve_all(s)) for s in sessions]
        if not sessions:
            return []
        intents = self._intents(sessions, timings) if self.variant.views else {}
        started = time.perf_counter()
        scores, gates = self.scores(sessions, {v: i.vectors for v, i in intents.items()})
        top_ids, top_scores = _top_k(scores, k)
        started = self._tick("score", started, timings)
        base_ids = base_scores = None
        if self.base is not None:
            b_scores, _ = self.base.scores(sessions)
            base_ids, base_scores = _top_k(b_scores, k)
            self._tick("backbone", started, timings)
        s = self.settings
        out = []
        for row, session in enumerate(sessions):
            views = []
            for view, it in intents.items():
                grounded = [Ranked(int(i), self.catalog.title(int(i)), float(sim))
                            for i, sim in zip(it.ids[row], it.sims[row], strict=True)]
                views.append(ViewExplanation(
                    view, it.prompts[row], it.answers[row], it.flags[row], it.sources[row],
                    grounded, float(gates[view][row]) if view in gates else None))
            recs = self._ranked(top_ids[row], top_scores[row])
            comparison = None
            if s.variant.kind != "base":
                comparison = BackboneComparison(None, self.base_note)
                if base_ids is not None:
                    base_recs = self._ranked(base_ids[row], base_scores[row])
                    ids, b_ids = set(top_ids[row].tolist()), set(base_ids[row].tolist())
                    comparison = BackboneComparison(
                        str(self.base.files.run_dir), self.base_note, base_recs,
                        [r for r in recs if r.item_id not in b_ids],
                        [r for r in base_recs if r.item_id not in ids])
            record = s.intents or {}
            out.append(Explanation(
                str(self.files.run_dir), s.dataset, s.backbone, s.variant.name, s.seed,
                record.get("llm"), record.get("encoder"), record.get("r"),
                [Ranked(i, self.catalog.title(i), 0.0) for i in session], k, recs, views,
                comparison, {k_: round(v, 4) for k_, v in timings.items()}))
        return out

    def _ranked(self, ids: np.ndarray, scores: np.ndarray) -> list[Ranked]:
        return [Ranked(int(i), self.catalog.title(int(i)), float(v))
                for i, v in zip(ids, scores, strict=True)]


def recommend(run_dir: str | Path, items: Sequence[int | str], k: int = 20, *,
              config_files: Sequence[str | Path] = (), cache_dir: str | Path | None = None,
              device: str = "cpu", compare: bool = True) -> Explanation:
    """Recommend the top ``k`` items for one session (item ids or titles, oldest first)
    with the run at ``run_dir``, and explain them (see :class:`Explanation`)."""
    recommender = Recommender.load(run_dir, config_files=config_files, cache_dir=cache_dir,
                                   device=device, compare=compare)
    explanation = recommender.explain([items], k)[0]
    explanation.timings = {**{"load": round(recommender.timings["load"], 4)},
                           **explanation.timings}
    return explanation


# --------------------------------------------------------------------------- batches

def read_sessions(path: str | Path) -> tuple[list[list[int | str]], list[Any] | None]:
    """The sessions of a Parquet file: column ``items`` (a list of item ids or titles per
    row, oldest first) and optionally ``session_id``."""
    frame = pd.read_parquet(path)
    if "items" not in frame:
        raise InvalidInputError("needs a column `items` (a list of item ids or titles per "
                                f"session); found {list(frame.columns)}", path)
    sessions = [list(s) if s is not None else [] for s in frame["items"]]
    ids = frame["session_id"].tolist() if "session_id" in frame else None
    return sessions, ids


def explanations_table(explanations: Sequence[Explanation],
                       session_ids: Sequence[Any] | None = None) -> pd.DataFrame:
    """One row per explanation: the session, the top-K ids and scores, per view the
    answer, flag, grounded ids and similarities and the gate, and the backbone-alone
    top-K with the items that entered and left."""
    rows = []
    for i, e in enumerate(explanations):
        row: dict[str, Any] = {"session_id": session_ids[i] if session_ids is not None else i,
                               "items": [s.item_id for s in e.session],
                               "item_ids": [r.item_id for r in e.recommendations],
                               "scores": [r.score for r in e.recommendations]}
        for v in e.views:
            row[f"{v.view}_answer"] = v.answer
            row[f"{v.view}_flag"] = v.flag
            row[f"{v.view}_source"] = v.source
            row[f"{v.view}_grounded_ids"] = [g.item_id for g in v.grounded]
            row[f"{v.view}_grounded_similarities"] = [g.score for g in v.grounded]
            row[f"{v.view}_gate"] = v.gate
        if e.comparison is not None and e.comparison.run is not None:
            row["backbone_item_ids"] = [r.item_id for r in e.comparison.recommendations]
            row["entered"] = [r.item_id for r in e.comparison.entered]
            row["left"] = [r.item_id for r in e.comparison.left]
        rows.append(row)
    return pd.DataFrame(rows)
