"""Typed, frozen method parameters and their parsing from ``k=v,k=v`` strings.

Every method declares a frozen dataclass deriving from :class:`MethodParams`. Values are coerced
from strings by the field's annotation, unknown keys are refused with the nearest valid name,
and range checks live in each class's ``check`` method.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, ClassVar, TypeVar

from harness.errors import ParamError

P = TypeVar("P", bound="MethodParams")


@dataclasses.dataclass(frozen=True)
class MethodParams:
    """Base class of every method's parameters. Subclasses add fields with defaults."""

    # Parameters that never change a result (batch sizes, progress bars) and so stay out of
    # the run digest. Subclasses list them by name.
    NON_SEMANTIC: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise ParamError when a value is out of range. Override in subclasses."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def semantic_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_dict().items() if k not in self.NON_SEMANTIC}

    @classmethod
    def describe(cls) -> list[tuple[str, str, Any]]:
        """(name, type, default) for each parameter, for `harness list methods`."""
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else None
            out.append((f.name, _type_name(hints[f.name]), default))
        return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(name: str, raw: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if isinstance(raw, str) and raw.lower() in ("none", "null", ""):
            return None
        if raw is None:
            return None
        return _coerce(name, raw, args[0])
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if raw not in allowed:
            raise ParamError(f"parameter {name}={raw!r} must be one of {', '.join(map(str, allowed))}")
        return raw
    if not isinstance(raw, str):
        if tp is float and isinstance(raw, int) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, tp):
            return raw
        raise ParamError(f"parameter {name}={raw!r} must be of type {_type_name(tp)}")
    try:
        if tp is bool:
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if tp is int:
            return int(raw)
        if tp is float:
            return float(raw)
        if tp is str:
            return raw
    except ValueError:
        raise ParamError(f"parameter {name}={raw!r} is not a valid {_type_name(tp)}") from None
    raise ParamError(f"parameter {name} has an unsupported type {_type_name(tp)}")


def parse_param_string(text: str | None) -> dict[str, str]:
    """'sparsity=0.5,pattern=2:4' -> {'sparsity': '0.5', 'pattern': '2:4'}."""
    out: dict[str, str] = {}
    if not text:
        return out
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ParamError(f"malformed parameter {part!r}: expected key=value (e.g. sparsity=0.5)")
        key, value = part.split("=", 1)
        key = key.strip()
        if key in out:
            raise ParamError(f"parameter {key!r} given twice")
        out[key] = value.strip()
    return out


def build_params(cls: type[P], values: dict[str, Any], method: str = "") -> P:
    """Build a params object from raw values, refusing unknown keys with a suggestion."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    where = f" for method {method!r}" if method else ""
    kwargs: dict[str, Any] = {}
    for key, raw in values.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            valid = ", ".join(fields) or "(none)"
            raise ParamError(f"unknown parameter {key!r}{where}.{hint} Valid parameters: {valid}")
        kwargs[key] = _coerce(key, raw, hints[key])
    try:
        return cls(**kwargs)
    except ParamError as exc:
        raise ParamError(f"{exc}{where}") from None
