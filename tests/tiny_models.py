"""Helpers shared by the pruning tests on tiny Llama models (imported, like fixtures_results)."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from harness.params import build_params


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core machine two OpenMP threads
    can be 10-100x slower than one. Autouse in every module that imports it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(cls, values):
    """The adapter with parameters parsed exactly as the registry would (without importing every method)."""
    return cls(build_params(cls.Params, values, method=cls.method_name))


def tiny_llama_config(layers: int, hidden: int = 32, intermediate: int = 64, heads: int = 4,
                      kv_heads: int = 2, vocab: int = 97, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=vocab,
                      max_position_embeddings=128)
    return LlamaForCausalLM(cfg).eval()
