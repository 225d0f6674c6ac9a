"""Data-pruning method adapters (family ``data-pruning``): each selects a subset of a task's pool."""
