"""What the listwise LLM rerankers share (``listwise``: RankGPT; ``first-listwise``: FIRST).

* :func:`window_schedule`: the sliding windows of one pass, from the bottom of the candidate list
  to the top;
* :func:`parse_permutation`: a generated ranking ("[3] > [1] > [2]") to a permutation of the
  window, repaired deterministically, with each kind of repair counted;
* :class:`ListwiseRanker`: the passes of windows over one query's candidates around a
  ``WindowRanker`` (the only place an LLM is involved, so the algorithm can be tested with a
  scripted one);
* :func:`build_prompt`: the RankGPT instruction with labelled passages, in the model's chat
  template when it has one, ending with the opening ``[`` of the answer;
* :class:`ListwiseMethod`: the adapter plumbing (lazy model, costs per query and in total).

Costs: every window is one LLM call; its prompt tokens, generated tokens and wall seconds are
summed per query (stored per item in the result's sidecar through ``item_stats``) and over the run
(``self.stats``).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from harness.errors import HarnessError, ParamError
from harness.ir.base import RerankingMethod
from methods.reranking._common import RerankParams, RerankTransformer
from methods.reranking._llm_scoring import truncate_text

# ---------------------------------------------------------------------------------- the windows


def window_schedule(n: int, window: int, step: int) -> list[tuple[int, int]]:
    """The windows ``[start, end)`` of one pass over ``n`` candidates, in the order they are ranked.

    As in RankGPT and rank_llm: the first window is the bottom ``window`` candidates, each next
    one is ``step`` positions higher, and the last is clamped at the top (it may be shorter:
    ``[0, end)``); the pass stops after the window that starts at 0. A list no longer than the
    window is one window over all of it.
    """
    if n <= 0:
        return []
    if n <= window:
        return [(0, n)]
    out = []
    end = n
    while True:
        start = max(end - window, 0)
        out.append((start, end))
        if start == 0:
            return out
        end -= step


# ---------------------------------------------------------------------------------- the parser

REPAIRS = ("out_of_range", "repeated", "missing")


@dataclasses.dataclass
class Parsed:
    order: list[int]  # 0-based positions in the window, most relevant first (a permutation)
    repairs: dict[str, int]  # count of each kind of repair (ids dropped or appended)


def parse_permutation(text: str, k: int) -> Parsed:
    """A permutation of ``range(k)`` from a generated ranking of 1-based ids such as ``[3] > [1] > [2]``.

    Every integer in the text is read as an id (what RankGPT's ``clean_response`` does: non-digits
    are separators). Repairs, applied in this order and counted separately:

    * ``out_of_range``: an id outside 1..k is dropped;
    * ``repeated``: an id seen before is dropped (the first occurrence is kept);
    * ``missing``: each id that never appeared is appended, in the window's original order.
    """
    repairs = dict.fromkeys(REPAIRS, 0)
    seen: list[int] = []
    for tok in re.findall(r"\d+", text):
        i = int(tok)
        if not 1 <= i <= k:
            repairs["out_of_range"] += 1
        elif i - 1 in seen:
            repairs["repeated"] += 1
        else:
            seen.append(i - 1)
    missing = [i for i in range(k) if i not in seen]
    repairs["missing"] = len(missing)
    return Parsed(seen + missing, repairs)


# ---------------------------------------------------------------------------------- the ranker


@dataclasses.dataclass
class WindowResult:
    order: list[int]  # a permutation of the window's positions, most relevant first
    prompt_tokens: int = 0
    generated_tokens: int = 0
    repairs: dict[str, int] | None = None  # None: nothing parsed (logit ranking)


# (query, passages of one window, top to bottom) -> the window's new order and its cost
WindowRanker = Callable[[str, list[str]], WindowResult]


@dataclasses.dataclass
class QueryCost:
    llm_calls: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0
    repairs: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(REPAIRS, 0))
    repaired_windows: int = 0  # windows whose output needed at least one repair


class ListwiseRanker:
    """``passes`` passes of sliding windows over one query's candidates (see :func:`window_schedule`)."""

    def __init__(self, rank_window: WindowRanker, window: int, step: int, passes: int = 1):
        self.rank_window = rank_window
        self.window, self.step, self.passes = window, step, passes
        self.seen: list[list[int]] = []  # candidate indices each window showed, in call order (tests)

    def rank(self, query: str, passages: list[str]) -> tuple[list[int], QueryCost]:
        """Indices of ``passages`` (given in first-stage order), most relevant first, and the cost."""
        cost = QueryCost()
        order = list(range(len(passages)))
        t0 = time.perf_counter()
        if len(passages) >= 2:
            for _ in range(self.passes):
                for start, end in window_schedule(len(order), self.window, self.step):
                    shown = order[start:end]
                    self.seen.append(list(shown))
                    res = self.rank_window(query, [passages[i] for i in shown])
                    if sorted(res.order) != list(range(len(shown))):
                        raise HarnessError(f"window ranker returned {res.order}, not a permutation of {len(shown)}")
                    order[start:end] = [shown[j] for j in res.order]
                    cost.llm_calls += 1
                    cost.prompt_tokens += res.prompt_tokens
                    cost.generated_tokens += res.generated_tokens
                    if res.repairs is not None:
                        for key, v in res.repairs.items():
                            cost.repairs[key] += v
                        cost.repaired_windows += any(res.repairs.values())
        cost.seconds = time.perf_counter() - t0
        return order, cost


# ---------------------------------------------------------------------------------- the prompt

INSTRUCTION = (
    "I will provide you with {num} passages, each indicated by an identifier []. "
    "Rank the passages based on their relevance to the search query: {query}."
)
FOOTER = (
    "Search Query: {query}.\nRank the {num} passages above based on their relevance to the search query. "
    "All the passages should be included and listed using identifiers, in descending order of relevance. "
    "The output format should be [] > [], e.g., {example}. Only respond with the ranking results, "
    "do not say any word or explain."
)


def build_prompt(tokenizer: Any, query: str, passages: list[str], labels: list[str], max_passage_tokens: int,
                 chat: bool = True) -> str:
    """RankGPT's prompt (Sun et al. 2023) as one user turn, then the assistant's opening ``[``."""
    query = query.strip()
    body = "\n".join(f"[{lab}] {truncate_text(tokenizer, ' '.join(p.split()), max_passage_tokens)}"
                     for lab, p in zip(labels, passages))
    example = f"[{labels[1]}] > [{labels[0]}]" if len(labels) > 1 else f"[{labels[0]}]"
    text = "\n\n".join([INSTRUCTION.format(num=len(passages), query=query), body,
                        FOOTER.format(query=query, num=len(passages), example=example)])
    if chat and getattr(tokenizer, "chat_template", None):
        head = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
        return head + "["
    return text + "\nRanking: ["


# ---------------------------------------------------------------------------------- the adapter


@dataclasses.dataclass(frozen=True)
class ListwiseParams(RerankParams):
    model: str = "smollm2-135m"  # any id harness.llm.models.load_model resolves
    window: int = 20  # passages per LLM call
    step: int = 10  # positions the window moves up between calls (< window: windows overlap)
    passes: int = 1  # passes of windows from the bottom to the top
    depth: int = 100
    max_passage_tokens: int = 128
    chat: bool = True  # wrap the prompt in the tokenizer's chat template when it has one
    dtype: str = "float32"

    def check(self) -> None:
        super().check()
        if self.window < 2:
            raise ParamError(f"parameter window={self.window} must be >= 2 (a window ranks at least two passages)")
        if self.step < 1:
            raise ParamError(f"parameter step={self.step} must be >= 1")
        if self.step >= self.window:
            raise ParamError(f"parameter step={self.step} must be < window={self.window}: windows that do not "
                             "overlap never move a passage from one window into the next")
        if self.window > self.depth:
            raise ParamError(f"parameter window={self.window} is larger than depth={self.depth}; set "
                             "window <= depth (a query with fewer candidates than the window gets one window "
                             "over all of them)")
        if self.passes < 1:
            raise ParamError(f"parameter passes={self.passes} must be >= 1")
        if self.max_passage_tokens < 1:
            raise ParamError(f"parameter max_passage_tokens={self.max_passage_tokens} must be >= 1")


class _QidTransformer(RerankTransformer):
    """A RerankTransformer that tells its method which query it is scoring (for per-query costs)."""

    def __init__(self, method: ListwiseMethod, name: str):
        super().__init__(method.score, method.params.depth, name)
        self.method = method

    def transform(self, inp: Any) -> Any:
        if len(inp) == 0 or "qid" not in inp.columns:
            return super().transform(inp)
        parts = []
        for qid in dict.fromkeys(inp["qid"]):
            self.method.current_qid = str(qid)
            parts.append(super().transform(inp[inp["qid"] == qid]))
        self.method.current_qid = None
        return pd.concat(parts, ignore_index=True)


class ListwiseMethod(RerankingMethod):
    """Base of the listwise adapters: subclasses implement ``llm_window`` (one LLM call per window)."""

    tag = "listwise"

    def __init__(self, params: ListwiseParams, loaded: Any | None = None, device: str = "cpu",
                 window_ranker: WindowRanker | None = None):
        super().__init__(params)
        self._loaded = loaded
        self.device = device
        self._window_ranker = window_ranker  # tests inject a scripted one; otherwise the LLM
        self.current_qid: str | None = None
        # per query id: its cost, stored as extra fields of the query's item in the sidecar
        self.item_stats: dict[str, dict[str, float]] = {}
        self.stats: dict[str, Any] = {
            "queries": 0, "llm_calls": 0, "prompt_tokens": 0, "generated_tokens": 0, "llm_seconds": 0.0,
            "llm_calls_per_query": [], "repaired_windows": 0, "short_lists": 0,
            **{f"repair_{k}": 0 for k in REPAIRS},
        }

    @property
    def loaded(self) -> Any:
        if self._loaded is None:
            from harness.llm.models import load_model

            self._loaded = load_model(self.params.model, device=self.device, dtype=self.params.dtype)
            if self._loaded.tokenizer is None:
                raise ParamError(f"model {self.params.model!r} has no tokenizer; {self.tag} needs one")
        return self._loaded

    def llm_window(self, query: str, passages: list[str]) -> WindowResult:
        raise NotImplementedError

    def check_context(self, n_tokens: int) -> None:
        limit = getattr(self.loaded.model.config, "max_position_embeddings", None)
        if limit and n_tokens > limit:
            raise HarnessError(f"{self.tag}: a window's prompt is {n_tokens} tokens, more than the model's "
                               f"{limit}; lower window or max_passage_tokens")

    def score(self, query: str, passages: list[str]) -> list[float]:
        p = self.params
        ranker = ListwiseRanker(self._window_ranker or self.llm_window, p.window, p.step, p.passes)
        order, cost = ranker.rank(query, passages)
        s = self.stats
        s["queries"] += 1
        s["short_lists"] += 1 < len(passages) < p.window
        s["llm_calls"] += cost.llm_calls
        s["llm_calls_per_query"].append(cost.llm_calls)
        s["prompt_tokens"] += cost.prompt_tokens
        s["generated_tokens"] += cost.generated_tokens
        s["llm_seconds"] += cost.seconds
        s["repaired_windows"] += cost.repaired_windows
        for k, v in cost.repairs.items():
            s[f"repair_{k}"] += v
        if self.current_qid is not None:
            self.item_stats[self.current_qid] = {
                "llm_calls": cost.llm_calls, "prompt_tokens": cost.prompt_tokens,
                "generated_tokens": cost.generated_tokens, "llm_seconds": round(cost.seconds, 6)}
        scores = [0.0] * len(passages)
        for pos, i in enumerate(order):
            scores[i] = float(len(passages) - pos)
        return scores

    def transformer(self) -> RerankTransformer:
        return _QidTransformer(self, self.tag)
