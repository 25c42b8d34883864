"""Structured pruning: granularities (weight, kernel offset, channel), the channel graphs of
detector parts, the masks that go with removed channels, the slim export and kernel-offset
skipping."""
from .channel_graph import ChannelGraph, WidthGroup, find_channel_graph
from .granularity import (
                          ChannelGranularity,
                          Granularity,
                          OffsetGranularity,
                          WeightGranularity,
                          build_granularity,
)

__all__ = ['ChannelGraph', 'WidthGroup', 'find_channel_graph', 'ChannelGranularity',
           'Granularity', 'OffsetGranularity', 'WeightGranularity', 'build_granularity']
