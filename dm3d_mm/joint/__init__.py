"""The joint allocation: spatial keep ratios (Ada3D locations, SPSS stages) chosen together
with the weight densities against the exact joint cost."""
from .search import JointChoice, SpatialGrid, SpatialOption, joint_search, spatial_options
from .sites import SpatialSite, find_sites, keep_ratios, set_keep_ratios

__all__ = ['JointChoice', 'SpatialGrid', 'SpatialOption', 'joint_search', 'spatial_options',
           'SpatialSite', 'find_sites', 'keep_ratios', 'set_keep_ratios']
