"""Training variants: what a run's ``{variant}`` name means (no torch import: the Snakefile
uses this to decide each run's inputs).

A variant name is a kind; an LLM kind may be followed, in this order, by

* ``-r<int>``: the localization r of the intents it reads, instead of ``localize.r``; or
  ``-items``: CONTROL — no LLM at all: each view's "intent" is built from the session's
  own item texts (short: the last click's text vector; long and normal: the mean of all
  its clicks' unit-length text vectors), so a gain that survives it is not the LLM's; or
  ``-random``: CONTROL — each sample's intent is a random Gaussian direction with the
  norm of its real (localized) LLM intent, drawn per run seed: no information at all,
  the same scale; or ``-items-random``: the same with the norms of the item-title
  intents (no LLM answers needed: the random control of the ``-items`` chain);
* ``-tau<number>``: the weight τ of the alignment + uniformity term, instead of train.tau;
* ``-shuffled``: CONTROL — every sample reads the intents of another sample of the same
  split (a derangement: no sample keeps its own; drawn per run seed): the same vectors
  and statistics, no per-session information.

Any variant (``base`` and ``textinit`` too) may end in ``-tuned``: its lr, lr_step,
lr_gamma, weight_decay and τ are those of the best of ``train.tuning.trials``
configurations on the validation split (train/tuning.py), the same budget for every
variant, instead of the shared recipe of ``train:``.

    base                     the backbone alone, its own paper's scoring head ("w/o LLM")
    llm4sbr                  the full enhancement: views short + long, gates, fusion, τ (L_a + L_u)
    wo_au                    no alignment / uniformity term (Table 4 "w/o AU"): the
                             wrapper's architecture alone
    wo_u, wo_a               alignment only (no L_u), uniformity only (no L_a)
    wo_long, wo_short        one view only (Table 4 "w/o Long", "w/o Short")
    normal                   one qualifier-free view aligned with the combined session vector
    wo_sbr                   the localized intents alone, no backbone output (LLM-Infer)
    textinit                 the backbone with its item table initialised from the item
                             texts' embeddings, PCA-projected to d (Fig. 5's LLM2SRGNN when
                             the backbone is SR-GNN); no LLM answers involved
    llm4sbr-r0               the full model on raw answer embeddings (Fig. 7: r = 0)
    llm4sbr-r3-tau0.5        r = 3 and τ = 0.5
    llm4sbr-items            the full model on item-text "intents" (no LLM)
    llm4sbr-random           the full model on random intents of matched norms
    llm4sbr-items-random     the same, norms matched to the item-text intents (no LLM)
    llm4sbr-shuffled         the full model on another session's LLM intents
    base-tuned, llm4sbr-tuned   each with its own validation search (same budget)

LLMSeqSim (Fig. 5's other peer) has no session model; it is not a training variant but a
run of its own (rule ``llmseqsim``, ``results/{dataset}/runs/llmseqsim/{aggregation}/seed0``),
one per aggregation of :data:`LLMSEQSIM_AGGREGATIONS` (``train.llmseqsim``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ConfigError

#: variant kind → LLM4SBR wrapper mode (kinds not listed here do not use the wrapper)
WRAPPER_MODES: dict[str, str] = {
    "llm4sbr": "full", "wo_au": "wo_au", "wo_u": "wo_u", "wo_a": "wo_a",
    "wo_long": "wo_long", "wo_short": "wo_short", "normal": "normal", "wo_sbr": "wo_sbr",
}
#: views each wrapper kind reads (= llm4sbr_core.models.llm4sbr.MODE_VIEWS by mode)
KIND_VIEWS: dict[str, tuple[str, ...]] = {
    "llm4sbr": ("short", "long"), "wo_au": ("short", "long"), "wo_u": ("short", "long"),
    "wo_a": ("short", "long"), "wo_long": ("short",),
    "wo_short": ("long",), "normal": ("normal",), "wo_sbr": ("short", "long"),
}
#: The session-kNN baselines (models/knn.py; the schema's train.knn)
KNN_METHODS: tuple[str, ...] = ("pop", "sknn", "vsknn", "stan", "vstan")
#: LLMSeqSim's session aggregations (models/llmseqsim.py; the schema's train.llmseqsim)
LLMSEQSIM_AGGREGATIONS: tuple[str, ...] = ("mean", "linear", "last")
KINDS: tuple[str, ...] = ("base", *WRAPPER_MODES, "textinit")
#: wrapper modes without the alignment + uniformity term, so without τ
TAU_FREE_MODES: tuple[str, ...] = ("wo_au", "wo_sbr")
#: the suffix of a variant whose training settings come from a validation search
TUNED_SUFFIX = "-tuned"
#: The regular expression every variant name matches (also the Snakemake wildcard).
_SUFFIXES = (r"(?:-(?P<source>items-random|items|random)|-r(?P<r>0|[1-9][0-9]*))?"
             r"(?:-tau(?P<tau>(?:0|[1-9][0-9]*)(?:\.[0-9]+)?))?(?:-(?P<shuffled>shuffled))?")
_TUNED = r"(?:-(?P<tuned>tuned))?"
#: untuned variant names; VARIANT_PATTERN adds the optional -tuned
UNTUNED_PATTERN = (r"(?:base|textinit|(?:" + "|".join(WRAPPER_MODES) + r")"
                   + re.sub(r"\(\?P<\w+>", "(?:", _SUFFIXES) + ")")
VARIANT_PATTERN = UNTUNED_PATTERN + re.sub(r"\(\?P<\w+>", "(?:", _TUNED)
_PARSE = re.compile(r"^(?P<kind>[a-z0-9_]+?)" + _SUFFIXES + _TUNED + "$")


@dataclass(frozen=True)
class Variant:
    """A parsed variant name. ``r`` / ``tau`` are None where the name does not set them
    (the config's ``localize.r`` / ``train.tau`` apply)."""

    name: str
    kind: str
    r: int | None = None
    tau: float | None = None
    #: where the intent vectors come from: "llm" (localized LLM answers), "items" (the
    #: session's own item texts, a control), "random" (random directions with the norms
    #: of the LLM intents, a control) or "items-random" (... of the item-text intents)
    source: str = "llm"
    #: control: each sample reads another sample's intents (same split)
    shuffled: bool = False
    #: the training settings come from a validation search (train/tuning.py)
    tuned: bool = False

    @property
    def untuned(self) -> str:
        """The name without ``-tuned``: the variant whose configurations are searched."""
        return self.name.removesuffix(TUNED_SUFFIX) if self.tuned else self.name

    @property
    def uses_tau(self) -> bool:
        """Whether τ weighs a loss term of this variant (wrapper modes with L_a or L_u)."""
        return self.mode is not None and self.mode not in TAU_FREE_MODES

    @property
    def mode(self) -> str | None:
        """The LLM4SBR wrapper mode, or None for variants without the wrapper."""
        return WRAPPER_MODES.get(self.kind)

    @property
    def views(self) -> tuple[str, ...]:
        """The intent views this variant reads (empty: it needs no LLM answers)."""
        return KIND_VIEWS.get(self.kind, ())

    @property
    def uses_item_text(self) -> bool:
        """Whether the run reads the item text vectors (items.npy)."""
        return self.kind == "textinit" or self.item_text_intents

    @property
    def item_text_intents(self) -> bool:
        """Whether the intents are built from the item texts, with no LLM answers
        (``-items``, ``-items-random``)."""
        return self.source in ("items", "items-random")

    @property
    def random_intents(self) -> bool:
        """Whether the intents are random directions (``-random``, ``-items-random``)."""
        return self.source in ("random", "items-random")

    @property
    def reads_llm_intents(self) -> bool:
        """Whether the run reads the localized LLM intents (``-random`` reads their norms)."""
        return bool(self.views) and self.source in ("llm", "random")


def parse_variant(name: str) -> Variant:
    """``"llm4sbr-r3-tau0.5"`` → Variant(kind="llm4sbr", r=3, tau=0.5); a clear
    ConfigError (naming ``train.variants``) for anything else."""
    match = _PARSE.match(name) if isinstance(name, str) else None
    if match is None or match["kind"] not in KINDS:
        raise ConfigError("train.variants", f"unknown variant {name!r}; a variant is one of "
                          f"{list(KINDS)}, LLM variants optionally followed by -r<int>, "
                          "-items, -random or -items-random, then -tau<number>, then "
                          "-shuffled; any variant may end in -tuned (e.g. llm4sbr-r0, "
                          "llm4sbr-tau1, llm4sbr-items-shuffled, base-tuned)")
    kind = match["kind"]
    if kind not in WRAPPER_MODES and any(match[k] for k in ("r", "tau", "source", "shuffled")):
        raise ConfigError("train.variants", f"variant {name!r}: suffixes only apply to the "
                          f"LLM variants {list(WRAPPER_MODES)}")
    return Variant(name, kind, int(match["r"]) if match["r"] is not None else None,
                   float(match["tau"]) if match["tau"] is not None else None,
                   match["source"] or "llm", bool(match["shuffled"]), bool(match["tuned"]))
