"""Compact pretraining trainers over zhmask shards: ``trainers.bert``, ``trainers.electra`` and ``trainers.ernie2``
(one loop in ``trainers.common``). See trainers/README.md."""
