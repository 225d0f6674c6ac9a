"""Pairwise Ranking Prompting (Qin et al., NAACL Findings 2024, arXiv:2306.17563) with a causal LM.

The prompt of the paper asks which of two passages is more relevant::

    Given a query "{query}", which of the following two passages is more relevant to the query?

    Passage A: "{passage_a}"

    Passage B: "{passage_b}"

    Output Passage A or Passage B:

Scoring mode (generation-free, as in the paper): compare the likelihoods of the targets
"Passage A" and "Passage B". Their first token " Passage" is shared, so the prompt is extended
with " Passage" and log P(" A") is compared with log P(" B") at the next position.

Each comparison asks both orders, (d_i, d_j) and (d_j, d_i), to remove position bias: d_i beats
d_j when both prompts prefer it; otherwise (inconsistent answers) the two are tied. Within one
query every ordered prompt is asked at most once (a cache), so repeated comparisons cost nothing.
The number of prompts sent to the LLM ("inferences") is stored per query.

Variants (all over the top ``depth`` passages of the first stage):

* ``allpairs``: all n(n-1) ordered prompts, batched; s_i = sum_j [1 if d_i beats d_j, 0.5 if tied];
  ranked by s_i, ties in first-stage order.
* ``sliding``: ``passes`` passes of a bubble-sort window from the bottom of the first-stage ranking
  (positions n-2 .. 0; the lower passage is swapped up when it beats the upper one); K passes
  give the top K (the paper uses K = 10). At most passes x (n-1) comparisons x 2 prompts, fewer
  with the cache.
* ``sorting``: heapsort (build a max-heap, then n-1 extractions; "a beats b" as the order), as in
  the paper; O(n log n) comparisons. Ties go to the passage the first stage ranked higher.

The output is a ranking; the adapter turns it into scores ``depth - position`` (distinct), so the
first-stage rows below ``depth`` keep their order beneath.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

from harness.errors import ParamError
from harness.ir.base import RerankingMethod
from methods.reranking._llm_scoring import next_token_logprobs, single_token_id, truncate_text
from harness.registry import register_method
from methods.reranking._common import RerankParams, RerankTransformer

PROMPT = (
    'Given a query "{query}", which of the following two passages is more relevant to the query?\n\n'
    'Passage A: "{passage_a}"\n\nPassage B: "{passage_b}"\n\nOutput Passage A or Passage B: Passage'
)

# (query, [(passage in slot A, passage in slot B)]) -> log P(A) - log P(B) per prompt (> 0: A preferred)
Judge = Callable[[str, list[tuple[str, str]]], list[float]]


class PairwiseRanker:
    """The PRP algorithms over one query's passages, with a per-query cache of ordered prompts.

    ``judge`` answers a batch of ordered prompts; it is the only place an LLM is involved, so the
    algorithms and their inference counts can be tested with a scripted judge.
    """

    def __init__(self, judge: Judge, batch_size: int = 16, cache: bool = True):
        self.judge = judge
        self.batch_size = batch_size
        self.use_cache = cache
        self.inferences = 0
        # comparisons decided from both orders, and those whose two answers disagreed (a tie):
        # the share of the latter measures the judge's position bias (Qin et al. 2023, sec. 4)
        self.comparisons = 0
        self.inconsistent = 0
        self._cache: dict[tuple[int, int], float] = {}
        self._query = ""
        self._passages: list[str] = []

    def _ask(self, ordered: list[tuple[int, int]]) -> dict[tuple[int, int], float]:
        """Preferences for ordered pairs (i in slot A, j in slot B), asking the judge what is missing."""
        if self.use_cache:
            todo = list(dict.fromkeys(p for p in ordered if p not in self._cache))
        else:
            todo = list(ordered)
        fresh: dict[tuple[int, int], float] = {}
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            prefs = self.judge(self._query, [(self._passages[i], self._passages[j]) for i, j in chunk])
            if len(prefs) != len(chunk):
                raise RuntimeError(f"judge returned {len(prefs)} preferences for {len(chunk)} prompts")
            self.inferences += len(chunk)
            fresh.update(zip(chunk, (float(p) for p in prefs)))
        if self.use_cache:
            self._cache.update(fresh)
            return {p: self._cache[p] for p in ordered}
        return {p: fresh[p] for p in ordered}

    def compare(self, i: int, j: int) -> int:
        """+1 if d_i beats d_j in both orders, -1 if d_j does, 0 (tie) when the answers disagree."""
        prefs = self._ask([(i, j), (j, i)])
        return self._count(self._outcome(prefs[(i, j)], prefs[(j, i)]))

    def _count(self, outcome: int) -> int:
        self.comparisons += 1
        self.inconsistent += outcome == 0
        return outcome

    @staticmethod
    def _outcome(pref_ij: float, pref_ji: float) -> int:
        # pref_ij > 0: d_i (slot A) preferred; pref_ji < 0: d_i (slot B) preferred
        if pref_ij > 0 and pref_ji < 0:
            return 1
        if pref_ij < 0 and pref_ji > 0:
            return -1
        return 0

    def rank(self, query: str, passages: list[str], variant: str, passes: int = 10) -> list[int]:
        """Indices of ``passages`` (given in first-stage order) from most to least relevant."""
        self._query, self._passages, self._cache = query, passages, {}
        n = len(passages)
        if n < 2:
            return list(range(n))
        if variant == "allpairs":
            return self._allpairs(n)
        if variant == "sliding":
            return self._sliding(n, passes)
        if variant == "sorting":
            return self._heapsort(n)
        raise ParamError(f"unknown PRP variant {variant!r}")

    def _allpairs(self, n: int) -> list[int]:
        prefs = self._ask([(i, j) for i in range(n) for j in range(n) if i != j])
        wins = [0.0] * n
        for i in range(n):
            for j in range(i + 1, n):
                o = self._count(self._outcome(prefs[(i, j)], prefs[(j, i)]))
                if o > 0:
                    wins[i] += 1.0
                elif o < 0:
                    wins[j] += 1.0
                else:
                    wins[i] += 0.5
                    wins[j] += 0.5
        self.last_wins = wins
        return sorted(range(n), key=lambda i: (-wins[i], i))

    def _sliding(self, n: int, passes: int) -> list[int]:
        order = list(range(n))
        for _ in range(passes):
            for pos in range(n - 2, -1, -1):
                if self.compare(order[pos + 1], order[pos]) > 0:
                    order[pos], order[pos + 1] = order[pos + 1], order[pos]
        return order

    def _heapsort(self, n: int) -> list[int]:
        a = list(range(n))

        def beats(x: int, y: int) -> bool:
            # a tie (inconsistent answers) goes to the passage ranked higher by the first stage;
            # the paper leaves ties in heapsort open, and this keeps the sort stable under ties
            outcome = self.compare(x, y)
            return outcome > 0 or (outcome == 0 and x < y)

        def sift_down(root: int, size: int) -> None:
            while True:
                largest, left, right = root, 2 * root + 1, 2 * root + 2
                if left < size and beats(a[left], a[largest]):
                    largest = left
                if right < size and beats(a[right], a[largest]):
                    largest = right
                if largest == root:
                    return
                a[root], a[largest] = a[largest], a[root]
                root = largest

        for root in range(n // 2 - 1, -1, -1):
            sift_down(root, n)
        for end in range(n - 1, 0, -1):
            a[0], a[end] = a[end], a[0]
            sift_down(0, end)
        return a[::-1]  # the heap sorts ascending: most relevant last


@dataclasses.dataclass(frozen=True)
class PRPParams(RerankParams):
    model: str = "smollm2-135m"  # any id harness.llm.models.load_model resolves
    variant: Literal["allpairs", "sliding", "sorting"] = "sliding"
    passes: int = 10  # sliding: number of passes (= top-K that is sorted)
    depth: int = 100
    max_passage_tokens: int = 128
    cache: bool = True  # ask no ordered prompt twice within a query
    dtype: str = "float32"

    def check(self) -> None:
        super().check()
        if self.passes < 1:
            raise ParamError(f"parameter passes={self.passes} must be >= 1")
        if self.max_passage_tokens < 1:
            raise ParamError(f"parameter max_passage_tokens={self.max_passage_tokens} must be >= 1")


@register_method("prp", "reranking", PRPParams)
class PairwiseRankingPrompting(RerankingMethod):
    """Pairwise Ranking Prompting (Qin et al. 2023), scoring mode, both orders, with a prompt cache."""

    def __init__(self, params: PRPParams, loaded: Any | None = None, device: str = "cpu", judge: Judge | None = None):
        super().__init__(params)
        self._loaded = loaded
        self.device = device
        self._judge = judge  # tests inject a scripted judge; otherwise the LLM judge
        self._token_ids: list[int] | None = None
        self.stats = {"model_calls": 0, "forward_passes": 0, "inferences_total": 0, "inferences_per_query": [],
                      "comparisons_total": 0, "inconsistent_comparisons": 0}

    @property
    def loaded(self) -> Any:
        if self._loaded is None:
            from harness.llm.models import load_model

            self._loaded = load_model(self.params.model, device=self.device, dtype=self.params.dtype)
            if self._loaded.tokenizer is None:
                raise ParamError(f"model {self.params.model!r} has no tokenizer; prp needs one")
        return self._loaded

    def llm_judge(self, query: str, pairs: list[tuple[str, str]]) -> list[float]:
        tok = self.loaded.tokenizer
        if self._token_ids is None:
            self._token_ids = [single_token_id(tok, " A"), single_token_id(tok, " B")]
        cut = self.params.max_passage_tokens
        prompts = [
            PROMPT.format(query=query.strip(), passage_a=truncate_text(tok, a, cut), passage_b=truncate_text(tok, b, cut))
            for a, b in pairs
        ]
        res = next_token_logprobs(self.loaded.model, tok, prompts, self._token_ids, batch_size=self.params.batch_size)
        self.stats["model_calls"] += res.model_calls
        self.stats["forward_passes"] += res.forward_passes
        return [lp_a - lp_b for lp_a, lp_b in res.values]

    def score(self, query: str, passages: list[str]) -> list[float]:
        ranker = PairwiseRanker(self._judge or self.llm_judge, self.params.batch_size, self.params.cache)
        order = ranker.rank(query, passages, self.params.variant, self.params.passes)
        self.stats["inferences_per_query"].append(ranker.inferences)
        self.stats["inferences_total"] += ranker.inferences
        self.stats["comparisons_total"] += ranker.comparisons
        self.stats["inconsistent_comparisons"] += ranker.inconsistent
        scores = [0.0] * len(passages)
        for pos, i in enumerate(order):
            scores[i] = float(len(passages) - pos)
        return scores

    def transformer(self) -> RerankTransformer:
        return RerankTransformer(self.score, self.params.depth, f"prp-{self.params.variant}")
