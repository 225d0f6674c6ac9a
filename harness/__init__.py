"""harness: run pruning, retrieval and reranking methods on pinned tasks, store results with
provenance, report them as a static leaderboard and compare runs with paired tests."""

__version__ = "0.1.0"
