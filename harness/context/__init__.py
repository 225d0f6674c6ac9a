"""RAG context pruning: the ``context-pruning`` method family and task kind.

A context-pruning method sees a question and the sentences of a retrieved passage and keeps some
of them (in passage order); a fixed reader then answers the question from what was kept. The task
kind (:mod:`harness.context.context_pruning_task`) stores the reader's accuracy, the context tokens
kept and the reader's seconds, so methods are compared on accuracy against cost (Provence,
Chirkova et al. 2025, and its kin).

* :mod:`harness.context.base`: the family's base class, sentence splitting, top-k selection;
* :mod:`harness.context.reader`: the multiple-choice log-likelihood reader (a causal LM);
* :mod:`harness.context.context_pruning_task`: the task kind.
"""
