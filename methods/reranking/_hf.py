"""Loading Hugging Face encoders for the neural rerankers (cross-encoder, monoT5, bi-encoder)."""

from __future__ import annotations

import os
from typing import Any

from harness.errors import HarnessError


def load_hf(model_id: str, auto_cls: Any, *, device: str = "cpu", dtype: str = "float32") -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, info) from a local directory or a hub id (``org/name`` or ``org/name@rev``)."""
    from transformers import AutoTokenizer

    from harness.llm.models import _torch_dtype

    local = os.path.isdir(model_id)
    repo, _, revision = (model_id, "", "") if local else model_id.partition("@")
    kwargs = {} if local else {"revision": revision or None}
    try:
        tokenizer = AutoTokenizer.from_pretrained(repo, **kwargs)
        model = auto_cls.from_pretrained(repo, dtype=_torch_dtype(dtype), **kwargs)
    except OSError as exc:
        where = "local directory" if local else "hub id (needs internet unless cached)"
        raise HarnessError(f"could not load model {model_id!r} as a {where}: {exc}") from None
    model.eval()
    model.to(device)
    info = {"source": "local" if local else "hub", "model": model_id, "architecture": type(model).__name__,
            "parameters": sum(p.numel() for p in model.parameters())}
    return model, tokenizer, info
