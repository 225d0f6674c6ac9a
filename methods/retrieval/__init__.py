"""Retrieval method adapters."""
