"""Information-retrieval half of the harness: collections, method interfaces, evaluation."""
