"""`harness new-method NAME --family F [--package DIR]`: an adapter and its test that pass out of the box.

Inside this repository the scaffold writes ``methods/<folder>/<module>.py`` (the family's folder,
e.g. ``methods/data/`` for data-pruning; found by the built-in registry walk) and ``tests/test_method_<module>.py``. With ``--package DIR`` it writes a separate
installable package instead: ``pyproject.toml`` declaring the ``harness.methods`` entry point,
``harness_<module>/<module>.py`` and ``tests/test_method_<module>.py``; ``pip install -e DIR``
registers the method without a fork. The templates are the family's (its base class's
``scaffold``, a :class:`harness.kinds.Scaffold`): a real, minimal algorithm and its test, to be
replaced by the submitter's own (pruning: the smallest-|W| fraction of each layer; retrieval:
distinct query terms a document contains; reranking: the fraction of query terms a passage
contains; data-pruning: distance to the class's mean embedding; context-pruning: the question's
words a sentence contains).
"""

from __future__ import annotations

import re
from pathlib import Path

from harness import config
from harness.errors import HarnessError
from harness.kinds import Scaffold
from harness.registry import load_target

NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")


def families() -> dict[str, Scaffold]:
    """Family name -> its scaffold, for every registered family whose base class names one
    (``scaffold = "module:attr"``): a family added by a package gets ``new-method`` too."""
    from harness.registry import FAMILIES

    out = {}
    for name, base in FAMILIES.items():
        target = getattr(base, "scaffold", None)
        if target:
            out[name] = load_target(target) if isinstance(target, str) else target
    return out


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


def check_name(name: str, family: str) -> Scaffold:
    """A valid, unused method name and a family with a scaffold (returned), before anything is written."""
    from harness.registry import FAMILIES, METHODS

    known = families()
    if family not in known:
        without = sorted(set(FAMILIES.names()) - set(known))
        raise HarnessError(f"--family must be one of {', '.join(known)}, got {family!r}"
                           + (f" (no scaffold: {', '.join(without)})" if family in without else ""))
    if not NAME_RE.match(name):
        raise HarnessError(f"method name {name!r}: use lower-case letters, digits and '-', starting with a letter")
    if name in METHODS:
        info = METHODS.get(name)
        raise HarnessError(f"method {name!r} is already registered ({info.family}, {info.module}); pick another name")
    return known[family]


def planned_files(name: str, family: str, package: Path | None, repo_root: Path | None = None,
                  template: Scaffold | None = None) -> dict[Path, str]:
    """Path -> text of every file the scaffold writes."""
    mod, cls = module_name(name), class_name(name)
    title = cls
    template = template or families()[family]
    code, test, summary = template.code, template.test, template.summary
    if package is None:
        root = repo_root or config.REPO_ROOT
        folder = template.folder or family
        module = f"methods.{folder}.{mod}"
        files = {root / "methods" / folder / f"{mod}.py": code, root / "tests" / f"test_method_{mod}.py": test}
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
    template = check_name(name, family)
    files = planned_files(name, family, package, repo_root, template)
    existing = [str(p) for p in files if p.exists()]
    if existing:
        raise HarnessError(f"refusing to overwrite existing file(s): {', '.join(existing)}")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(files)
