"""Built-in method adapters, one file per method, grouped by family."""
