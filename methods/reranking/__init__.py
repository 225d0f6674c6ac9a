"""Reranking method adapters."""
