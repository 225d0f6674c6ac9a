"""Every CUDA-only path, run on a CPU with the CUDA parts faked where they must be (issue 13, part 4).

The paths (grep ``cuda`` in harness/ and methods/): CUDA-event timing and GPU peak memory
(harness.llm.latency), the 2:4 availability check (the conversion itself is faked in
test_latency.py), the GPU name behind the bandwidth bound (harness.llm.latency_task and
harness.llm.decode), ``--device cuda`` checks (harness.runner), the device record
(harness.provenance) and its export (harness.exports), the perplexity evaluator's device handling,
calibration batches following the model's device (harness.llm.layerwise), and the prepared GPU run
(scripts/gpu_latency.sh, dry run).
"""

from __future__ import annotations

import shutil
import subprocess
import types
from pathlib import Path

import pytest
import torch

from harness.errors import HarnessError
from tiny_models import one_thread, tiny_llama_config  # noqa: F401 (autouse fixture)

ROOT = Path(__file__).resolve().parents[1]


class FakeEvent:
    """torch.cuda.Event stand-in: each record() takes the next reading (ms) of a shared script."""

    readings: list[float] = []
    log: list[str] = []

    def __init__(self, enable_timing: bool = False):
        assert enable_timing
        self.t: float | None = None

    def record(self) -> None:
        self.t = FakeEvent.readings.pop(0)
        FakeEvent.log.append("record")

    def synchronize(self) -> None:
        FakeEvent.log.append("event-sync")

    def elapsed_time(self, end: FakeEvent) -> float:
        return end.t - self.t


@pytest.fixture
def fake_cuda(monkeypatch):
    """A CPU machine that says it has one CUDA GPU (an H100 SXM, compute capability 9.0)."""
    log: list[str] = []
    state = {"peak": 0}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: log.append("sync"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: log.append("reset") or state.update(peak=0))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: state["peak"])
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    FakeEvent.log = log
    return types.SimpleNamespace(log=log, state=state)


# ---------------------------------------------------------------------------- latency timing


def test_cuda_event_timer_times_with_events_after_a_device_sync(fake_cuda) -> None:
    from harness.llm.latency import CudaEventTimer, Timer, make_timer

    timer = make_timer("cuda:0")
    assert isinstance(timer, CudaEventTimer) and timer.kind == "cuda_events"
    assert type(make_timer("cpu")) is Timer
    FakeEvent.readings = [10.0, 11.5, 20.0, 20.25]  # two timed calls: 1.5 ms and 0.25 ms
    calls = []
    durations = timer.measure(lambda: calls.append(len(fake_cuda.log)), warmup=2, repeats=2)
    assert durations == [1_500_000, 250_000]  # elapsed_time is in ms, durations in ns
    assert len(calls) == 4  # two warm-up calls, untimed (no events recorded for them)
    # each timed call: device sync, start event, the call, end event, wait for the end event
    assert fake_cuda.log == ["sync", "record", "record", "event-sync"] * 2


def test_gpu_peak_memory_resets_then_reads_max_allocated(fake_cuda) -> None:
    from harness.llm.latency import PeakMemory

    with PeakMemory("cuda") as peak:
        assert fake_cuda.log == ["sync", "reset"]
        fake_cuda.state["peak"] = 3 * 2**20
    assert fake_cuda.log == ["sync", "reset", "sync"]
    assert peak.bytes == 3 * 2**20 and peak.mb == 3.0 and peak.kind == "cuda_max_memory_allocated"
    with PeakMemory("cpu") as rss:  # the CPU path never touches CUDA
        pass
    assert fake_cuda.log == ["sync", "reset", "sync"] and rss.bytes > 0 and "rss" in rss.kind


def test_semi_structured_availability_on_faked_gpus(fake_cuda, monkeypatch) -> None:
    from harness.llm.latency import semi_structured_unavailable

    assert semi_structured_unavailable("cuda", torch.bfloat16) is None
    assert semi_structured_unavailable("cuda:0", torch.float16) is None
    assert "float16 or bfloat16" in semi_structured_unavailable("cuda", torch.float32)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 5))  # a T4
    assert "compute capability >= 8.0" in semi_structured_unavailable("cuda", torch.float16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert semi_structured_unavailable("cuda", torch.float16) == "CUDA is not available"


def test_gpu_name_and_bandwidth_for_the_decode_bound(fake_cuda) -> None:
    from harness.llm.decode import memory_bandwidth
    from harness.llm.latency_task import device_name, device_type

    assert device_type("cuda:0") == "cuda" and device_type("cpu") == "cpu"
    name = device_name("cuda:0")
    assert name == "NVIDIA H100 80GB HBM3"
    assert memory_bandwidth(device_type("cuda:0"), name)[0] == 3.35e12


def test_latency_evaluator_refuses_cuda_when_there_is_none(monkeypatch) -> None:
    from harness.kinds import RunContext, get_evaluator
    from harness.llm.models import LoadedModel
    from harness.tasks import get_task

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = LoadedModel("tiny", tiny_llama_config(1), None)
    for task_id in ("llm-latency", "llm-latency-static"):
        with pytest.raises(HarnessError, match="CUDA is not available"):
            get_evaluator("latency")(get_task(task_id), RunContext(method=None, model=loaded, device="cuda",
                                                                   limit=1, progress=False))


# ------------------------------------------------------------------- --device cuda, provenance


def test_check_device_with_and_without_a_gpu(fake_cuda, monkeypatch) -> None:
    from harness.runner import check_device

    check_device("cuda")
    check_device("cuda:0")
    with pytest.raises(HarnessError, match="has 1 CUDA device"):
        check_device("cuda:1")
    with pytest.raises(HarnessError, match="unsupported"):
        check_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(HarnessError, match="no CUDA device is available"):
        check_device("cuda")
    check_device("cpu")


def test_device_record_and_its_export_name_the_gpu(fake_cuda) -> None:
    from harness.exports import _platform
    from harness.provenance import device_info

    info = device_info("cuda")
    assert (info["type"], info["name"], info["cuda"], info["capability"]) == (
        "cuda", "NVIDIA H100 80GB HBM3", "12.4", "9.0")
    prov = types.SimpleNamespace(device=info, platform="Linux", python="3.11", packages={"torch": "2"},
                                 harness_version="0")
    hardware = _platform(types.SimpleNamespace(result=types.SimpleNamespace(provenance=prov)))["hardware"]
    assert hardware["gpu"] == {"model": "NVIDIA H100 80GB HBM3"}
    assert hardware["cpu"]["architecture"] != "NVIDIA H100 80GB HBM3"  # the GPU is not the CPU
    cpu = device_info("cpu")
    assert cpu["type"] == "cpu" and "cuda" not in cpu


# ------------------------------------------------------- data following the device (perplexity, calibration)


@pytest.fixture
def cuda_moves_stay_on_cpu(monkeypatch):
    """Tensor.to('cuda...') recorded and carried out on the CPU (a CPU build cannot allocate on CUDA)."""
    moved: list[str] = []
    real_to = torch.Tensor.to

    def to(self, *args, **kwargs):
        target = args[0] if args else kwargs.get("device")
        if isinstance(target, (str, torch.device)) and str(target).startswith("cuda"):
            moved.append(str(target))
            args = ("cpu", *args[1:]) if args else args
            if "device" in kwargs:
                kwargs["device"] = "cpu"
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", to)
    return moved


def test_perplexity_sends_each_batch_to_the_requested_device(cuda_moves_stay_on_cpu) -> None:
    from harness.llm.perplexity import window_nll

    model = tiny_llama_config(1)
    windows = torch.randint(0, 97, (5, 12), generator=torch.Generator().manual_seed(0))
    on_cpu = window_nll(model, windows, "cpu", batch_size=2, progress=False)
    assert cuda_moves_stay_on_cpu == []
    on_gpu = window_nll(model, windows, "cuda:0", batch_size=2, progress=False)
    assert cuda_moves_stay_on_cpu == ["cuda:0"] * 3  # batches of 2, 2, 1
    assert on_gpu.dtype == torch.float64 and on_gpu.device.type == "cpu"  # sums come back to the host
    assert torch.equal(on_gpu, on_cpu)


def test_calibration_batches_follow_the_models_device(cuda_moves_stay_on_cpu, monkeypatch) -> None:
    """Layer-wise calibration (Wanda, SparseGPT) feeds its token ids to the device the model is on."""
    import harness.llm.layerwise as lw

    seen = {}
    real = lw.model_device

    def on_gpu(model):
        seen["real"] = real(model)
        return torch.device("cuda", 0)

    monkeypatch.setattr(lw, "model_device", on_gpu)

    model = tiny_llama_config(2)
    ids = torch.randint(0, 97, (2, 8), generator=torch.Generator().manual_seed(1))
    captured = lw.capture_block_inputs(model, ids)
    assert seen["real"].type == "cpu"
    assert cuda_moves_stay_on_cpu == ["cuda:0", "cuda:0"]  # one calibration window at a time
    assert captured.hidden.shape == (2, 8, 32)


# ------------------------------------------------------------------------- the prepared GPU run


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_latency_script_parses_and_dry_runs() -> None:
    from harness.registry import get_method
    from harness.tasks import get_task

    script = ROOT / "scripts" / "gpu_latency.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    out = subprocess.run(["bash", str(script)], env={"DRY_RUN": "1", "PATH": "/usr/bin:/bin"}, check=True,
                         capture_output=True, text=True).stdout.splitlines()
    static = [line for line in out if "llm-latency-static" in line]
    for model in ("config:llama-2-7b", "config:llama-3-8b"):
        assert any(f"--method dense --task llm-latency --task llm-latency-static --task llm-latency-cudagraph "
                   f"--model {model} --device cuda --dtype bfloat16" in line for line in static), model
    assert any("--method shortgpt" in line and "config:llama-2-7b" in line for line in static)
    # dense and ShortGPT of llama-2-7b run once (with both decodes), not again in the method loop
    dense_7b = [line for line in out if "--method dense" in line and "config:llama-2-7b" in line]
    assert len(dense_7b) == 1
    for line in out:  # every task and method the script names exists
        words = line.split()
        for i, w in enumerate(words):
            if w == "--task":
                get_task(words[i + 1])
            if w == "--method":
                get_method(words[i + 1])
    env = {"DRY_RUN": "1", "PARTS": "static", "PATH": "/usr/bin:/bin"}
    only_static = subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True,
                                 text=True).stdout.splitlines()
    assert only_static == static


def test_config_model_is_built_on_the_requested_device(cuda_moves_stay_on_cpu, monkeypatch) -> None:
    """``--device cuda`` for a config: model (pruning and latency runs): it is built under
    ``torch.device('cuda')`` (a 7B model is never initialised on the CPU first) and moved there."""
    import transformers

    from harness.llm import models

    built_under = []

    def from_config(cfg, dtype=None):
        from torch.overrides import _get_current_function_mode_stack  # torch.device(...) as a context is a mode

        built_under.extend(m.device for m in _get_current_function_mode_stack() if hasattr(m, "device"))
        with torch.device("cpu"):  # a CPU build cannot allocate on CUDA: build the tiny model here
            return tiny_llama_config(1)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_config", from_config)
    monkeypatch.setattr(models, "embedded_checkpoint", lambda *a, **k: (_ for _ in ()).throw(HarnessError("none")))
    loaded = models.load_model("config:tiny-llama", device="cuda")
    assert [d.type for d in built_under] == ["cuda"]
    assert cuda_moves_stay_on_cpu and set(cuda_moves_stay_on_cpu) == {"cuda"}  # then model.to("cuda")
    assert loaded.random_weights
