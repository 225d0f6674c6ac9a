"""Pruning method adapters."""
