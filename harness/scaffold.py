"""`harness new-method NAME --family F [--package DIR]`: an adapter and its test that pass out of the box.

Inside this repository the scaffold writes ``methods/<family>/<module>.py`` (found by the built-in
registry walk) and ``tests/test_method_<module>.py``. With ``--package DIR`` it writes a separate
installable package instead: ``pyproject.toml`` declaring the ``harness.methods`` entry point,
``harness_<module>/<module>.py`` and ``tests/test_method_<module>.py``; ``pip install -e DIR``
registers the method without a fork. Each family's template is a real, minimal algorithm (pruning:
the smallest-|W| fraction of each layer; retrieval: distinct query terms a document contains;
reranking: the fraction of query terms a passage contains), to be replaced by the submitter's own.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness import config
from harness.errors import HarnessError

FAMILIES = ("pruning", "retrieval", "reranking")
NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")

_PRUNING = '''"""{title}: {summary}"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from harness.errors import ParamError
from harness.llm.pruning import (
    Calibration,
    PruneReport,
    PruningMethod,
    SparsityParams,
    build_report,
    prunable_linears,
    unstructured_mask_from_scores,
)
from harness.registry import register_method


@dataclass(frozen=True)
class {cls}Params(SparsityParams):
    """Parameters of {name}: the target sparsity of every block linear (unstructured only)."""

    def check(self) -> None:
        super().check()
        if self.pattern != "unstructured":
            raise ParamError(f"{name} supports pattern=unstructured only, got {{self.pattern!r}}")


@register_method("{name}", "pruning", {cls}Params)
class {cls}(PruningMethod):
    """{title}: {summary}

    Replace this with your algorithm and cite its paper here. ``_prune`` receives the model (change
    it in place) and, when ``needs_calibration = True``, calibration windows; the fixed ``prune``
    around it times the call and counts parameters.
    """

    needs_calibration = False

    @torch.no_grad()
    def _prune(self, model: nn.Module, calibration: Calibration | None) -> PruneReport:
        linears = prunable_linears(model)
        for lin in linears.values():
            scores = lin.weight.abs().float()
            lin.weight[unstructured_mask_from_scores(scores, self.params.sparsity, per_row=False)] = 0
        return build_report(linears, self.params.sparsity, details={{"criterion": "|W|, per layer"}})
'''

_PRUNING_TEST = '''"""Tests of the {name} pruning adapter on a tiny random Llama (seconds, no data)."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from harness.errors import ParamError
from harness.params import build_params
from harness.registry import METHODS
from {module} import {cls}, {cls}Params


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=97, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def test_registered_as_a_pruning_method():
    info = METHODS.get("{name}")
    assert info.cls is {cls} and info.family == "pruning"


def test_prunes_every_block_linear_to_the_target_sparsity():
    method = {cls}(build_params({cls}Params, {{"sparsity": "0.5"}}, method="{name}"))
    model = tiny_llama()
    report = method.prune(model, None)
    assert abs(report.measured_sparsity - 0.5) < 1e-3
    assert all(abs(layer["measured_sparsity"] - 0.5) < 1e-2 for layer in report.layers)
    assert report.params_after < report.params_before
    assert torch.count_nonzero(model.model.embed_tokens.weight) == model.model.embed_tokens.weight.numel()


def test_refuses_out_of_range_params():
    with pytest.raises(ParamError):
        build_params({cls}Params, {{"sparsity": "1.5"}}, method="{name}")
'''

_RETRIEVAL = '''"""{title}: {summary}"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError, ParamError
from harness.ir.base import Corpus, RetrievalMethod
from harness.params import MethodParams
from harness.registry import register_method

TOKEN = re.compile(r"\\w+")


@dataclass(frozen=True)
class {cls}Params(MethodParams):
    """Parameters of {name}: how text is split into terms."""

    lowercase: bool = True
    min_term_length: int = 2

    def check(self) -> None:
        if self.min_term_length < 1:
            raise ParamError(f"parameter min_term_length={{self.min_term_length}} must be >= 1")


@register_method("{name}", "retrieval", {cls}Params)
class {cls}(RetrievalMethod):
    """{title}: {summary}

    Replace this with your retriever and cite its paper here. ``index`` builds an index over the
    corpus once; ``transformer`` returns a PyTerrier transformer from topics (qid, query) to a
    ranked run (qid, docno, score, rank) of at most ``self.num_results`` documents per query.
    Ties are broken by docno ascending.
    """

    def __init__(self, params: {cls}Params):
        super().__init__(params)
        self.params: {cls}Params = params
        self._docnos: list[str] = []
        self._postings: dict[str, list[int]] | None = None

    def terms(self, text: str) -> set[str]:
        text = text.lower() if self.params.lowercase else text
        return {{t for t in TOKEN.findall(text) if len(t) >= self.params.min_term_length}}

    def index(self, corpus: Corpus) -> None:
        postings: dict[str, list[int]] = defaultdict(list)
        self._docnos = [d.docno for d in corpus]
        for i, doc in enumerate(corpus):
            for term in self.terms(f"{{doc.title}} {{doc.text}}"):
                postings[term].append(i)
        self._postings = dict(postings)
        self.stats.update({{"documents": len(corpus), "terms": len(postings), "model_calls": 0}})

    def search(self, query: str) -> tuple[list[str], list[float]]:
        """(docnos, scores) of one query: documents by distinct query terms matched, then docno."""
        if self._postings is None:
            raise HarnessError("{name}: call index(corpus) before searching")
        counts: Counter[int] = Counter()
        for term in self.terms(query):
            counts.update(self._postings.get(term, ()))
        best = sorted(counts.items(), key=lambda kv: (-kv[1], self._docnos[kv[0]]))[: self.num_results]
        return [self._docnos[i] for i, _ in best], [float(c) for _, c in best]

    def transformer(self) -> Any:
        import pandas as pd
        import pyterrier as pt

        def run(topics: pd.DataFrame) -> pd.DataFrame:
            rows = []
            for qid, query in zip(topics["qid"], topics["query"]):
                docnos, scores = self.search(str(query))
                rows += [{{"qid": qid, "query": query, "docno": d, "score": s, "rank": r}}
                         for r, (d, s) in enumerate(zip(docnos, scores))]
            return pd.DataFrame(rows, columns=["qid", "query", "docno", "score", "rank"])

        return pt.apply.generic(run)
'''

_RETRIEVAL_TEST = '''"""Tests of the {name} retrieval adapter on a three-document corpus."""

import pandas as pd
import pytest

from harness.errors import ParamError
from harness.ir.base import Corpus, Document
from harness.params import build_params
from harness.registry import METHODS
from {module} import {cls}, {cls}Params

DOCS = [Document("d1", "pruning large language models"), Document("d2", "language models"),
        Document("d3", "retrieval of passages")]


def indexed() -> {cls}:
    method = {cls}(build_params({cls}Params, {{}}, method="{name}"))
    method.index(Corpus("toy", "0" * 64, DOCS))
    return method


def test_registered_as_a_retrieval_method():
    info = METHODS.get("{name}")
    assert info.cls is {cls} and info.family == "retrieval"


def test_ranks_documents_by_query_terms_matched():
    run = indexed().transformer()(pd.DataFrame({{"qid": ["q1"], "query": ["pruning language models"]}}))
    assert list(run["docno"]) == ["d1", "d2"]  # d1 matches 3 terms, d2 two, d3 none (not returned)
    assert list(run["rank"]) == [0, 1] and run["score"].is_monotonic_decreasing


def test_depth_is_respected():
    method = indexed()
    method.set_depth(1)
    assert method.search("language models")[0] == ["d1"]  # d1 and d2 tie: the smaller docno


def test_refuses_out_of_range_params():
    with pytest.raises(ParamError):
        build_params({cls}Params, {{"min_term_length": "0"}}, method="{name}")
'''

_RERANKING = '''"""{title}: {summary}"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.errors import ParamError
from harness.ir.base import RerankingMethod
from harness.params import MethodParams
from harness.registry import register_method
from methods.reranking._common import RerankTransformer

TOKEN = re.compile(r"\\w+")


@dataclass(frozen=True)
class {cls}Params(MethodParams):
    """Parameters of {name}: how deep into the first stage it reranks."""

    depth: int = 100  # rerank the top `depth`; the rest keep their first-stage order below

    def check(self) -> None:
        if self.depth < 1:
            raise ParamError(f"parameter depth={{self.depth}} must be >= 1")


def terms(text: str) -> set[str]:
    return set(TOKEN.findall(text.lower()))


@register_method("{name}", "reranking", {cls}Params)
class {cls}(RerankingMethod):
    """{title}: {summary}

    Replace this with your reranker and cite its paper here. ``score(query, passages)`` returns one
    score per passage (higher = more relevant); ``RerankTransformer`` applies it to the top
    ``depth`` candidates of each query and recomputes the ranks (ties by docno ascending).
    """

    def score(self, query: str, passages: list[str]) -> list[float]:
        q = terms(query)
        return [len(q & terms(p)) / max(len(q), 1) for p in passages]

    def transformer(self) -> RerankTransformer:
        return RerankTransformer(self.score, self.params.depth, "{name}")
'''

_RERANKING_TEST = '''"""Tests of the {name} reranking adapter on a hand-made first stage."""

import pandas as pd
import pytest

from harness.errors import ParamError
from harness.params import build_params
from harness.registry import METHODS
from {module} import {cls}, {cls}Params


def test_registered_as_a_reranking_method():
    info = METHODS.get("{name}")
    assert info.cls is {cls} and info.family == "reranking"


def test_scores_are_the_fraction_of_query_terms():
    method = {cls}(build_params({cls}Params, {{}}, method="{name}"))
    assert method.score("sparse models", ["sparse models", "models only", "nothing"]) == [1.0, 0.5, 0.0]


def test_reranks_the_first_stage():
    first = pd.DataFrame({{"qid": ["q1"] * 3, "query": ["sparse models"] * 3, "docno": ["a", "b", "c"],
                          "text": ["nothing here", "models only", "sparse models"],
                          "score": [3.0, 2.0, 1.0], "rank": [0, 1, 2]}})
    method = {cls}(build_params({cls}Params, {{}}, method="{name}"))
    out = method.transformer()(first)
    assert list(out["docno"]) == ["c", "b", "a"] and list(out["rank"]) == [0, 1, 2]


def test_refuses_out_of_range_params():
    with pytest.raises(ParamError):
        build_params({cls}Params, {{"depth": "0"}}, method="{name}")
'''

TEMPLATES = {
    "pruning": (_PRUNING, _PRUNING_TEST, "zero the smallest-|W| fraction of every block linear, layer by layer."),
    "retrieval": (_RETRIEVAL, _RETRIEVAL_TEST, "rank documents by the number of distinct query terms they contain."),
    "reranking": (_RERANKING, _RERANKING_TEST, "rerank passages by the fraction of query terms they contain."),
}

_PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "harness-{dist}"
version = "0.1.0"
description = "{title}: a {family} method for the harness"
requires-python = ">=3.11"
dependencies = ["harness"]

# `pip install -e .` registers the method: the harness imports this module and its
# @register_method decorator runs.
[project.entry-points."harness.methods"]
{name} = "{module}"

[tool.setuptools.packages.find]
include = ["{package}*"]

[tool.pytest.ini_options]
pythonpath = ["."]
testpaths = ["tests"]
'''


def module_name(name: str) -> str:
    return name.replace("-", "_")


def class_name(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[-_]", name) if part)


def check_name(name: str, family: str) -> None:
    """A valid, unused method name and a known family, before anything is written."""
    from harness.registry import METHODS

    if family not in FAMILIES:
        raise HarnessError(f"--family must be one of {', '.join(FAMILIES)}, got {family!r}")
    if not NAME_RE.match(name):
        raise HarnessError(f"method name {name!r}: use lower-case letters, digits and '-', starting with a letter")
    if name in METHODS:
        info = METHODS.get(name)
        raise HarnessError(f"method {name!r} is already registered ({info.family}, {info.module}); pick another name")


def planned_files(name: str, family: str, package: Path | None, repo_root: Path | None = None) -> dict[Path, str]:
    """Path -> text of every file the scaffold writes."""
    mod, cls = module_name(name), class_name(name)
    title = cls
    code, test, summary = TEMPLATES[family]
    if package is None:
        root = repo_root or config.REPO_ROOT
        module = f"methods.{family}.{mod}"
        files = {root / "methods" / family / f"{mod}.py": code, root / "tests" / f"test_method_{mod}.py": test}
    else:
        pkg = f"harness_{mod}"
        module = f"{pkg}.{mod}"
        files = {
            package / "pyproject.toml": _PYPROJECT,
            package / pkg / "__init__.py": f'"""{title}: a {family} method for the harness (package)."""\n',
            package / pkg / f"{mod}.py": code,
            package / "tests" / f"test_method_{mod}.py": test,
        }
    values = {"name": name, "cls": cls, "title": title, "summary": summary, "module": module, "family": family,
              "dist": name, "package": module.split(".")[0]}
    return {path: text.format(**values) for path, text in files.items()}


def scaffold(name: str, family: str, package: Path | None = None, repo_root: Path | None = None) -> list[Path]:
    """Write the adapter and its test; refuses a registered name or any existing file."""
    check_name(name, family)
    files = planned_files(name, family, package, repo_root)
    existing = [str(p) for p in files if p.exists()]
    if existing:
        raise HarnessError(f"refusing to overwrite existing file(s): {', '.join(existing)}")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(files)
