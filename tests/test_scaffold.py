"""`harness new-method`: the files it writes (in a repository layout or as a package), its refusals."""

import importlib
import sys
import tomllib

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.registry import METHODS
from harness.scaffold import class_name, families, planned_files, scaffold

FOLDERS = {"pruning": "pruning", "retrieval": "retrieval", "reranking": "reranking", "data-pruning": "data",
           "context-pruning": "context"}


def test_every_built_in_family_has_a_scaffold():
    assert set(families()) >= set(FOLDERS)


@pytest.mark.parametrize("family", FOLDERS)
def test_in_repository_layout(tmp_path, family):
    written = scaffold("toy-scaffold", family, repo_root=tmp_path)
    folder = FOLDERS[family]
    assert written == [tmp_path / "methods" / folder / "toy_scaffold.py", tmp_path / "tests" / "test_method_toy_scaffold.py"]
    code, test = (p.read_text() for p in written)
    assert f'@register_method("toy-scaffold", "{family}", ToyScaffoldParams)' in code
    assert f"from methods.{folder}.toy_scaffold import ToyScaffold, ToyScaffoldParams" in test
    for path in written:
        compile(path.read_text(), str(path), "exec")
    if family == "pruning":
        assert "def _prune(" in code and "def prune(" not in code


def test_package_layout_declares_the_entry_point(tmp_path):
    pkg = tmp_path / "pkg"
    scaffold("toy-scaffold", "retrieval", package=pkg)
    meta = tomllib.loads((pkg / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["harness.methods"] == {"toy-scaffold": "harness_toy_scaffold.toy_scaffold"}
    assert meta["tool"]["pytest"]["ini_options"]["pythonpath"] == ["."]
    assert (pkg / "harness_toy_scaffold" / "__init__.py").is_file()
    assert "from harness_toy_scaffold.toy_scaffold import" in (pkg / "tests" / "test_method_toy_scaffold.py").read_text()


def test_the_package_module_registers_its_method(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    scaffold("toy-scaffold-reg", "reranking", package=pkg)
    monkeypatch.syspath_prepend(str(pkg))
    try:
        mod = importlib.import_module("harness_toy_scaffold_reg.toy_scaffold_reg")
        info = METHODS.get("toy-scaffold-reg")
        assert info.cls is mod.ToyScaffoldReg and info.family == "reranking"
        assert info.summary.startswith("ToyScaffoldReg: rerank passages")
        assert mod.ToyScaffoldReg(mod.ToyScaffoldRegParams()).score("a b", ["a b", "a", "c"]) == [1.0, 0.5, 0.0]
    finally:
        METHODS.unregister("toy-scaffold-reg")
        for name in [m for m in sys.modules if m.startswith("harness_toy_scaffold_reg")]:
            del sys.modules[name]


def test_refuses_a_registered_name_a_bad_name_and_existing_files(tmp_path, capsys):
    with pytest.raises(HarnessError, match="already registered"):
        scaffold("magnitude", "pruning", package=tmp_path / "a")
    with pytest.raises(HarnessError, match="lower-case"):
        scaffold("My_Method", "pruning", package=tmp_path / "a")
    with pytest.raises(HarnessError, match="--family"):
        scaffold("fine-name", "ranking", package=tmp_path / "a")
    assert not (tmp_path / "a").exists()  # nothing written before the checks
    target = tmp_path / "b"
    target.mkdir()
    (target / "pyproject.toml").write_text("# mine\n")
    assert main(["new-method", "fine-name", "--family", "pruning", "--package", str(target)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (target / "pyproject.toml").read_text() == "# mine\n" and not (target / "tests").exists()


def test_class_names_and_default_root_is_this_repository():
    from harness import config

    assert class_name("my-new_method2") == "MyNewMethod2"
    files = planned_files("toy-x", "pruning", None)
    assert list(files) == [config.REPO_ROOT / "methods" / "pruning" / "toy_x.py",
                           config.REPO_ROOT / "tests" / "test_method_toy_x.py"]
    assert not any(p.exists() for p in files)  # planning writes nothing
