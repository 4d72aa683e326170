"""LLM4SBR's representation-enhancement stage (paper §4.2, eqs. 6–15) around ANY backbone.

The wrapper sees a backbone only through the :class:`~.base.Backbone` interface: its
``encode`` → ``(h_local, h_global, item_table)``, its own ``session_head`` (variant
``normal`` only), its ``item_embedding`` table (variant ``wo_sbr`` only) and its optional
``auxiliary_loss`` (S²-DHCN's β·L_s, kept as part of the backbone). It never reaches into
a backbone's modules.

Per sample the LLM stage supplies one localized intent vector per view (``short``,
``long``, or the qualifier-free ``normal``), an [S, t] array indexed by ``sample_id``
(S = the samples of all splits; t = the text encoder's width, 384 or 768, not d).

Equations (B = batch, d = backbone width, t = text width; σ = sigmoid):

    ĥ_p   = T h_infer^p                         T: Linear(t → d, bias)       [B, d]  (7)
    α_lt  = Q1ᵀ σ(h_global + ĥ_long)            Q1 ∈ R^d                     [B, 1]  (10)
    α_st  = Q2ᵀ σ(h_local  + ĥ_short)           Q2 ∈ R^d                     [B, 1]  (11)
    h_sess = W [h_local · α_st ; h_global · α_lt]   W: Linear(2d → d, bias)  [B, d]  (12)
    scores = h_sess · item_tableᵀ               over all N + 1 rows          [B, N+1] (13)
    L      = CE + τ Σ_views (L_a + L_u)                                               (15)

DirectAU (Wang et al., KDD 2022) on L2-normalised vectors x̃ = x / ‖x‖, per view p with
its session vector (long ↔ h_global, short ↔ h_local, normal ↔ the combined vector):

    L_a = mean_b ‖ĥ̃_p,b − h̃_p,b‖²                                                     (8)
    L_u = ½ U(ĥ_p) + ½ U(h_p),   U(x) = log mean_{i<j} exp(−2 ‖x̃_i − x̃_j‖²)           (9)

U is computed as logsumexp(−2 D) − log |pairs| with the squared distances D = 2 − 2 x̃_iᵀx̃_j
from the Gram matrix (no square root, so two identical rows — two samples with the same
intent — give a finite gradient, which ``pdist(...).pow(2)`` does not guarantee). A batch
of one session has no pair: U = 0.

Reading of the paper, checked against the authors' code (tsinghua-fib-lab/LLM4SBR,
``model_LLM.py``, SR-GNN only):

* Q1, Q2 ∈ R^d (the paper) make α a SCALAR per session ([B, 1]) that rescales the whole
  local / global vector; the authors' ``linear_four`` / ``linear_five`` are
  Linear(d → 1, bias=False): the same reading;
* eq. (7) writes ONE matrix T for every view, and the authors' code has one
  ``linear_text2seq`` (768 → d, with bias) shared by both views: ``shared_projection=True``
  (the default) does that; ``shared_projection=False`` gives each view its own T (then
  the views may have different text widths);
* W has a bias (the authors reuse SR-GNN's ``linear_transform``, which has one); here W
  is the wrapper's own, since the backbone's head is not part of the interface. The
  authors concatenate [global; local]: eq. (12)'s [local; global] is the same model up
  to a permutation of W's columns;
* alignment is on the session vectors BEFORE the gates (the authors align ``a`` and
  ``ht`` before rescaling them); uniformity is within the batch, for both sides, halved;
* the authors draw every parameter from U(−1/√d, 1/√d): the wrapper does so for its own
  T, Q and W (the backbone keeps its own initialisation).

Variants (``mode``), each removing exactly one thing:

* ``full``     — the equations above (views short + long).
* ``wo_au``    — no alignment/uniformity term: :meth:`LLM4SBR.auxiliary_loss` returns
  ``None`` (the trainer then adds nothing: ``loss if aux is None else loss + aux``), or
  the backbone's own auxiliary loss if it has one. The fusion is unchanged.
* ``wo_u``     — alignment only: τ Σ_views L_a (no uniformity term); fusion unchanged.
* ``wo_a``     — uniformity only: τ Σ_views L_u (no alignment term); fusion unchanged.
  With ``wo_au`` these two split the term's effect from the wrapper's architecture
  (the extra readout, gates and fusion the wrapper adds to every backbone).
* ``wo_long``  — short view only (paper "w/o Long"): the long intents are never stored
  nor read; Q1 does not exist and h_global enters the fusion ungated:
  h_sess = W [h_local · α_st ; h_global];  L = CE + τ (L_a + L_u)_short.
* ``wo_short`` — symmetric: h_sess = W [h_local ; h_global · α_lt];  τ (L_a + L_u)_long.
* ``normal``   — one qualifier-free view "normal" (paper "LLM4SBR-Normal"), aligned with
  the backbone's OWN combined session vector h_c = backbone.session_head(enc) (SR-GNN's
  W_3[s_l; s_g], GRU4Rec/SASRec's h_local, GCE-GNN/S²-DHCN's h_global), since the paper
  aligns it "with the comprehensive session embedding learned by the traditional SBR
  model". With one view eq. (12) has one block:
  α_n = Q_nᵀ σ(h_c + ĥ_normal) [B, 1],  h_sess = W_n (h_c · α_n),  W_n: Linear(d → d);
  L = CE + τ (L_a + L_u)(ĥ_normal, h_c).
* ``wo_sbr``   — the LLM intents alone (paper "w/o SBR" / "LLM-Infer"): ``backbone.encode``
  is never called and no backbone output is used; h_sess = W [ĥ_short ; ĥ_long] (no gate:
  the gates mix SBR and LLM vectors, and there is no SBR vector), scored against the
  backbone's raw item table ``backbone.item_embedding.weight`` (for S²-DHCN that is the
  un-convolved table: the hypergraph convolution is backbone computation). No auxiliary
  term (nothing to align with). In the :class:`IntentEncoded` of this mode h_local and
  h_global hold ĥ_short and ĥ_long.

The backbone's own auxiliary loss (S²-DHCN's self-supervised β·L_s) is part of the
backbone and is added in every mode that runs the backbone (all but ``wo_sbr``).

Intent arrays: numpy arrays (memmaps included) are wrapped with ``torch.from_numpy``
without a copy and registered as NON-persistent buffers: they follow ``.to(device)`` but
are not written into ``state_dict`` / checkpoints. Only the views a mode needs are looked
at; rows are gathered per batch and then cast to the projection's dtype, so a float16
memmap stays float16 on disk and in memory.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.batches import SessionBatch
from ..errors import InvalidInputError, InvalidTypeError, UnknownNameError
from .base import Backbone, Encoded

__all__ = ["MODES", "MODE_VIEWS", "LLM4SBR", "IntentEncoded", "align_uniform", "alignment",
           "intent_tensor", "uniformity"]

#: The intent views each variant reads (and the only ones it looks at).
MODE_VIEWS: dict[str, tuple[str, ...]] = {
    "full": ("short", "long"),
    "wo_au": ("short", "long"),
    "wo_u": ("short", "long"),
    "wo_a": ("short", "long"),
    "wo_long": ("short",),
    "wo_short": ("long",),
    "normal": ("normal",),
    "wo_sbr": ("short", "long"),
}
MODES: tuple[str, ...] = tuple(MODE_VIEWS)


# --------------------------------------------------------------------------- DirectAU

def alignment(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. (8): mean over rows of ‖x̃ − ỹ‖² on L2-normalised rows; x, y [B, d] → scalar."""
    x, y = F.normalize(x.float(), dim=-1), F.normalize(y.float(), dim=-1)
    return (x - y).pow(2).sum(-1).mean()


def uniformity(x: torch.Tensor) -> torch.Tensor:
    """log mean_{i<j} exp(−2 ‖x̃_i − x̃_j‖²) over the distinct row pairs; 0 for < 2 rows."""
    b = x.shape[0]
    if b < 2:
        return x.new_zeros((), dtype=torch.float32)
    x = F.normalize(x.float(), dim=-1)
    i, j = torch.triu_indices(b, b, offset=1, device=x.device)
    sq = (2.0 - 2.0 * (x @ x.T)[i, j]).clamp_min(0.0)  # ‖x̃_i − x̃_j‖² of unit vectors
    return torch.logsumexp(-2.0 * sq, dim=0) - math.log(sq.numel())


def align_uniform(intent: torch.Tensor, session: torch.Tensor) -> torch.Tensor:
    """L_a + L_u of one view (eqs. 8–9): alignment + the halved sum of both uniformities."""
    return alignment(intent, session) + 0.5 * (uniformity(intent) + uniformity(session))


# --------------------------------------------------------------------------- intents

def intent_tensor(view: str, array: torch.Tensor | np.ndarray) -> torch.Tensor:
    """An [S, t] floating tensor sharing ``array``'s memory where possible (memmaps too)."""
    if isinstance(array, torch.Tensor):
        tensor = array.detach()
    else:
        arr = np.asarray(array)  # a memmap → an ndarray view of the same pages
        if any(s < 0 for s in arr.strides) or not arr.dtype.isnative:
            arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
        with warnings.catch_warnings():
            # read-only memmaps: torch warns that it cannot protect them; we never write
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            tensor = torch.from_numpy(arr)
    if tensor.ndim != 2 or not tensor.is_floating_point():
        raise InvalidInputError(f"intents[{view!r}] must be a 2-D float array [samples, text_dim], "
                                f"got {tuple(tensor.shape)} {tensor.dtype}")
    return tensor


def _positional_arity(fn) -> int:
    return len([p for p in inspect.signature(fn).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])


# --------------------------------------------------------------------------- the model

@dataclass
class IntentEncoded(Encoded):
    """The backbone's :class:`Encoded` plus the projected intents of the batch."""

    intents: dict[str, torch.Tensor] = field(default_factory=dict)  # view → ĥ_p [B, d]
    h_combined: torch.Tensor | None = None  # normal: backbone.session_head(base) [B, d]
    base: Encoded | None = None  # what backbone.encode returned (None in wo_sbr)


class LLM4SBR(Backbone):
    """LLM4SBR's alignment, gates and fusion around ``backbone`` (see the module docstring).

    Args:
        backbone: any :class:`Backbone`, already built (with its training graph if any).
        intents: view name → [S, t] float array indexed by ``sample_id`` (numpy, memmap
            or tensor). Only the views of ``MODE_VIEWS[mode]`` are required and looked at.
        mode: one of :data:`MODES`.
        tau: weight τ of the alignment + uniformity term (paper 0.1).
        shared_projection: one T for all views (eq. 7 and the authors' code) rather than
            one per view.
    """

    name = "llm4sbr"

    def __init__(self, backbone: Backbone, intents: Mapping[str, torch.Tensor | np.ndarray],
                 mode: str = "full", tau: float = 0.1, *, shared_projection: bool = True):
        # nn.Module only: Backbone.__init__ would create a second, unused item table; the
        # item table is the backbone's (see item_embedding).
        nn.Module.__init__(self)
        if not isinstance(backbone, Backbone):
            raise InvalidTypeError(f"backbone must be a Backbone, got {type(backbone).__name__}")
        if mode not in MODE_VIEWS:
            raise InvalidInputError(f"unknown LLM4SBR mode {mode!r}; known modes: {list(MODES)}")
        if not (math.isfinite(tau) and tau >= 0):
            raise InvalidInputError(f"tau must be a finite number >= 0, got {tau}")
        self.backbone = backbone
        self.n_items, self.dim = backbone.n_items, backbone.dim
        self.mode, self.tau = mode, float(tau)
        self.views = MODE_VIEWS[mode]
        self.shared_projection = shared_projection
        missing = [v for v in self.views if v not in intents]
        if missing:
            raise UnknownNameError(f"LLM4SBR mode {mode!r} needs intents for views "
                                   f"{list(self.views)}; missing {missing}")
        widths, rows = {}, {}
        for view in self.views:  # never touch the views this mode does not use
            tensor = intent_tensor(view, intents[view])
            self.register_buffer(self._buffer(view), tensor, persistent=False)
            rows[view], widths[view] = tensor.shape
        if len(set(rows.values())) > 1:
            raise InvalidInputError(f"intent arrays have different numbers of samples: {rows}")
        if shared_projection and len(set(widths.values())) > 1:
            raise InvalidInputError(f"a shared projection T needs one text width, got {widths}; "
                                    "use shared_projection=False")
        d = self.dim
        keys = ["text"] if shared_projection else list(self.views)
        width = next(iter(widths.values()))
        self.projection = nn.ModuleDict(  # T of eq. (7)
            {k: nn.Linear(widths.get(k, width), d) for k in keys})
        gated = () if mode == "wo_sbr" else self.views  # wo_sbr: no SBR vector to gate
        # Q1 (long), Q2 (short), Q_n (normal): Linear(d → 1, bias=False) = qᵀ x
        self.gates = nn.ModuleDict({v: nn.Linear(d, 1, bias=False) for v in gated})
        self.fuse = nn.Linear(d if mode == "normal" else 2 * d, d)  # W of eq. (12)
        self.reset_parameters()

    @staticmethod
    def _buffer(view: str) -> str:
        return f"intents_{view}"

    def reset_parameters(self) -> None:
        """The authors' U(−1/√d, 1/√d) for the wrapper's own parameters (T, Q, W)."""
        bound = 1.0 / math.sqrt(self.dim)
        with torch.no_grad():
            for module in (self.projection, self.gates, self.fuse):
                for param in module.parameters():
                    param.uniform_(-bound, bound)

    @property
    def item_embedding(self) -> nn.Embedding:  # type: ignore[override]
        """The backbone's item table (the wrapper has none of its own)."""
        return self.backbone.item_embedding

    def extra_repr(self) -> str:
        return (f"mode={self.mode!r}, tau={self.tau}, views={list(self.views)}, "
                f"shared_projection={self.shared_projection}")

    # ------------------------------------------------------------------ forward parts

    def projected_intent(self, view: str, batch: SessionBatch) -> torch.Tensor:
        """ĥ_view = T h_infer^view for the batch's samples, [B, d] (eq. 7)."""
        linear = self.projection["text" if self.shared_projection else view]
        rows = getattr(self, self._buffer(view))[batch.sample_ids]
        return linear(rows.to(device=linear.weight.device, dtype=linear.weight.dtype))

    def encode(self, batch: SessionBatch) -> IntentEncoded:
        intents = {view: self.projected_intent(view, batch) for view in self.views}
        if self.mode == "wo_sbr":  # the backbone is not run at all
            return IntentEncoded(h_local=intents["short"], h_global=intents["long"],
                                 item_table=self.backbone.item_embedding.weight,
                                 intents=intents)
        base = self.backbone.encode(batch)
        combined = self.backbone.session_head(base) if self.mode == "normal" else None
        return IntentEncoded(h_local=base.h_local, h_global=base.h_global,
                             item_table=base.item_table, intents=intents,
                             h_combined=combined, base=base)

    def _gate(self, view: str, session: torch.Tensor, enc: IntentEncoded) -> torch.Tensor:
        """α_view = Qᵀ σ(h + ĥ_view), [B, 1] (eqs. 10–11)."""
        return self.gates[view](torch.sigmoid(session + enc.intents[view]))

    def session_head(self, enc: IntentEncoded) -> torch.Tensor:  # type: ignore[override]
        """h_sess [B, d] of eq. (12) for this mode (see the module docstring)."""
        if self.mode == "wo_sbr":
            return self.fuse(torch.cat([enc.intents["short"], enc.intents["long"]], dim=-1))
        if self.mode == "normal":
            h_c = enc.h_combined
            return self.fuse(h_c * self._gate("normal", h_c, enc))
        local, global_ = enc.h_local, enc.h_global
        if "short" in self.gates:
            local = local * self._gate("short", enc.h_local, enc)
        if "long" in self.gates:
            global_ = global_ * self._gate("long", enc.h_global, enc)
        return self.fuse(torch.cat([local, global_], dim=-1))

    def session_vector(self, view: str, enc: IntentEncoded) -> torch.Tensor:
        """The session vector a view's intent is aligned with."""
        if view == "normal":
            return enc.h_combined
        return enc.h_local if view == "short" else enc.h_global

    def _au_term(self, intent: torch.Tensor, session: torch.Tensor) -> torch.Tensor:
        """L_a + L_u of one view, or the one half ``wo_u`` / ``wo_a`` keep."""
        if self.mode == "wo_u":
            return alignment(intent, session)
        if self.mode == "wo_a":
            return 0.5 * (uniformity(intent) + uniformity(session))
        return align_uniform(intent, session)

    def auxiliary_loss(self, batch: SessionBatch, enc: IntentEncoded) -> torch.Tensor | None:
        """τ Σ_views (L_a + L_u) (eqs. 8–9, 15) plus the backbone's own auxiliary loss.

        ``None`` when the mode has no such term and the backbone none either (``wo_au`` on
        most backbones, always ``wo_sbr``): the trainer then adds nothing.
        """
        terms = []
        if self.mode != "wo_sbr":
            own = getattr(self.backbone, "auxiliary_loss", None)
            if own is not None:
                aux = own(batch, enc.base) if _positional_arity(own) == 2 else own(batch)
                if aux is not None:
                    terms.append(aux)
        if self.mode not in ("wo_au", "wo_sbr"):
            au = sum(self._au_term(enc.intents[v], self.session_vector(v, enc))
                     for v in self.views)
            terms.append(self.tau * au)
        return sum(terms[1:], terms[0]) if terms else None
