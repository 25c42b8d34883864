"""Distortion estimators and allocators are registered pieces built by ``type=``: each
allocator states the constraints it honours, a new allocator is a new registered class that
the pruner runs without a branch of its own, and estimator arguments reach the curves."""
import pytest
import torch
from conftest import demo_config

import dm3d_mm  # noqa: F401


def test_every_allocator_and_estimator_is_registered_and_states_its_constraints():
    from dm3d_mm.registry import ALLOCATORS, ESTIMATORS
    from dm3d_mm.weight.allocators import CONSTRAINTS, Allocator
    from dm3d_mm.weight.estimators import DistortionEstimator
    assert {'dm3d', 'uniform', 'global_magnitude', 'lamp', 'erk'} <= set(ALLOCATORS.module_dict)
    assert {'fisher', 'taylor2', 'actual'} <= set(ESTIMATORS.module_dict)
    for name, cls in ALLOCATORS.module_dict.items():
        assert issubclass(cls, Allocator)
        assert set(cls.constraints) <= set(CONSTRAINTS), name
    assert set(ALLOCATORS.get('dm3d').constraints) == set(CONSTRAINTS)
    for name in ('uniform', 'global_magnitude', 'lamp', 'erk'):
        assert ALLOCATORS.get(name).constraints == ()
    for cls in ESTIMATORS.module_dict.values():
        assert issubclass(cls, DistortionEstimator)
        assert cls.gradient_mode in ('hutchinson', 'sum')


def test_pieces_are_built_from_names_and_configs():
    from dm3d_mm.pruning import DM3DPruner
    p = DM3DPruner(0.5, method=dict(type='dm3d', bisect_steps=3),
                   estimator=dict(type='fisher', kappa=0.25))
    assert p.method == 'dm3d' and p.allocator.bisect_steps == 3
    assert p.estimator == 'fisher' and p.estimator_piece.kappa == 0.25
    assert DM3DPruner(0.5, kappa=0.5).estimator_piece.kappa == 0.5  # the flag still works
    assert DM3DPruner(0.5, estimator='taylor2')._gradient_mode() == 'sum'
    assert DM3DPruner(0.5, method='lamp')._gradient_mode() is None
    with pytest.raises(ValueError, match='unknown estimator'):
        DM3DPruner(0.5, estimator='hessian')
    with pytest.raises(ValueError, match='kappa damps'):
        DM3DPruner(0.5, estimator='actual', kappa=0.1)


def test_a_new_registered_allocator_runs_in_the_pruner(synth_root):
    """A user's allocator (every layer at the sparsest candidate that keeps the budget, by a
    bisection on one shared ratio over the DP items) needs only a registered class."""
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.pruning import DM3DPruner
    from dm3d_mm.pruning.calib_frames import calibration_batches
    from dm3d_mm.registry import ALLOCATORS
    from dm3d_mm.weight.allocators import Allocator

    @ALLOCATORS.register_module(name='test_shared_candidate', force=True)
    class SharedCandidate(Allocator):
        constraints = ('keep_dense', )
        uses_curves = True

        def allocate(self, problem):
            k_max = len(problem.item_costs[0])
            for k in range(k_max):
                choice = [min(k, len(c) - 1) if any(a) and a[min(k, len(c) - 1)] else
                          max(i for i, ok in enumerate(a) if ok)
                          for c, a in zip(problem.item_costs, problem.item_allowed)]
                masks = problem.masks_of(choice)
                if problem.total(masks) <= problem.budget:
                    return masks, choice
            raise ValueError('nothing fits')

    cfg = demo_config('second', synth_root)
    model = build_detector(cfg, None, 'cpu')
    torch.manual_seed(0)
    batches = calibration_batches(cfg, 2, 'train')
    res = DM3DPruner(0.6, method='test_shared_candidate', num_ratios=8, parts=['backbone'],
                     progress=False).prune(model, batches)
    assert res.method == 'test_shared_candidate'
    assert res.macs_after <= 0.6 * res.macs_before * (1 + 1e-9)
    ratios = {round(lr.ratio, 2) for lr in res.layers}
    assert len(ratios) == 1 and ratios != {0.0}  # one shared candidate for every layer
    with pytest.raises(ValueError, match="'test_shared_candidate' does not honour min_density"):
        DM3DPruner(0.6, method='test_shared_candidate', min_density=0.2)
