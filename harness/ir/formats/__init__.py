"""Readers of IR test-collection files, one module per format (registered in harness.builtins).

corpus:      ``trec-docs``, ``smart-docs``, ``scifact-zip``
topics:      ``trec-topics``, ``smart-queries``, ``beir-topics``, ``tsv-topics`` (TREC DL)
qrels:       ``trec-qrels``, ``pair-qrels``, ``graded-qrels``
collection:  ``sciq-arrow`` (corpus, topics and qrels derived from one file)
first stage: ``rankgpt-candidates-json`` (TREC DL); runs: ``trec-run``

Each reader returns :class:`Parsed` rows plus counts of what its deterministic rules changed; the
collection-level rules (duplicates, unjudged topics...) are applied by
:func:`harness.ir.collections.assemble`. Malformed input raises
:class:`~harness.errors.DataIntegrityError` naming the file and the line.
"""

from harness.ir.formats._common import Parsed, PerFileFormat

__all__ = ["Parsed", "PerFileFormat"]
