"""Benchmarks (``BENCHES``), run as ``tools/bench.py NAME ...`` (``--list``): speed, FLOPs,
host syncs and study measurements of the demo and full-width detectors; each prints the
table its docs page shows."""
from .base import Bench
from .helpers import encoder_inputs, spearman, with_ap

__all__ = ['Bench', 'encoder_inputs', 'spearman', 'with_ap']
