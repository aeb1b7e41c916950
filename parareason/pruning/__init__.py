"""Pruning: DeepPrune-style online clustering of samples by predicted final answer.

`DeepPrunePolicy` (deepprune.py) is a Policy (`--policy deepprune`, import path
`parareason.pruning.deepprune:DeepPrunePolicy`); `OnlineClusters` (clusters.py) is its
pure clustering logic. Judges live in `parareason.judge`.
"""
