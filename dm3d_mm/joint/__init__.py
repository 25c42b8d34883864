"""The joint allocation: spatial keep ratios (Ada3D locations, SPSS stages) chosen together
with the weight densities against the exact joint cost."""
from .rerank import FinetuneProbe
from .search import CombinationCounts, JointChoice, KeepCombination, SpatialSpec, joint_search
from .sites import SpatialSite, find_sites, keep_ratios, set_keep_ratios

__all__ = ['FinetuneProbe', 'JointChoice', 'SpatialSpec', 'KeepCombination', 'CombinationCounts',
           'joint_search',
           'SpatialSite', 'find_sites', 'keep_ratios', 'set_keep_ratios']
