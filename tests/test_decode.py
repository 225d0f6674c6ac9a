"""Static-cache decoding (harness.llm.decode): the tokens of greedy ``generate`` on a tiny Llama,
the memory-bandwidth bound by hand, the GPU table, the compiled (CUDA-graph) branch with
torch.compile faked, and the latency task's decode modes."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

import harness.llm.decode as dec
from harness.errors import TaskDefinitionError
from harness.llm.latency import decode_fn, decode_setup, random_input_ids
from tiny_models import one_thread, tiny_llama_config  # noqa: F401  (autouse fixture)


def hf_greedy(model, prompt: torch.Tensor, n: int) -> torch.Tensor:
    """Plain greedy ``generate``: no end-of-sequence token (so no early stop and no logits
    processor suppressing it), exactly ``n`` new tokens."""
    model.generation_config.eos_token_id = None
    cfg = GenerationConfig(do_sample=False, max_new_tokens=n, eos_token_id=None, pad_token_id=0)
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), generation_config=cfg)[:, prompt.shape[1]:]
    assert out.shape == (prompt.shape[0], n)
    return out


def prompt(batch: int, length: int, seed: int, vocab: int = 97) -> torch.Tensor:
    return random_input_ids(vocab, batch, length, seed, "cpu")


@pytest.fixture(scope="module")
def llama():
    return tiny_llama_config(2)


@pytest.mark.parametrize("batch,length,n", [(1, 5, 12), (2, 9, 7), (1, 1, 4), (3, 16, 20)])
def test_static_decode_gives_the_tokens_of_greedy_generate(llama, batch, length, n) -> None:
    ids = prompt(batch, length, seed=batch * 100 + length)
    expected = hf_greedy(llama, ids, n)
    decoder = dec.StaticDecoder(llama, batch, length + n)
    got = decoder.generate(ids, n)
    assert got.shape == (batch, n)
    assert torch.equal(got, expected)
    # the same cache object reset and reused (what the timed repeats do) gives the same tokens
    assert torch.equal(decoder.generate(ids, n), expected)
    # the latency protocol's pair: setup = prefill (first token), timed = the n steps after it
    first = decoder.setup_fn(ids)()
    assert torch.equal(first[:, 0], expected[:, 0])
    assert torch.equal(decoder.decode_fn(n - 1)(first), expected[:, 1:])
    # the dynamic (default) mode's pair decodes the same tokens
    cache, nxt = decode_setup(llama, ids)()
    assert torch.equal(nxt[:, 0], expected[:, 0])
    assert torch.equal(decode_fn(llama, n - 1)((cache, nxt)), expected[:, 1:])


def test_static_decode_refuses_what_does_not_fit(llama) -> None:
    decoder = dec.StaticDecoder(llama, 1, 8)
    with pytest.raises(ValueError, match="batch"):
        decoder.prefill(prompt(2, 4, 0))
    with pytest.raises(ValueError, match="no room"):
        decoder.prefill(prompt(1, 8, 0))
    first = decoder.prefill(prompt(1, 4, 0))
    with pytest.raises(ValueError, match="do not fit"):
        decoder.decode(first, 5)


# --------------------------------------------------------------------------------- the bound


def test_weight_bytes_by_hand() -> None:
    # hidden 32, intermediate 64, 4 heads of 8, 2 KV heads, vocab 97, 2 layers, float32
    per_layer = 32 * 32 + 32 * 16 + 32 * 16 + 32 * 32 + 3 * 32 * 64 + 2 * 32  # q k v o, gate up down, 2 norms
    body = 2 * per_layer + 32  # + final norm
    untied = tiny_llama_config(2)
    # untied: the lm_head is read whole, of the embedding only the looked-up rows (batch of them)
    assert dec.weight_bytes_per_step(untied, 1) == 4 * (body + 97 * 32 + 1 * 32)
    assert dec.weight_bytes_per_step(untied, 3) == 4 * (body + 97 * 32 + 3 * 32)
    torch.manual_seed(0)
    tied = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=97,
                                        tie_word_embeddings=True))
    assert tied.lm_head.weight is tied.model.embed_tokens.weight
    assert dec.weight_bytes_per_step(tied, 1) == 4 * (body + 97 * 32)  # the shared matrix once
    assert dec.weight_bytes_per_step(tied.to(torch.bfloat16), 1) == 2 * (body + 97 * 32)


def test_kv_bytes_per_position_read_off_dynamic_and_static_caches(llama) -> None:
    expected = 2 * 2 * 2 * 8 * 4 * 3  # layers x (K, V) x KV heads x head_dim x float32 bytes x batch 3
    cache, _ = decode_setup(llama, prompt(3, 6, 1))()
    assert dec.kv_bytes_per_position(cache) == expected
    decoder = dec.StaticDecoder(llama, 3, 20)  # allocated for 20 positions, 6 filled: same per position
    decoder.prefill(prompt(3, 6, 1))
    assert dec.kv_bytes_per_position(decoder.cache) == expected
    # a legacy tuple-of-(key, value) cache: 1 layer, batch 1, 2 heads, 5 positions, head_dim 4, fp16
    legacy = ((torch.zeros(1, 2, 5, 4, dtype=torch.float16), torch.zeros(1, 2, 5, 4, dtype=torch.float16)),)
    assert dec.kv_bytes_per_position(legacy) == 2 * 2 * 4 * 2


def test_bandwidth_bound_by_hand() -> None:
    # 10 prompt tokens, 9 timed steps: step k attends to 10 + k + 1 positions -> mean 15
    b = dec.bandwidth_bound(weight_bytes=1_000_000_000, kv_bytes_per_pos=1000, batch_size=2, prompt_len=10,
                            new_tokens=9, achieved_tokens_per_s=1500.0, bandwidth_bytes_per_s=2e12,
                            bandwidth_source="test")
    assert b["avg_context_len"] == pytest.approx(sum(10 + k + 1 for k in range(9)) / 9) == 15
    assert b["bytes_per_step"] == 1_000_015_000
    assert b["bound_tokens_per_s"] == pytest.approx(2 * 2e12 / 1_000_015_000)  # ~3999.94 tokens/s
    assert b["pct_of_bound"] == pytest.approx(100 * 1500 / (2 * 2e12 / 1_000_015_000))
    unknown = dec.bandwidth_bound(weight_bytes=10, kv_bytes_per_pos=1, batch_size=1, prompt_len=1, new_tokens=1,
                                  achieved_tokens_per_s=5.0, bandwidth_bytes_per_s=None, bandwidth_source="cpu")
    assert unknown["bound_tokens_per_s"] is None and unknown["pct_of_bound"] is None
    assert unknown["bytes_per_step"] == 12  # still reported: 10 + 1 x (1 + 1)


@pytest.mark.parametrize("name,expected", [
    ("NVIDIA H100 80GB HBM3", 3.35e12), ("NVIDIA H100 PCIe", 2.0e12), ("NVIDIA H100 NVL", 3.9e12),
    ("NVIDIA H200", 4.8e12), ("NVIDIA H200 NVL", 4.8e12), ("NVIDIA A100-SXM4-80GB", 2.039e12),
    ("NVIDIA A100 80GB PCIe", 1.935e12), ("NVIDIA A100-SXM4-40GB", 1.555e12), ("NVIDIA A100-PCIE-40GB", 1.555e12),
    ("NVIDIA L4", None), ("Tesla T4", None),
])
def test_memory_bandwidth_table(name, expected) -> None:
    bw, source = dec.memory_bandwidth("cuda", name)
    assert bw == expected
    assert ("datasheet" in source) if expected else ("not in the table" in source)


def test_memory_bandwidth_unknown_on_cpu_unless_overridden() -> None:
    assert dec.memory_bandwidth("cpu", "AMD EPYC")[0] is None
    assert dec.memory_bandwidth("cpu", "AMD EPYC", 51.2) == (51.2e9, "protocol override: 51.2 GB/s")
    assert dec.memory_bandwidth("cuda", "NVIDIA H100 80GB HBM3", 3000)[0] == 3e12  # the override wins


def test_semi_structured_weight_counts_packed_values_and_metadata() -> None:
    class Packed(torch.Tensor):  # stands in for torch's SparseSemiStructuredTensor (CUDA only)
        pass

    t = torch.zeros(8, 8, dtype=torch.float16).as_subclass(Packed)
    t.packed = torch.zeros(8, 4, dtype=torch.float16)
    t.meta = torch.zeros(8, 1, dtype=torch.int16)
    assert dec.tensor_bytes(t) == 8 * 4 * 2 + 8 * 2
    assert dec.tensor_bytes(torch.zeros(8, 8, dtype=torch.float16)) == 128


# ------------------------------------------------------------------- the compiled (GPU) branch


def test_compiled_step_uses_reduce_overhead_and_static_shapes(llama, monkeypatch) -> None:
    """On CUDA the step is torch.compile(mode="reduce-overhead", fullgraph=True); faked here to
    record its arguments and the shapes of every call (CUDA graphs need them fixed)."""
    compiled, shapes = [], []

    def fake_compile(fn, **kwargs):
        compiled.append(kwargs)

        def run(token, position):
            shapes.append((tuple(token.shape), tuple(position.shape), token.dtype, position.dtype))
            return fn(token, position)

        return run

    monkeypatch.setattr(torch, "compile", fake_compile)
    ids = prompt(2, 6, 3)
    decoder = dec.StaticDecoder(llama, 2, 6 + 9, compile_mode="reduce-overhead")
    assert compiled == [{"mode": "reduce-overhead", "fullgraph": True}]
    assert torch.equal(decoder.generate(ids, 9), hf_greedy(llama, ids, 9))
    assert shapes == [((2, 1), (1,), torch.long, torch.long)] * 8  # 8 steps after the prefill's token
    with pytest.raises(ValueError, match="compile mode"):
        dec.compile_step(lambda: None, "max-autotune")
    assert dec.compile_step(len, "none") is len


def test_captured_cuda_graph_branch_with_the_capture_faked(llama, monkeypatch) -> None:
    """compile: cuda-graph, with the CUDA capture faked by a replay that re-runs the step eagerly
    on the static input buffers (its warm-up calls run for real, as on a GPU): captured once at
    the first step, inputs copied into the static buffers, the cache's position counters put
    back after the warm-up, the tokens those of greedy generate, on every repeat."""
    captures = []

    def fake_capture(fn, *static_args, warmup=3):
        for _ in range(warmup):
            fn(*static_args)
        out = fn(*static_args)  # on a GPU the capture does not execute: harmless here (same position)
        captures.append([a.data_ptr() for a in static_args])
        return (lambda: out.copy_(fn(*static_args))), out

    monkeypatch.setattr(dec, "capture_cuda_graph", fake_capture)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    ids = prompt(2, 6, 5)
    expected = hf_greedy(llama, ids, 9)
    decoder = dec.StaticDecoder(llama, 2, 6 + 9, compile_mode="cuda-graph")
    assert torch.equal(decoder.generate(ids, 9), expected)
    assert torch.equal(decoder.generate(ids, 9), expected)  # the same graph, the cache reset
    assert len(captures) == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        dec.StaticDecoder(llama, 1, 8, compile_mode="cuda-graph")
    with pytest.raises(ValueError, match="compile mode"):
        dec.compile_step(len, "cuda-graph")  # not a torch.compile mode


@pytest.mark.slow
def test_step_traces_as_one_graph_without_recompiles(llama, monkeypatch) -> None:
    """The real dynamo trace of the step (fullgraph: no graph break) with an eager backend that
    counts graphs: one graph for every step and every repeat (positions are tensors, shapes fixed).
    About 20 s on one CPU core."""
    import torch._dynamo

    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None, fullgraph=False: real(
        fn, backend=counting_backend, fullgraph=fullgraph))
    torch._dynamo.reset()
    ids = prompt(1, 7, 4)
    expected = hf_greedy(llama, ids, 12)
    before = dec.compile_counters()
    decoder = dec.StaticDecoder(llama, 1, 7 + 12, compile_mode="reduce-overhead")
    assert torch.equal(decoder.generate(ids, 12), expected)
    assert torch.equal(decoder.generate(ids, 12), expected)
    assert len(graphs) == 1
    assert dec.counters_since(before) == {"unique_graphs": 1, "cudagraph_skips": 0}
    torch._dynamo.reset()


# --------------------------------------------------------------------------- the latency task


def _static_task():
    from harness.tasks import get_task

    return get_task("llm-latency-static")


def test_decode_mode_defaults_keep_the_existing_task() -> None:
    from harness.llm.latency_task import _grid
    from harness.tasks import get_task

    task = get_task("llm-latency")
    assert "mode" not in task.protocol["grids"]["cpu"]["decode"]  # the file (and so its run ids) unchanged
    for device in ("cpu", "cuda"):
        g = _grid(task, device)
        assert (g["decode_mode"], g["decode_compile"], g["memory_bandwidth_gb_s"]) == ("dynamic", "none", None)
    static = _static_task()
    assert _grid(static, "cuda")["decode_compile"] == "reduce-overhead"
    graph = get_task("llm-latency-cudagraph")
    assert (_grid(graph, "cuda")["decode_mode"], _grid(graph, "cuda")["decode_compile"]) == ("static", "cuda-graph")
    with pytest.raises(TaskDefinitionError, match="no latency grid"):
        _grid(graph, "cpu")
    assert (_grid(static, "cpu")["decode_mode"], _grid(static, "cpu")["decode_compile"]) == ("static", "none")


def _with_grid(task, device: str, **changes):
    grids = dict(task.protocol["grids"])
    g = dict(grids[device])
    decode = dict(g["decode"])
    for k, v in changes.items():
        if k.startswith("decode_"):
            decode[k.removeprefix("decode_")] = v
        else:
            g[k] = v
    g["decode"] = decode
    grids[device] = g
    return dataclasses.replace(task, protocol={**task.protocol, "grids": grids})


@pytest.mark.parametrize("changes,field", [
    ({"decode_mode": "graph"}, "decode.mode"),
    ({"decode_mode": "dynamic", "decode_compile": "default"}, "decode.compile"),
    ({"decode_compile": "max-autotune"}, "decode.compile"),
    ({"decode_compile": "default", "warmup": 0}, "warmup"),
    ({"memory_bandwidth_gb_s": -1}, "memory_bandwidth_gb_s"),
    ({"decode_compile": "cuda-graph"}, "decode.compile"),  # a CPU grid
])
def test_bad_decode_settings_name_the_field(changes, field) -> None:
    from harness.llm.latency_task import _grid

    with pytest.raises(TaskDefinitionError, match=f"protocol.grids.cpu.{field}"):
        _grid(_with_grid(_static_task(), "cpu", **changes), "cpu")


def test_protocol_model_refuses_an_unknown_decode_mode(tmp_path) -> None:
    from harness.tasks import load_task_file

    src = _static_task().path.read_text().replace("mode: static}\n      warmup: 1", "mode: fast}\n      warmup: 1")
    assert "mode: fast" in src
    (tmp_path / "t.yaml").write_text(src)
    with pytest.raises(TaskDefinitionError, match="mode"):
        load_task_file(tmp_path / "t.yaml")


def test_measure_static_compiled_with_a_gpu_bandwidth(llama, monkeypatch) -> None:
    """The evaluator's decode measurement on the CUDA grid's settings (compile reduce-overhead,
    faked), sizes shrunk, with an H100's bandwidth: the cell carries the bound and the percentage."""
    from harness.llm.latency_task import _grid, _measure

    from torch._dynamo.utils import counters

    modes = []

    def fake_compile(fn, **kw):  # what a compile that then skips CUDA graphs leaves in the counters
        modes.append(kw["mode"])
        counters["stats"]["unique_graphs"] += 1
        counters["inductor"]["cudagraph_skips"] += 1
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    grid = {**_grid(_static_task(), "cuda"), "batch_sizes": [1], "seqlens": [8], "decode_prompt_len": 8,
            "decode_new_tokens": 5, "warmup": 1, "repeats": 1, "decode_repeats": 2}
    bw = dec.memory_bandwidth("cuda", "NVIDIA H100 80GB HBM3")
    cells = _measure(llama, grid, "cpu", seed=0, vocab=97, progress=False, bandwidth=bw)
    assert modes == ["reduce-overhead"]
    cell = cells["decode/b1/p8/n5"]
    assert (cell["decode_mode"], cell["compile"]) == ("static", "reduce-overhead")
    assert cell["compile_counters"] == {"unique_graphs": 1, "cudagraph_skips": 1}
    bound = cell["bandwidth_bound"]
    per_step = dec.weight_bytes_per_step(llama, 1) + 2 * 2 * 2 * 8 * 4 * (8 + 3)
    assert bound["bytes_per_step"] == per_step
    assert bound["bound_tokens_per_s"] == pytest.approx(3.35e12 / per_step)
    assert bound["pct_of_bound"] == pytest.approx(100 * cell["tokens_per_s_p50"] / (3.35e12 / per_step))
    assert bound["bandwidth_source"].startswith("NVIDIA H100 datasheet")


@pytest.mark.slow
def test_static_task_runs_on_cpu_without_a_bound() -> None:
    from harness.kinds import RunContext, get_evaluator
    from harness.llm.models import load_model

    task = _with_grid(_static_task(), "cpu", threads=1)
    out = get_evaluator("latency")(task, RunContext(method=None, model=load_model("config:tiny-llama"),
                                                    device="cpu", limit=1, progress=False))
    assert set(out.metrics) == {m.name for m in task.metrics}
    d = out.efficiency["latency"]["decode"]
    assert (d["mode"], d["compile"], d["bound_tokens_per_s"], d["pct_of_bound"]) == ("static", "none", None, None)
    assert "not known" in d["bandwidth_source"]
    assert d["tokens_per_s_p50"] == pytest.approx(out.metrics["decode_tokens_per_s"].value)
    assert out.protocol_details["decode_mode"] == "static"


def test_static_decode_on_a_model_with_blocks_removed() -> None:
    """ShortGPT-style removal (blocks out of the ModuleList, layer_idx renumbered): the static cache
    holds only the remaining layers and the tokens are still those of greedy generate."""
    from methods.pruning._layer_removal import remove_blocks

    model = tiny_llama_config(4, seed=3)
    remove_blocks(model, [1, 2])
    ids = prompt(1, 6, 7)
    decoder = dec.StaticDecoder(model, 1, 6 + 10)
    assert torch.equal(decoder.generate(ids, 10), hf_greedy(model, ids, 10))
    assert dec.kv_bytes_per_position(decoder.cache) == 2 * 2 * 2 * 8 * 4  # 2 layers left
