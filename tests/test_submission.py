"""`harness check-submission`: each check fails for the reason it names; the scaffold of every
family passes them all, its cheap real task included (slow: scaffold -> check -> run end to end)."""

import sys
import textwrap

import pytest

from fixtures_results import make_doc
from harness import config
from harness.cli import main
from harness.errors import HarnessError
from harness.registry import METHODS
from harness.results import ResultStore
from harness.scaffold import scaffold
from harness.submission import cheap_task, check_submission, task_args, validate_stored


@pytest.fixture(autouse=True)
def clean_registry():
    """Methods and modules a check imported are removed again (the registry is process-wide)."""
    names, modules, path = set(METHODS.names()), set(sys.modules), list(sys.path)
    yield
    for name in set(METHODS.names()) - names:
        METHODS.unregister(name)
    for mod in set(sys.modules) - modules:
        if mod.startswith(("harness_", "sub_")) or mod.startswith("methods.") and "toy" in mod:
            del sys.modules[mod]
    sys.path[:] = path


def _status(report):
    return {c.name: c.status for c in report.checks}


def _detail(report, name):
    return next(c.detail for c in report.checks if c.name == name)


BAD = '''
from dataclasses import dataclass
from harness.ir.base import RerankingMethod
from harness.params import MethodParams
from harness.registry import register_method

@dataclass(frozen=True)
class BadParams(MethodParams):
    depth: int = 10

@register_method("sub-bad", "reranking", BadParams)
class Bad(RerankingMethod):
    def transformer(self):
        raise NotImplementedError
'''


def test_a_poor_submission_fails_with_reasons(tmp_path, capsys):
    path = tmp_path / "sub_bad.py"
    path.write_text(BAD)
    report = check_submission(str(path), real_task=False)
    status = _status(report)
    assert status["import"] == "PASS" and status["registration"] == "PASS"
    assert "sub-bad (reranking, Bad)" in _detail(report, "registration")
    assert status["params sub-bad"] == "FAIL" and "no check()" in _detail(report, "params sub-bad")
    assert status["docstring sub-bad"] == "FAIL" and "no docstring" in _detail(report, "docstring sub-bad")
    assert status["tests"] == "FAIL" and "no test file" in _detail(report, "tests")
    assert status["task sub-bad"] == "SKIP" and not report.ok
    assert report.text().splitlines()[-1] == "3 check(s) failed"


def test_cli_exit_status_and_import_failures(tmp_path, capsys):
    broken = tmp_path / "sub_broken.py"
    broken.write_text("import no_such_package_xyz\n")
    assert main(["check-submission", str(broken), "--no-task"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  import" in out and "no_such_package_xyz" in out
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0"\n')
    report = check_submission(str(pkg), real_task=False)
    assert _status(report)["import"] == "FAIL" and "entry point" in _detail(report, "import")
    assert check_submission("no.such.module_xyz").checks[0].status == "FAIL"


def test_params_without_defaults_or_with_invalid_defaults(tmp_path):
    (tmp_path / "sub_params.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass
        from harness.errors import ParamError
        from harness.ir.base import RerankingMethod
        from harness.params import MethodParams
        from harness.registry import register_method

        @dataclass(frozen=True)
        class P(MethodParams):
            depth: int = 0
            def check(self):
                if self.depth < 1:
                    raise ParamError(f"depth={self.depth} must be >= 1")

        @register_method("sub-params", "reranking", P)
        class M(RerankingMethod):
            """A summary."""
            def transformer(self):
                return None
    '''))
    failing = tmp_path / "test_sub_params_fails.py"
    failing.write_text("def test_scores_are_ordered():\n    assert [1, 2] == [2, 1]\n")
    report = check_submission(str(tmp_path / "sub_params.py"), real_task=False, tests=[failing])
    assert _status(report)["tests"] == "FAIL"
    assert "pytest exit 1" in _detail(report, "tests") and "test_scores_are_ordered" in _detail(report, "tests")
    assert "the defaults are invalid: depth=0 must be >= 1" in _detail(report, "params sub-params")
    assert _status(report)["docstring sub-params"] == "PASS"


def test_overriding_the_familys_fixed_template_method_is_flagged(tmp_path):
    (tmp_path / "sub_override.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass
        from harness.context.base import ContextPruningMethod
        from harness.params import MethodParams
        from harness.registry import register_method

        @dataclass(frozen=True)
        class P(MethodParams):
            pass

        @register_method("sub-override", "context-pruning", P)
        class M(ContextPruningMethod):
            """Keeps the first sentence, but skips the family's checks."""
            def select(self, question, sentences, item):
                return [0]
            def prune(self, question, sentences, item):
                return [0]
    '''))
    report = check_submission(str(tmp_path / "sub_override.py"), real_task=False)
    assert _status(report)["params sub-override"] == "FAIL"
    assert "must not override prune" in _detail(report, "params sub-override")


def test_every_built_in_family_names_a_cheap_task_that_exists():
    from harness.tasks import get_task

    for family in ("pruning", "retrieval", "reranking", "data-pruning", "context-pruning"):
        cheap = cheap_task(family)
        assert cheap is not None and get_task(cheap.task).id == cheap.task and cheap.limit >= 1
    assert cheap_task("no-such-family") is None


def test_task_args_use_small_settings_only_where_the_method_has_them(tmp_path):
    wanda, bm25s = METHODS.get("wanda"), METHODS.get("bm25s")
    args = task_args(wanda, cheap_task("pruning"), tmp_path)
    assert args[args.index("--params") + 1] == "nsamples=4,seqlen=128"
    assert args[args.index("--model") + 1] == "smollm2-135m" and args[args.index("--limit") + 1] == "1"
    args = task_args(bm25s, cheap_task("retrieval"), tmp_path)
    assert "--params" not in args and "--model" not in args and "sciq-derived" in args


def test_stored_result_without_pinned_data_is_refused(tmp_path):
    doc = make_doc(method="bm25s", params={}, task_id="boolq", metrics={"acc": 0.5}, family="retrieval")
    doc["method"]["module"] = "methods.retrieval.bm25s"
    doc["provenance"]["reproduce"] = "harness run --method bm25s --task boolq"
    doc["provenance"]["data"][0]["sha256"] = None
    ResultStore(tmp_path).write(doc)
    with pytest.raises(HarnessError, match="without a sha256"):
        validate_stored(tmp_path, METHODS.get("bm25s"))
    doc["provenance"]["data"][0]["sha256"] = "a" * 64
    ResultStore(tmp_path / "ok").write(doc)
    _result, line = validate_stored(tmp_path / "ok", METHODS.get("bm25s"))
    assert "acc=0.5000" in line and "1 data file(s) pinned" in line


# ------------------------------------------------------------------------- end to end (slow)


def _all_pass(report, family):
    status = _status(report)
    task = next(k for k in status if k.startswith("task "))
    if family == "reranking" and config.data_dir() is None:
        assert status[task] == "SKIP"
        status.pop(task)
    assert set(status.values()) == {"PASS"}, report.text()
    return report


@pytest.mark.slow
@pytest.mark.parametrize("family", ["pruning", "retrieval", "reranking", "data-pruning", "context-pruning"])
def test_scaffolded_package_passes_every_check_and_runs_a_real_task(tmp_path, family):
    name = f"toy-e2e-{family}"
    scaffold(name, family, package=tmp_path / "pkg")
    report = _all_pass(check_submission(str(tmp_path / "pkg"), timeout_s=1200), family)
    assert f"{name} ({family}," in _detail(report, "registration")
    assert "passed" in _detail(report, "tests")
    task = _detail(report, f"task {name}")
    assert task.startswith(cheap_task(family).task) and "pinned by sha256" in task or config.data_dir() is None


@pytest.mark.slow
def test_scaffold_in_a_repository_layout_passes_every_check(tmp_path):
    """The in-repository form (methods/<family>/<module>.py + tests/), written into a temporary tree."""
    written = scaffold("toy-e2e-inrepo", "retrieval", repo_root=tmp_path)
    report = _all_pass(check_submission(str(written[0]), timeout_s=1200), "retrieval")
    assert _detail(report, "import") == "methods.retrieval.toy_e2e_inrepo"
    assert "test_method_toy_e2e_inrepo.py" in _detail(report, "tests")
