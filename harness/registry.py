"""One generic registry for every kind of plug-in: methods, method families, task kinds, data
formats, statistical tests and p-value corrections.

The mechanism is the same for all of them (learn it once):

* ``REG.register("name", obj, aliases=(...))`` or ``@REG.register("name")`` as a decorator;
* ``REG.register_lazy("name", "package.module:attr")``: nothing is imported until the entry is used;
* ``REG.get("name")``: resolves aliases and lazy entries; an unknown name fails with the nearest
  valid names and the full list;
* an entry-point group per registry, so an installed package adds its own entries without a fork.
  An entry point names either a module (imported, so its decorators run) or an object
  (``pkg.mod:attr``, registered under the entry point's name, lazily);
* a base-class check, so a wrong object is refused when registered, not when first used.

Built-in methods live in ``methods/<family>/<name>.py`` and register themselves with
:func:`register_method`; built-in families, task kinds and data formats are listed as
lazy strings in :mod:`harness.builtins`, so a plain checkout works without an install; a
third-party package declares its own through the entry points.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import logging
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from harness.errors import HarnessError, UnknownNameError
from harness.params import MethodParams

log = logging.getLogger("harness")
T = TypeVar("T")


@dataclass
class _Lazy:
    target: str  # "package.module:attr"
    origin: str  # where the registration came from (for error messages)


def load_target(target: str) -> Any:
    """Import ``"package.module:attr"`` (or ``"package.module"``) and return the object."""
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Name -> object, with aliases, lazy ``module:attr`` entries, a base-class check, an
    entry-point group and nearest-name suggestions."""

    def __init__(
        self,
        kind: str,
        *,
        base: type | None = None,
        entry_point_group: str | None = None,
        builtins: Callable[[Registry[T]], None] | None = None,
    ):
        self.kind = kind  # singular noun for messages ("task kind", "data format")
        self.base = base
        self.entry_point_group = entry_point_group
        self._builtins = builtins
        self._entries: dict[str, T | _Lazy] = {}
        self._aliases: dict[str, str] = {}
        self._origins: dict[str, str] = {}
        self.unavailable: dict[str, str] = {}  # name or module -> why it could not be loaded
        self._loaded = False

    # ----------------------------------------------------------------------------- registering

    def _check(self, name: str, obj: Any) -> None:
        if self.base is None:
            return
        ok = isinstance(obj, self.base) or (isinstance(obj, type) and issubclass(obj, self.base))
        if not ok:
            raise HarnessError(f"{self.kind} {name!r}: {obj!r} is not a {self.base.__name__}")

    def _claim(self, name: str, origin: str, aliases: tuple[str, ...]) -> None:
        if not isinstance(name, str) or not name:
            raise HarnessError(f"a {self.kind} needs a non-empty name")
        if name in self._aliases:
            raise HarnessError(f"{self.kind} {name!r} is already an alias of {self._aliases[name]!r}")
        known = self._origins.get(name)
        if known is not None and known != origin:
            raise HarnessError(f"{self.kind} {name!r} registered twice: by {known} and {origin}")
        for alias in aliases:
            if alias in self._entries or self._aliases.get(alias, name) != name:
                raise HarnessError(f"alias {alias!r} of {self.kind} {name!r} is already taken")
            self._aliases[alias] = name
        self._origins[name] = origin

    def register(self, name: str, obj: Any = None, *, aliases: tuple[str, ...] = (), origin: str | None = None) -> Any:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator."""
        if obj is None:
            return lambda o: self.register(name, o, aliases=aliases, origin=origin)
        self._check(name, obj)
        where = origin or getattr(obj, "__module__", None) or type(obj).__module__
        self._claim(name, f"{where}.{getattr(obj, '__qualname__', name)}", aliases)
        self._entries[name] = obj
        return obj

    def register_lazy(self, name: str, target: str, *, aliases: tuple[str, ...] = (), origin: str = "") -> None:
        """Register ``"package.module:attr"`` under ``name``; imported on first use."""
        if ":" not in target:
            raise HarnessError(f"{self.kind} {name!r}: lazy target {target!r} must read 'package.module:attr'")
        existing = self._entries.get(name)
        if existing is not None and not isinstance(existing, _Lazy):
            module, _, attr = target.partition(":")
            if getattr(existing, "__module__", None) == module:
                return  # the module was imported first and registered it itself
        self._claim(name, origin or target, aliases)
        self._entries[name] = _Lazy(target, origin or target)

    # ----------------------------------------------------------------------------- loading

    def load(self) -> None:
        """Register the built-ins and the entry points (once)."""
        if self._loaded:
            return
        self._loaded = True
        if self._builtins is not None:
            self._builtins(self)
        if self.entry_point_group:
            for ep in importlib.metadata.entry_points(group=self.entry_point_group):
                self._load_entry_point(ep)

    def _load_entry_point(self, ep: importlib.metadata.EntryPoint) -> None:
        dist = getattr(ep.dist, "name", None) or "?"
        origin = f"entry point {ep.name!r} of {dist} ({ep.value})"
        try:
            if ":" in ep.value:
                if ep.name not in self._entries:
                    self.register_lazy(ep.name, ep.value.replace(" ", ""), origin=origin)
            else:
                importlib.import_module(ep.value)  # its decorators register what it holds
        except Exception as exc:  # a broken plug-in must not take the others down
            self.unavailable[ep.name] = f"{origin} failed: {type(exc).__name__}: {exc}"
            log.warning("could not load %s %s", self.kind, self.unavailable[ep.name])

    def _resolve(self, name: str) -> T:
        entry = self._entries[name]
        if isinstance(entry, _Lazy):
            try:
                obj = load_target(entry.target)
            except ModuleNotFoundError as exc:
                missing = (exc.name or "").split(".")[0]
                raise HarnessError(
                    f"{self.kind} {name!r} ({entry.target}) is unavailable: it needs the package {missing!r}, "
                    "which is not installed"
                ) from None
            except (ImportError, AttributeError) as exc:
                raise HarnessError(f"{self.kind} {name!r}: cannot load {entry.target}: {exc}") from None
            self._check(name, obj)
            self._entries[name] = obj
            return obj
        return entry

    # ----------------------------------------------------------------------------- lookup

    def canonical(self, name: str) -> str:
        self.load()
        return self._aliases.get(name, name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.canonical(name) in self._entries

    def get(self, name: str) -> T:
        key = self.canonical(name)
        if key not in self._entries:
            if name in self.unavailable:
                raise HarnessError(f"{self.kind} {name!r} is unavailable: {self.unavailable[name]}")
            raise UnknownNameError(self.kind, name, self.names())
        return self._resolve(key)

    def names(self) -> list[str]:
        self.load()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """Every entry, resolved (lazy ones imported); entries that cannot load are skipped and
        listed in :attr:`unavailable`."""
        for name in self.names():
            try:
                yield name, self._resolve(name)
            except HarnessError as exc:
                self.unavailable[name] = str(exc)

    def unregister(self, name: str) -> None:
        """Remove an entry and its aliases (for tests and interactive sessions)."""
        self._entries.pop(name, None)
        self._origins.pop(name, None)
        for alias in [a for a, n in self._aliases.items() if n == name]:
            del self._aliases[alias]

    def suggest(self, name: str, n: int = 3) -> list[str]:
        return difflib.get_close_matches(name, self.names(), n=n, cutoff=0.5)


# =============================================================================================
# Methods and their families


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


def _builtin_families(reg: Registry[type]) -> None:
    # A family is its interface's base class, named here only as a lazy string.
    from harness import builtins

    builtins.register_all(reg, builtins.FAMILIES)


FAMILIES: Registry[type] = Registry("method family", base=type, entry_point_group="harness.families",
                                    builtins=_builtin_families)


def _builtin_methods(reg: Registry[MethodInfo]) -> None:
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
            reg.unavailable[mod.name] = f"needs the package {missing!r}, which is not installed"


ENTRY_POINT_GROUP = "harness.methods"
METHODS: Registry[MethodInfo] = Registry("method", base=MethodInfo, entry_point_group=ENTRY_POINT_GROUP,
                                         builtins=_builtin_methods)


def register_method(name: str, family: str, params: type[MethodParams],
                    aliases: tuple[str, ...] = ()) -> Callable[[type], type]:
    """Class decorator: ``@register_method("wanda", "pruning", WandaParams)``."""
    if not (isinstance(params, type) and issubclass(params, MethodParams)):
        raise TypeError(f"params of method {name!r} must be a MethodParams subclass")
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {tuple(FAMILIES.names())}, got {family!r}")

    def decorate(cls: type) -> type:
        base = FAMILIES.get(family)
        if not issubclass(cls, base):
            raise HarnessError(f"method {name!r}: {cls.__qualname__} must derive from {base.__qualname__}")
        cls.method_name = name
        cls.family = family
        cls.Params = params
        METHODS.register(name, MethodInfo(name, family, cls, params, cls.__module__), aliases=aliases,
                         origin=f"{cls.__module__}.{cls.__qualname__}")
        return cls

    return decorate


def load_methods() -> dict[str, MethodInfo]:
    return dict(METHODS.items())


def unavailable_methods() -> dict[str, str]:
    """Built-in adapter modules and plug-ins that could not be imported (module -> reason)."""
    METHODS.load()
    return dict(METHODS.unavailable)


def get_method(name: str) -> MethodInfo:
    METHODS.load()
    if name not in METHODS:
        guess = [m for m in METHODS.unavailable if m.rsplit(".", 1)[-1] == name.replace("-", "_")]
        if guess:
            raise HarnessError(f"method {name!r} ({guess[0]}) is unavailable: it {METHODS.unavailable[guess[0]]}")
        exc = UnknownNameError("method", name, METHODS.names())
        if METHODS.unavailable:
            skipped = "; ".join(f"{m} {why}" for m, why in sorted(METHODS.unavailable.items()))
            exc.args = (f"{exc.args[0]}. Not loaded: {skipped}",)
        raise exc
    return METHODS.get(name)


def list_methods(family: str | None = None) -> list[MethodInfo]:
    return sorted(
        (m for _, m in METHODS.items() if family is None or m.family == family),
        key=lambda m: (m.family, m.name),
    )


def instantiate(name: str, params: MethodParams | dict[str, Any] | None = None) -> Any:
    from harness.params import build_params

    info = get_method(name)
    if params is None or isinstance(params, dict):
        params = build_params(info.params_cls, params or {}, method=info.name)
    return info.cls(params)
