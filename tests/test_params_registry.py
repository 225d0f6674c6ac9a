import importlib.metadata
import sys
import textwrap
from dataclasses import dataclass

import pytest

from harness import registry
from harness.errors import ParamError, UnknownNameError
from harness.params import MethodParams, build_params, parse_param_string
from harness.llm.pruning import CalibratedSparsityParams, SparsityParams


def test_parse_param_string():
    assert parse_param_string("sparsity=0.5, pattern=2:4") == {"sparsity": "0.5", "pattern": "2:4"}
    assert parse_param_string("") == {}
    with pytest.raises(ParamError, match="expected key=value"):
        parse_param_string("sparsity")
    with pytest.raises(ParamError, match="given twice"):
        parse_param_string("a=1,a=2")


def test_build_params_coerces_by_annotation():
    p = build_params(CalibratedSparsityParams, {"sparsity": "0.3", "nsamples": "16", "seqlen": "512"})
    assert p.sparsity == 0.3 and p.nsamples == 16 and p.seqlen == 512 and p.pattern == "unstructured"
    with pytest.raises(ParamError, match="not a valid int"):
        build_params(CalibratedSparsityParams, {"nsamples": "many"})


@pytest.mark.parametrize(
    "values, message",
    [
        ({"sparsity": "1.5"}, r"sparsity=1.5 must be in \[0, 1\)"),
        ({"sparsity": "-0.1"}, "must be in"),
        ({"pattern": "3:2"}, "need 0 < N < M"),
        ({"pattern": "2-4"}, "must be 'unstructured' or 'N:M'"),
        ({"pattern": "2:4", "sparsity": "0.7"}, "fixes sparsity at 0.5"),
    ],
)
def test_out_of_range_params_are_refused(values, message):
    with pytest.raises(ParamError, match=message):
        build_params(SparsityParams, values, method="magnitude")


def test_unknown_param_suggests_nearest():
    with pytest.raises(ParamError, match="unknown parameter 'sparsty'.*Did you mean 'sparsity'"):
        build_params(SparsityParams, {"sparsty": "0.5"}, method="magnitude")


def test_params_are_frozen():
    p = SparsityParams()
    with pytest.raises(Exception):
        p.sparsity = 0.1


def test_unknown_method_suggests_nearest():
    with pytest.raises(UnknownNameError, match="Did you mean 'wanda'"):
        registry.get_method("wnada")


def test_builtin_methods_registered_by_family():
    names = {m.name for m in registry.list_methods("pruning")}
    assert {"dense", "magnitude", "wanda", "sparsegpt"} <= names


def test_entry_point_plugin_registers_a_method(tmp_path, monkeypatch):
    (tmp_path / "harness_test_plugin.py").write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass
            from harness.params import MethodParams
            from harness.llm.pruning import PruningMethod, PruneReport
            from harness.registry import register_method

            @dataclass(frozen=True)
            class P(MethodParams):
                strength: float = 1.0

            @register_method("plugin-noop", "pruning", P)
            class PluginNoop(PruningMethod):
                '''A third-party no-op method.'''
                def _prune(self, model, calibration):
                    return PruneReport()
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = importlib.metadata.EntryPoint(name="plugin-noop", value="harness_test_plugin", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry.importlib.metadata, "entry_points", lambda group: [ep] if group == registry.ENTRY_POINT_GROUP else [])
    registry.METHODS.load()
    registry.METHODS._load_entry_point(ep)
    info = registry.get_method("plugin-noop")
    assert info.family == "pruning" and info.summary == "A third-party no-op method."
    assert registry.instantiate("plugin-noop", {"strength": "2"}).params.strength == 2.0
    registry.METHODS.unregister("plugin-noop")
    sys.modules.pop("harness_test_plugin", None)


def test_register_rejects_non_params_class():
    with pytest.raises(TypeError):
        registry.register_method("x", "pruning", dict)  # type: ignore[arg-type]
    with pytest.raises(ValueError):

        @dataclass(frozen=True)
        class P(MethodParams):
            pass

        registry.register_method("x", "nonsense", P)
