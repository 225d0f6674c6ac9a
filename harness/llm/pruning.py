"""The pruning family's interface and the helpers its adapters share.

A pruning adapter implements :meth:`PruningMethod._prune`: it receives a causal LM (in place) and,
when it asks for it (``needs_calibration``), calibration data; it changes the model and returns a
:class:`PruneReport` of what it did (layers, target and measured sparsity, its own details). The
fixed :meth:`PruningMethod.prune` around it times the call and counts the parameters before and
after, so an adapter file holds only its algorithm and its parameters. Adapters prune the linear
layers inside the transformer blocks and leave embeddings and the LM head dense, as the papers do.

A minimal adapter::

    @register_method("mymethod", "pruning", SparsityParams)
    class MyMethod(PruningMethod):
        '''One-line summary shown on the leaderboard. Cite the paper here.'''

        def _prune(self, model, calibration):
            linears = prunable_linears(model)
            ...  # zero weights in place
            return build_report(linears, self.params.sparsity, details={"pattern": self.params.pattern})
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, final

import torch
from torch import nn

from harness.errors import HarnessError, ParamError
from harness.kinds import CheapTask, MethodBase, SetupContext, SetupOutput
from harness.llm.pruned_cache import PrunedModelCache, cache_key, key_fields, open_cache, source_digest, timed_load
from harness.params import MethodParams, build_params

log = logging.getLogger("harness")

# ---------------------------------------------------------------------------------------------
# Parameters shared by pruning methods


def parse_pattern(pattern: str) -> tuple[int, int] | None:
    """'unstructured' -> None; 'N:M' -> (N, M): N zeros in every group of M consecutive inputs."""
    if pattern == "unstructured":
        return None
    try:
        n_str, m_str = pattern.split(":")
        n, m = int(n_str), int(m_str)
    except ValueError:
        raise ParamError(f"pattern {pattern!r} must be 'unstructured' or 'N:M' (e.g. 2:4)") from None
    if not (0 < n < m):
        raise ParamError(f"pattern {pattern!r}: need 0 < N < M (N zeros in every group of M weights)")
    return n, m


@dataclass(frozen=True)
class SparsityParams(MethodParams):
    """Target sparsity and pattern. For N:M patterns the sparsity is N/M and must agree."""

    sparsity: float = 0.5
    pattern: str = "unstructured"

    def check(self) -> None:
        if not (0.0 <= self.sparsity < 1.0):
            raise ParamError(f"sparsity={self.sparsity} must be in [0, 1)")
        nm = parse_pattern(self.pattern)
        if nm is not None and abs(self.sparsity - nm[0] / nm[1]) > 1e-9:
            raise ParamError(
                f"pattern {self.pattern} fixes sparsity at {nm[0] / nm[1]:g}; got sparsity={self.sparsity}"
            )


MASK_RULES = ("reference", "exact")


@dataclass(frozen=True)
class MaskRuleParams(MethodParams):
    """How a layer's sparsity target becomes a mask. ``reference`` (default): prune every score at
    or below the value at position ``int(n * sparsity)`` of the sorted scores, as the SparseGPT and
    Wanda repositories' magnitude and SparseGPT code do (at least one weight more than the target,
    more on ties); ``exact``: exactly ``int(n * sparsity)`` scores, ties to the lower index."""

    mask_rule: str = "reference"

    def check(self) -> None:
        if self.mask_rule not in MASK_RULES:
            raise ParamError(f"mask_rule={self.mask_rule!r} must be one of {', '.join(MASK_RULES)}")


DEFAULT_CALIBRATION_ORDER = "sampled"


def parse_calibration_order(order: str) -> tuple[str, int | None]:
    """'sampled' | 'reversed' | 'shuffle:<seed>' -> (kind, shuffle seed or None)."""
    if order in ("sampled", "reversed"):
        return order, None
    kind, sep, seed = order.partition(":")
    if kind == "shuffle" and sep:
        try:
            return "shuffle", int(seed)
        except ValueError:
            pass
    raise ParamError(
        f"calibration_order={order!r} must be 'sampled' (as drawn), 'reversed' or 'shuffle:<seed>' (e.g. shuffle:1)"
    )


@dataclass(frozen=True)
class CalibrationParams(MethodParams):
    """How many calibration windows of which length, from which source, with which seed, and in
    which order they are fed (``calibration_order``: the same windows, permuted; a repeat of a run
    that changes only the rounding of the statistics summed over windows, see harness.noise)."""

    nsamples: int = 128
    seqlen: int = 2048
    seed: int = 0
    calibration: str = "auto"  # a calibration set id (tasks/calibration/*.yaml) or 'auto'
    calibration_order: str = DEFAULT_CALIBRATION_ORDER  # 'sampled' | 'reversed' | 'shuffle:<seed>'

    def check(self) -> None:
        if self.nsamples < 1:
            raise ParamError(f"nsamples={self.nsamples} must be >= 1")
        if self.seqlen < 8:
            raise ParamError(f"seqlen={self.seqlen} must be >= 8")
        parse_calibration_order(self.calibration_order)

    def to_dict(self) -> dict[str, Any]:
        # The default order is what every run did before the parameter existed: it stays out of
        # the record (and so out of the run id), so those runs and their re-runs keep one identity.
        out = super().to_dict()
        if out.get("calibration_order") == DEFAULT_CALIBRATION_ORDER:
            del out["calibration_order"]
        return out


@dataclass(frozen=True)
class CalibratedSparsityParams(SparsityParams, CalibrationParams):
    def check(self) -> None:
        SparsityParams.check(self)
        CalibrationParams.check(self)


# ---------------------------------------------------------------------------------------------
# What an adapter receives and returns


@dataclass
class Calibration:
    """Calibration windows (``input_ids``: LongTensor [nsamples, seqlen]) and where they came from."""

    input_ids: torch.Tensor
    source: dict[str, Any]


@dataclass
class PruneReport:
    """What a pruning adapter did. ``layers`` has one entry per pruned module."""

    layers: list[dict[str, Any]] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0  # parameters that remain (non-zero for masks; count for removals)
    target_sparsity: float | None = None
    measured_sparsity: float | None = None  # zero fraction over the pruned linear layers
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class PruningMethod(MethodBase):
    """Base class of pruning adapters. Subclasses are registered with ``register_method`` and
    implement :meth:`_prune` (the algorithm only); :meth:`prune` is fixed (a template method: it
    times the call, counts parameters before and after and fills the report's common fields).

    Lifecycle, as the runner drives it: :meth:`resolve_params` (before the run id is computed),
    :meth:`check_model`, then :meth:`setup` once (load the model, build calibration data when the
    method needs it, prune, optionally save), then the evaluators of the tasks."""

    family: ClassVar[str] = "pruning"
    scaffold: ClassVar[str | None] = "harness.llm.scaffold_template:PRUNING"
    cheap_task: ClassVar[CheapTask | None] = CheapTask("wikipedia-gensim-ppl", 1, "smollm2-135m",
                                                       {"nsamples": "4", "seqlen": "128"})
    final_methods: ClassVar[tuple[str, ...]] = ("prune",)  # adapters implement _prune
    needs_calibration: ClassVar[bool] = False
    takes_model: ClassVar[bool] = True  # the runner requires --model
    # True when the method removes weights (blocks, channels): params_after counts what remains;
    # False for masks: params_after counts the non-zero parameters.
    removes_weights: ClassVar[bool] = False

    # ----------------------------------------------------------------------------- lifecycle

    @classmethod
    def resolve_params(cls, raw: dict[str, str], model: str | None) -> MethodParams:
        """Typed parameters; ``calibration=auto`` becomes a concrete calibration set first (it is
        stored in the run's parameters). A config: model has random weights and no tokenizer: its
        only calibration is random token ids."""
        raw = dict(raw)
        defaults = {name: default for name, _, default in cls.Params.describe()}
        if "calibration" in defaults:
            from harness.llm.calibration import RANDOM_TOKENS, resolve_calibration_name

            name = raw.get("calibration", defaults["calibration"])
            if model and model.startswith("config:"):
                if name == "auto":
                    name = RANDOM_TOKENS
                elif name != RANDOM_TOKENS:
                    raise ParamError(
                        f"calibration={name!r}: model {model} has random weights and no tokenizer; "
                        f"its calibration is calibration={RANDOM_TOKENS} (the default for config: models)"
                    )
            raw["calibration"] = resolve_calibration_name(name)
        params = build_params(cls.Params, raw, method=cls.method_name)
        check_blocks = getattr(params, "check_block_count", None)  # layer removal: blocks < the model's
        if model and check_blocks is not None:
            from harness.llm import models as modelsmod

            n_blocks = modelsmod.block_count(model)
            if n_blocks is not None:
                check_blocks(n_blocks)
        return params

    @classmethod
    def check_model(cls, model: str | None) -> None:
        from harness.llm import models as modelsmod

        if not model:
            raise HarnessError(f"method {cls.method_name} prunes a model: give --model (e.g. smollm2-135m)")
        modelsmod.check_model_id(model)

    @classmethod
    def model_digest(cls, model: str | None) -> str | None:
        from harness.llm import models as modelsmod

        return modelsmod.model_digest(model) if model else None

    def setup(self, ctx: SetupContext) -> SetupOutput:
        """Load the model, build the calibration data when needed, prune, save when asked."""
        from harness.llm import models as modelsmod

        out = self.setup_output
        t0 = time.perf_counter()
        log.info("loading model %s", ctx.model)
        loaded = modelsmod.load_model(ctx.model, device=ctx.device, dtype=ctx.dtype)
        out.model = loaded
        out.timings["load_seconds"] = time.perf_counter() - t0
        calibration = None
        if self.needs_calibration:
            t0 = time.perf_counter()
            calibration = self.load_calibration(loaded)
            out.timings["calibration_seconds"] = time.perf_counter() - t0
        cache = None if self.removes_weights else open_cache(ctx.cache_dir)
        if cache is None:
            doc, out.timings["prune_seconds"] = self._prune_timed(loaded, calibration)
        else:
            doc, out.timings["prune_seconds"] = self._prune_cached(cache, ctx, loaded, calibration)
        if ctx.save_model is not None:
            modelsmod.save_model(loaded, ctx.save_model, {
                "method": self.method_name, "params": self.params.to_dict(), "pruning": doc, "command": ctx.command,
            })
            log.info("saved pruned model to %s", ctx.save_model)
        out.sections = {"pruning": layers_to_artifact(doc, out.artifacts), "calibration": doc["calibration"]}
        return out

    def _prune_timed(self, loaded: Any, calibration: Calibration | None) -> tuple[dict[str, Any], float]:
        log.info("pruning with %s %s", self.method_name, self.params.semantic_dict())
        t0 = time.perf_counter()
        report = self.prune(loaded.model, calibration)
        seconds = time.perf_counter() - t0
        return report.to_dict() | {"calibration": calibration.source if calibration else None}, seconds

    def _prune_cached(self, cache: PrunedModelCache, ctx: SetupContext, loaded: Any,
                      calibration: Calibration | None) -> tuple[dict[str, Any], float]:
        """Load the weights an earlier run made with the same inputs (harness.llm.pruned_cache),
        or prune and store them. The pruning time reported is the method's, from when it ran."""
        import inspect

        from harness.llm import calibration as calibration_module

        fields = key_fields(
            model_id=ctx.model or "", model_digest=self.model_digest(ctx.model), method=self.method_name,
            version=int(getattr(type(self), "version", 1)), params=self.params.semantic_dict(),
            calibration=calibration.source if calibration else None, device=ctx.device, dtype=ctx.dtype,
            code=source_digest(inspect.getmodule(type(self)), sys.modules[__name__], calibration_module))
        key = cache_key(fields)
        with cache.lock(key):
            entry, load_seconds = timed_load(cache, key, loaded.model)
            if entry is not None:
                log.info("pruned model loaded from the cache (%s, made %s)", key[:12], entry["created_at"])
                doc = entry["pruning"]
                doc["details"]["pruned_model_cache"] = {
                    "hit": True, "key": key, "created_at": entry["created_at"], "command": entry.get("command"),
                    "load_seconds": load_seconds}
                return doc, float(entry["prune_seconds"])
            doc, seconds = self._prune_timed(loaded, calibration)
            stored = cache.store(key, loaded.model, {"pruning": doc, "prune_seconds": seconds,
                                                     "command": ctx.command, "key_fields": fields})
        doc["details"]["pruned_model_cache"] = {"hit": False, "key": key, "stored": stored}
        return doc, seconds

    def load_calibration(self, loaded: Any) -> Calibration:
        """The calibration windows the parameters ask for (``CalibrationParams`` fields)."""
        from harness.llm.calibration import load_calibration

        p = self.params
        order = getattr(p, "calibration_order", DEFAULT_CALIBRATION_ORDER)
        log.info("calibration: %s x %s tokens from %s (seed %s, order %s)", p.nsamples, p.seqlen, p.calibration,
                 p.seed, order)
        return load_calibration(
            loaded.tokenizer, name=p.calibration, nsamples=p.nsamples, seqlen=p.seqlen, seed=p.seed,
            vocab_size=int(loaded.model.config.vocab_size), order=order,
        )

    # ----------------------------------------------------------------------------- pruning

    @final
    def prune(self, model: nn.Module, calibration: Calibration | None) -> PruneReport:
        """Change ``model`` in place through :meth:`_prune` and report what was done."""
        if self.needs_calibration and calibration is None:
            raise HarnessError(f"{self.method_name} needs calibration data")
        t0 = time.perf_counter()
        params_before = count_parameters(model)
        report = self._prune(model, calibration)
        report.params_before = params_before
        report.params_after = count_parameters(model) if self.removes_weights else count_nonzero_parameters(model)
        report.details = {"method": self.method_name, **report.details, "seconds": time.perf_counter() - t0}
        return report

    @abstractmethod
    def _prune(self, model: nn.Module, calibration: Calibration | None) -> PruneReport:
        """The algorithm: change ``model`` in place; return the layers, target and measured
        sparsity and the method's details (counts and timing are filled in by :meth:`prune`)."""


# ---------------------------------------------------------------------------------------------
# Shared helpers

LAYERS_ARTIFACT = "pruning_layers"


LAYERS_FORMAT = "json+xz"


def layers_blob(layers: list[dict[str, Any]]) -> bytes:
    """The stored bytes of a pruning's per-layer figures: canonical JSON, xz-compressed (same
    figures, same bytes)."""
    import lzma

    from harness.results import canonical_json

    return lzma.compress(canonical_json(layers).encode(), preset=9)


def layers_to_artifact(doc: dict[str, Any], artifacts: dict[str, tuple[str, bytes]]) -> dict[str, Any]:
    """The pruning section with its per-layer figures moved into the artifact ``pruning_layers``:
    one pruning's figures are the same for every task it is evaluated on, and an artifact is stored
    once by content. The section keeps ``layer_count`` and names the artifact."""
    layers = doc.get("layers")
    if not isinstance(layers, list) or not layers:
        return doc
    artifacts[LAYERS_ARTIFACT] = (LAYERS_FORMAT, layers_blob(layers))
    return {k: v for k, v in doc.items() if k != "layers"} | {"layer_count": len(layers),
                                                              "layers_artifact": LAYERS_ARTIFACT}


def transformer_blocks(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks of a causal LM (Llama/Mistral/Qwen/Gemma/OPT/GPT-2 layouts)."""
    for path in ("model.layers", "model.decoder.layers", "transformer.h", "gpt_neox.layers"):
        obj: Any = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if isinstance(obj, nn.ModuleList):
            return obj
    raise ValueError(f"cannot find the transformer blocks of {type(model).__name__}")


def block_linears(block: nn.Module) -> dict[str, nn.Linear]:
    """The linear layers inside one block, by their name within the block."""
    return {name: mod for name, mod in block.named_modules() if isinstance(mod, nn.Linear)}


def prunable_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """Every linear layer inside the transformer blocks, by full name (embeddings/LM head excluded)."""
    out = {}
    for i, block in enumerate(transformer_blocks(model)):
        for name, mod in block_linears(block).items():
            out[f"layers.{i}.{name}"] = mod
    return out


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_nonzero_parameters(model: nn.Module) -> int:
    return sum(int(torch.count_nonzero(p).item()) for p in model.parameters())


def measured_sparsity(linears: dict[str, nn.Linear]) -> float:
    zeros = sum(int((m.weight == 0).sum().item()) for m in linears.values())
    total = sum(m.weight.numel() for m in linears.values())
    return zeros / total if total else 0.0


def layer_entry(name: str, module: nn.Linear, target: float) -> dict[str, Any]:
    w = module.weight
    return {
        "name": name,
        "shape": list(w.shape),
        "target_sparsity": target,
        "measured_sparsity": float((w == 0).sum().item()) / w.numel(),
    }


def nm_mask_from_scores(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Boolean mask (True = prune) with exactly n lowest-score entries in every group of m
    consecutive inputs of each output row. ``scores``: [out, in], in % m == 0."""
    rows, cols = scores.shape
    if cols % m:
        raise ValueError(f"input dimension {cols} is not a multiple of M={m}")
    groups = scores.reshape(rows, cols // m, m)
    idx = torch.topk(groups, n, dim=-1, largest=False).indices
    mask = torch.zeros_like(groups, dtype=torch.bool)
    mask.scatter_(-1, idx, True)
    return mask.reshape(rows, cols)


def build_report(linears: dict[str, nn.Linear], target: float, details: dict[str, Any] | None = None) -> PruneReport:
    """The report of a mask: one entry per pruned linear (parameter counts: see ``prune``)."""
    return PruneReport(
        layers=[layer_entry(name, mod, target) for name, mod in linears.items()],
        target_sparsity=target,
        measured_sparsity=measured_sparsity(linears),
        details=details or {},
    )


def unstructured_mask_from_scores(scores: torch.Tensor, sparsity: float, per_row: bool) -> torch.Tensor:
    """Boolean mask (True = prune) of exactly ``int(n * sparsity)`` lowest-score entries, where the
    comparison group is each output row (``per_row``, n = in_features, as Wanda) or the whole
    matrix (n = numel, as the magnitude baseline). Ties at the threshold go to the lower index,
    as a stable sort would order them, so the count is exact."""
    flat = scores.reshape(scores.shape[0], -1) if per_row else scores.reshape(1, -1)
    k = int(flat.shape[1] * sparsity)
    if k == 0:
        return torch.zeros_like(scores, dtype=torch.bool)
    # k-th smallest per group (a selection, several times faster than sorting a large matrix)
    thr = torch.kthvalue(flat, k, dim=1, keepdim=True).values
    mask = flat < thr
    at_thr = flat == thr
    missing = k - mask.sum(dim=1, keepdim=True)
    mask |= at_thr & (torch.cumsum(at_thr, dim=1) <= missing)
    return mask.reshape(scores.shape)


def at_or_below_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Boolean mask (True = prune) of every score at or below the value at position
    ``int(numel * sparsity)`` of the ascending sorted scores of the whole tensor: the rule of the
    reference implementations (``W_metric <= sort(W_metric.flatten())[int(numel * s)]``). It prunes
    at least ``int(numel * sparsity) + 1`` entries, and every entry tied with the threshold."""
    flat = scores.reshape(-1)
    k = int(flat.numel() * sparsity)
    # the (k+1)-th smallest value is sorted[k] exactly (a selection, cheaper than a full sort)
    thr = torch.kthvalue(flat, k + 1).values
    return scores <= thr


def layer_mask(scores: torch.Tensor, sparsity: float, rule: str) -> torch.Tensor:
    """The whole-matrix mask of ``scores`` under ``rule`` ('reference' or 'exact', MASK_RULES)."""
    if rule == "reference":
        return at_or_below_mask(scores, sparsity)
    if rule == "exact":
        return unstructured_mask_from_scores(scores, sparsity, per_row=False)
    raise ParamError(f"mask_rule={rule!r} must be one of {', '.join(MASK_RULES)}")


def check_nm_shapes(linears: dict[str, nn.Linear], nm: tuple[int, int] | None) -> None:
    """Refuse an N:M pattern up front when some layer's input dimension is not a multiple of M."""
    if nm is None:
        return
    bad = [f"{name} (in_features={mod.in_features})" for name, mod in linears.items() if mod.in_features % nm[1]]
    if bad:
        raise ParamError(f"pattern {nm[0]}:{nm[1]} needs in_features divisible by {nm[1]}; not so for {', '.join(bad[:3])}")
