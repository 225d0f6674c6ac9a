"""Registry of method adapters.

Built-in adapters live in ``methods/<family>/<name>.py`` and register themselves with
:func:`register_method`. Installed third-party packages add theirs through the entry-point group
``harness.methods``: each entry point names a module (imported, so its decorators run) or a class
decorated with :func:`register_method`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError, UnknownNameError
from harness.params import MethodParams

FAMILIES = ("pruning", "retrieval", "reranking")
ENTRY_POINT_GROUP = "harness.methods"


@dataclass(frozen=True)
class MethodInfo:
    name: str
    family: str
    cls: type
    params_cls: type[MethodParams]
    module: str

    @property
    def doc(self) -> str:
        return (self.cls.__doc__ or "").strip()

    @property
    def summary(self) -> str:
        return self.doc.splitlines()[0] if self.doc else ""


_METHODS: dict[str, MethodInfo] = {}
# built-in adapter modules whose third-party dependency is not installed: module -> reason.
# An install for LLM pruning only (no Java, no PyTerrier) still lists and runs the pruning methods.
_UNAVAILABLE: dict[str, str] = {}
_loaded = False


def register_method(name: str, family: str, params: type[MethodParams]) -> Callable[[type], type]:
    """Class decorator: ``@register_method("wanda", "pruning", WandaParams)``."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if not (isinstance(params, type) and issubclass(params, MethodParams)):
        raise TypeError(f"params of method {name!r} must be a MethodParams subclass")

    def decorate(cls: type) -> type:
        existing = _METHODS.get(name)
        if existing is not None and existing.cls is not cls:
            if existing.module != cls.__module__ or existing.cls.__qualname__ != cls.__qualname__:
                raise HarnessError(
                    f"method {name!r} registered twice: by {existing.module} and {cls.__module__}"
                )
        cls.method_name = name
        cls.family = family
        cls.Params = params
        _METHODS[name] = MethodInfo(name, family, cls, params, cls.__module__)
        return cls

    return decorate


def _import_builtin() -> None:
    import methods

    for mod in pkgutil.walk_packages(methods.__path__, prefix="methods."):
        if mod.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        try:
            importlib.import_module(mod.name)
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").split(".")[0]
            if not missing or missing in ("harness", "methods"):
                raise  # our own code is broken: never hide that
            _UNAVAILABLE[mod.name] = f"needs the package {missing!r}, which is not installed"


def unavailable_methods() -> dict[str, str]:
    """Built-in adapter modules that could not be imported (module -> reason)."""
    load_methods()
    return dict(_UNAVAILABLE)


def _import_entry_points() -> None:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not take the built-ins down
            warnings.warn(f"could not load method plugin {ep.name!r} ({ep.value}): {exc}", stacklevel=2)


def load_methods() -> dict[str, MethodInfo]:
    global _loaded
    if not _loaded:
        _import_builtin()
        _import_entry_points()
        _loaded = True
    return _METHODS


def get_method(name: str) -> MethodInfo:
    methods = load_methods()
    if name not in methods:
        guess = [m for m in _UNAVAILABLE if m.rsplit(".", 1)[-1] == name.replace("-", "_")]
        if guess:
            raise HarnessError(f"method {name!r} ({guess[0]}) is unavailable: it {_UNAVAILABLE[guess[0]]}")
        exc = UnknownNameError("method", name, methods)
        if _UNAVAILABLE:
            skipped = "; ".join(f"{m} {why}" for m, why in sorted(_UNAVAILABLE.items()))
            exc.args = (f"{exc.args[0]}. Not loaded: {skipped}",)
        raise exc
    return methods[name]


def list_methods(family: str | None = None) -> list[MethodInfo]:
    return sorted(
        (m for m in load_methods().values() if family is None or m.family == family),
        key=lambda m: (m.family, m.name),
    )


def instantiate(name: str, params: MethodParams | dict[str, Any] | None = None) -> Any:
    from harness.params import build_params

    info = get_method(name)
    if params is None or isinstance(params, dict):
        params = build_params(info.params_cls, params or {}, method=name)
    return info.cls(params)
