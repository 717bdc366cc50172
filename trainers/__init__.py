"""Compact pretraining trainers over zhmask shards: ``trainers.bert`` and ``trainers.electra``
(one loop in ``trainers.common``). See trainers/README.md."""
