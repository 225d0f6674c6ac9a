"""Context-pruning methods (family ``context-pruning``, :mod:`harness.context.base`)."""
