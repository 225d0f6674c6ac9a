"""Data pruning: select a subset of a training pool, train a fixed learner on it, report quality
against the fraction kept.

* :mod:`harness.datapruning.base`: the family's base class :class:`~harness.datapruning.base.DataPruningMethod`,
  the :class:`~harness.datapruning.base.Pool` a method selects from, the task's fixed
  :class:`~harness.datapruning.base.Learner` and the score helpers the methods share (EL2N, GraNd,
  k-means);
* :mod:`harness.datapruning.data_pruning_task`: the task kind ``data-pruning`` (protocol, evaluator,
  metrics, the site's track and plot).

Methods live in ``methods/data/``, one file each.
"""
