"""The generic Registry: aliases, lazy entries, base-class check, entry points, suggestions."""

from __future__ import annotations

import importlib.metadata
import numbers
import sys
import textwrap

import pytest

from harness.errors import HarnessError, UnknownNameError
from harness.registry import FAMILIES, Registry, load_target


class Base:
    pass


class Good(Base):
    pass


class Other:
    pass


def make(**kw) -> Registry:
    return Registry("widget", base=Base, **kw)


def test_register_get_and_aliases():
    reg = make()
    reg.register("good", Good, aliases=("g", "fine"))
    assert reg.get("good") is Good
    assert reg.get("g") is Good and reg.get("fine") is Good
    assert reg.canonical("g") == "good"
    assert "g" in reg and "bad" not in reg
    assert reg.names() == ["good"]  # aliases are not entries


def test_decorator_form_returns_the_object():
    reg = make()

    @reg.register("deco")
    class Deco(Base):
        pass

    assert reg.get("deco") is Deco


def test_base_class_check_refuses_wrong_objects_at_registration():
    reg = make()
    with pytest.raises(HarnessError, match="is not a Base"):
        reg.register("other", Other)
    assert "other" not in reg


def test_registered_twice_from_another_place_is_refused_and_alias_clashes_too():
    reg = make()
    reg.register("good", Good)
    reg.register("good", Good)  # the same object again (a module re-imported) is fine

    class Good2(Base):
        pass

    with pytest.raises(HarnessError, match="registered twice"):
        reg.register("good", Good2)
    reg.register("b", Good2, aliases=("x",))
    with pytest.raises(HarnessError, match="alias 'x'"):
        reg.register("c", Good, aliases=("x",))
    with pytest.raises(HarnessError, match="already an alias"):
        reg.register("x", Good)


def test_unknown_name_suggests_the_nearest_and_lists_all():
    reg = make()
    reg.register("magnitude", Good)
    reg.register("wanda", Good, origin="t2")
    with pytest.raises(UnknownNameError) as exc:
        reg.get("wnada")
    assert "Did you mean 'wanda'" in str(exc.value)
    assert "magnitude, wanda" in str(exc.value)
    assert reg.suggest("magnitud") == ["magnitude"]


def test_lazy_entries_import_only_when_used(tmp_path, monkeypatch):
    (tmp_path / "lazy_widgets_mod.py").write_text(textwrap.dedent(
        """
        import numbers
        class Lazy(numbers.Number):
            pass
        class Other:
            pass
        """
    ))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("lazy_widgets_mod", None)
    reg = Registry("widget", base=numbers.Number)
    reg.register_lazy("lazy", "lazy_widgets_mod:Lazy")
    reg.register_lazy("wrong", "lazy_widgets_mod:Other")
    reg.register_lazy("missing", "no_such_module_xyz:Thing")
    assert "lazy_widgets_mod" not in sys.modules  # registering imported nothing
    assert reg.get("lazy").__name__ == "Lazy"
    assert "lazy_widgets_mod" in sys.modules
    with pytest.raises(HarnessError, match="is not a Number"):
        reg.get("wrong")
    with pytest.raises(HarnessError, match="needs the package 'no_such_module_xyz'"):
        reg.get("missing")
    # items() resolves what it can and records the rest as unavailable
    assert [n for n, _ in reg.items()] == ["lazy"]
    assert set(reg.unavailable) == {"missing", "wrong"}
    with pytest.raises(HarnessError, match="must read 'package.module:attr'"):
        reg.register_lazy("bad", "no_colon_here")
    sys.modules.pop("lazy_widgets_mod", None)


def test_entry_points_register_objects_lazily_and_broken_ones_do_not_break_others(tmp_path, monkeypatch):
    (tmp_path / "ep_widgets_mod.py").write_text(
        "import numbers\nclass FromPlugin(numbers.Number):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    good = importlib.metadata.EntryPoint(name="plug", value="ep_widgets_mod:FromPlugin", group="harness.widgets")
    broken = importlib.metadata.EntryPoint(name="broken", value="no_such_plugin_xyz", group="harness.widgets")
    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda group: [good, broken] if group == "harness.widgets" else []
    )
    reg = Registry("widget", base=numbers.Number, entry_point_group="harness.widgets")
    assert reg.names() == ["plug"]
    assert reg.get("plug").__name__ == "FromPlugin"
    assert "broken" in reg.unavailable
    with pytest.raises(HarnessError, match="unavailable"):
        reg.get("broken")
    sys.modules.pop("ep_widgets_mod", None)


def test_builtins_are_registered_once_on_first_use():
    calls = []

    def builtins(reg: Registry) -> None:
        calls.append(1)
        reg.register("good", Good)

    reg = make(builtins=builtins)
    assert calls == []
    assert reg.get("good") is Good and reg.names() == ["good"]
    assert calls == [1]


def test_load_target_and_method_families():
    assert load_target("harness.registry:Registry") is Registry
    assert set(FAMILIES.names()) >= {"pruning", "retrieval", "reranking"}
    assert FAMILIES.get("retrieval").__name__ == "RetrievalMethod"
