"""DM3D core pieces: DP allocation, distortion curves, masks under training."""
import itertools

import numpy as np
import pytest
import spconv.pytorch as spconv
import torch
from torch import nn

import dm3d_mm  # noqa: F401
from dm3d_mm.cost.layouts import mask_at
from dm3d_mm.weight import MaskSet, allocate, distortion_curve
from dm3d_mm.weight.curves import prune_order, ratio_counts, taylor_scores


# -- dynamic programming -------------------------------------------------------------
def exhaustive(costs, dists, budget, allowed=None):
    best = np.inf
    options = [range(len(c)) if allowed is None else np.flatnonzero(allowed[i]).tolist()
               for i, c in enumerate(costs)]
    for choice in itertools.product(*options):
        c = sum(costs[i][k] for i, k in enumerate(choice))
        if c <= budget:
            best = min(best, sum(dists[i][k] for i, k in enumerate(choice)))
    return best


@pytest.mark.parametrize('seed', range(8))
def test_dp_is_exact_optimum_on_integer_instances(seed):
    rng = np.random.default_rng(seed)
    layers, options = int(rng.integers(2, 5)), int(rng.integers(2, 6))
    costs = [sorted(rng.integers(1, 30, options).tolist(), reverse=True) for _ in range(layers)]
    dists = [sorted(rng.random(options).tolist()) for _ in range(layers)]
    budget = int(sum(min(c) for c in costs) + rng.integers(0, 40))
    res = allocate(costs, dists, budget, unit=1)
    assert res.distortion == pytest.approx(exhaustive(costs, dists, budget))
    assert res.cost <= budget


@pytest.mark.parametrize('seed', range(5))
def test_dp_never_exceeds_budget_with_float_costs(seed):
    rng = np.random.default_rng(100 + seed)
    costs = [np.sort(rng.random(9) * 1e6)[::-1].tolist() for _ in range(12)]
    dists = [np.sort(rng.random(9)).tolist() for _ in range(12)]
    for frac in (0.3, 0.5, 0.8):
        budget = frac * sum(c[0] for c in costs)
        res = allocate(costs, dists, budget, num_buckets=1000)
        assert res.cost <= budget
        exact = sum(costs[i][k] for i, k in enumerate(res.choice))
        assert res.cost == pytest.approx(exact)
        # the bucketed answer is close to the unbucketed optimum (fine grid)
        fine = allocate(costs, dists, budget, num_buckets=100000)
        assert res.distortion <= fine.distortion + 0.05 * sum(d[-1] for d in dists)


@pytest.mark.parametrize('seed', range(8))
def test_dp_with_float_costs_and_allowed_sets_against_exhaustive_search(seed):
    """Float costs, some candidates disallowed (density floors, keep_dense): the DP's choice
    is allowed, fits the budget, and is bracketed by the exhaustive optimum at the budget and
    at the budget less one grid unit per layer (each cost is rounded up by under a unit)."""
    rng = np.random.default_rng(200 + seed)
    layers, options = int(rng.integers(3, 6)), int(rng.integers(3, 6))
    costs = [np.sort(rng.random(options) * 1e3)[::-1].tolist() for _ in range(layers)]
    dists = [np.sort(rng.random(options)).tolist() for _ in range(layers)]
    allowed = [rng.random(options) > 0.3 for _ in range(layers)]
    for a in allowed:
        a[0] = True  # dense always allowed: a feasible instance exists at full budget
    budget = 0.6 * sum(c[0] for c in costs)
    nb = 2000
    unit = budget / nb
    floor = exhaustive(costs, dists, budget - layers * unit, allowed)
    best = exhaustive(costs, dists, budget, allowed)
    if not np.isfinite(best):
        with pytest.raises(ValueError, match='no allocation fits'):
            allocate(costs, dists, budget, num_buckets=nb, allowed=allowed)
        return
    res = allocate(costs, dists, budget, num_buckets=nb, allowed=allowed)
    assert all(allowed[i][k] for i, k in enumerate(res.choice))
    assert res.cost <= budget
    assert best - 1e-12 <= res.distortion <= floor + 1e-12


def test_dp_infeasible_budget_is_a_clear_error():
    with pytest.raises(ValueError, match='no allocation fits'):
        allocate([[10, 5]], [[0, 1]], budget=4, unit=1)


# -- distortion curves -----------------------------------------------------------------
def _layer(seed=0, d=60, m=7):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(d, generator=g), torch.randn(m, d, generator=g)


def test_fisher_curve_equals_explicit_quadratic_form():
    w, grads = _layer()
    kappa = 0.3
    c = distortion_curve(w, grads, 6, 'fisher', kappa)
    F = kappa * torch.eye(60, dtype=torch.float64) + grads.double().T @ grads.double() / 7
    for k, n in enumerate(c.counts.tolist()):
        dw = torch.zeros(60, dtype=torch.float64)
        idx = c.order[:n]
        dw[idx] = -w.double()[idx]
        assert float(c.distortion[k]) == pytest.approx(float(dw @ F @ dw), rel=1e-9, abs=1e-12)


def test_taylor2_curve_equals_paper_formula_and_incremental_equals_scratch():
    w, grads = _layer(1)
    gbar = grads.double().mean(0)
    c = distortion_curve(w, grads, 5, 'taylor2', 0.1)
    H = 0.1 * torch.eye(60, dtype=torch.float64) + grads.double().T @ grads.double() / 7
    for k, n in enumerate(c.counts.tolist()):
        # from scratch at ratio k: the same pruned set, no incremental state
        dw = torch.zeros(60, dtype=torch.float64)
        dw[c.order[:n]] = -w.double()[c.order[:n]]
        expect = float(gbar @ dw + 0.5 * dw @ H @ dw)
        assert float(c.distortion[k]) == pytest.approx(expect, rel=1e-9, abs=1e-12)


def test_curve_prunes_least_important_first_and_counts_are_exact():
    w, grads = _layer(2)
    s = taylor_scores(w, grads)
    order = prune_order(s)
    assert torch.all(s[order][1:] >= s[order][:-1])
    counts = ratio_counts(60, 4)
    assert counts.tolist() == [0, 15, 30, 45, 60]
    m = mask_at(w, order, 15)
    assert int((~m).sum()) == 15 and bool(m[order[15:]].all())
    c = distortion_curve(w, grads, 4)
    assert c.distortion[0] == 0 and torch.all(c.distortion[1:] >= 0)


# -- masks through training --------------------------------------------------------------
class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.sp = spconv.SubMConv3d(3, 4, 3, padding=1, bias=False, indice_key='a')
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        f = self.sp(x).dense()  # (1, 4, D, H, W)
        f = self.conv(f.sum(2))
        return self.fc(f.mean((2, 3)))


def _input():
    g = torch.Generator().manual_seed(0)
    idx = torch.unique(torch.randint(0, 6, (40, 3), generator=g), dim=0)
    idx = torch.cat([torch.zeros(len(idx), 1, dtype=torch.long), idx], 1).int()
    return spconv.SparseConvTensor(torch.randn(len(idx), 3, generator=g), idx, [6, 6, 6], 1)


@pytest.mark.parametrize('opt', ['adamw', 'adam', 'sgd'])
def test_masks_survive_optimizer_steps_with_momentum_and_weight_decay(opt):
    torch.manual_seed(0)
    net = TinyNet()
    x = _input()
    make = dict(adamw=lambda p: torch.optim.AdamW(p, 1e-2, weight_decay=0.1),
                adam=lambda p: torch.optim.Adam(p, 1e-2, weight_decay=0.1),
                sgd=lambda p: torch.optim.SGD(p, 1e-2, momentum=0.9, weight_decay=0.1))[opt]
    optim = make(net.parameters())
    for _ in range(3):  # dense steps first: the optimizer holds momentum for every weight
        optim.zero_grad()
        net(x).pow(2).sum().backward()
        optim.step()
    g = torch.Generator().manual_seed(1)
    masks = {n: torch.rand(m.weight.shape, generator=g) > 0.5
             for n, m in (('sp', net.sp), ('conv', net.conv), ('fc', net.fc))}
    ms = MaskSet(net, masks).attach(optim)
    kept_changed = False
    for _ in range(50):
        optim.zero_grad()
        before = net.conv.weight.detach().clone()
        net(x).pow(2).sum().backward()
        optim.step()
        kept_changed |= not torch.equal(before[masks['conv']], net.conv.weight[masks['conv']])
    for n, m in (('sp', net.sp), ('conv', net.conv), ('fc', net.fc)):
        assert torch.all(m.weight[~masks[n]] == 0), n
    assert kept_changed  # training still updates the kept weights
    # save / load round trip keeps the zeros and the masks read back from them
    state = net.state_dict()
    net2 = TinyNet()
    net2.load_state_dict(state)
    back = MaskSet.from_weights(net2, masks.keys())
    for n in masks:
        assert torch.equal(back.masks[n], masks[n] & (dict(net.named_modules())[n].weight != 0))
    ms.detach()


def test_mask_shape_and_name_errors():
    net = TinyNet()
    with pytest.raises(KeyError, match='does not have'):
        MaskSet(net, {'nope': torch.ones(2)})
    with pytest.raises(ValueError, match='shape'):
        MaskSet(net, {'fc': torch.ones(3, 3)})


def test_masks_survive_the_steps_of_every_mmengine_optim_wrapper():
    """OptimWrapper, AmpOptimWrapper's kind (any OptimWrapper) and OptimWrapperDict: each
    optimizer stepped re-applies the masks (an OptimWrapperDict once silently got none); an
    unknown wrapper is an error."""
    from mmengine.optim import OptimWrapper, OptimWrapperDict

    from dm3d_mm.weight.masks import optimizers_of
    torch.manual_seed(0)
    net = TinyNet()
    x = _input()
    first = OptimWrapper(torch.optim.SGD([net.sp.weight, net.conv.weight], 1e-2, momentum=0.9,
                                         weight_decay=0.1))
    second = OptimWrapper(torch.optim.AdamW([net.fc.weight], 1e-2, weight_decay=0.1))
    wrappers = OptimWrapperDict(a=first, b=second)
    for w in (first, second):  # dense steps: momentum and moments for every weight
        net(x).pow(2).sum().backward()
        w.step()
        w.zero_grad()
    g = torch.Generator().manual_seed(1)
    masks = {n: torch.rand(m.weight.shape, generator=g) > 0.5
             for n, m in (('sp', net.sp), ('conv', net.conv), ('fc', net.fc))}
    assert len(optimizers_of(wrappers)) == 2 and optimizers_of(first) == [first.optimizer]
    ms = MaskSet(net, masks).attach(optimizers_of(wrappers))
    for _ in range(20):
        net(x).pow(2).sum().backward()
        for w in (first, second):
            w.step()
        for w in (first, second):
            w.zero_grad()
    for n, m in (('sp', net.sp), ('conv', net.conv), ('fc', net.fc)):
        assert torch.all(m.weight[~masks[n]] == 0), n
    ms.detach()
    with pytest.raises(TypeError, match='masks cannot be kept'):
        optimizers_of(object())


def test_gradient_rows_equal_the_closed_form_jacobian_of_a_linear_model():
    """The calibration pass's gradient rows on a model whose outputs are linear in its
    weights: h = A x, p_b = C h, p_c = B h. For the Rademacher vectors u_b, u_c the pass draws
    (reproduced from its generator), a Hutchinson row of A is
    sqrt(lb) C^T u_b x^T + sqrt(lc) B^T u_c x^T, of B sqrt(lc) u_c h^T, of C sqrt(lb) u_b h^T;
    the 'sum' rows replace u by lambda times ones. Both exact, per frame and projection."""
    from torch import nn

    from dm3d_mm.weight.calibration import calibration_pass

    torch.manual_seed(0)

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(5, 4, bias=False)
            self.b = nn.Linear(4, 3, bias=False)
            self.c = nn.Linear(4, 6, bias=False)

    model = Tiny()
    xs = [torch.randn(5) for _ in range(3)]
    batches = [dict(x=x, data_samples=[None]) for x in xs]

    def outputs(m, batch):
        h = m.a(batch['x'])
        return m.c(h), m.b(h)

    layers = dict(a=model.a, b=model.b, c=model.c)
    lb, lc = 0.25, 4.0
    A, B, C = (m.weight.detach() for m in (model.a, model.b, model.c))
    reps, seed = 3, 7
    calib = calibration_pass(model, layers, batches, outputs, (lb, lc), 'hutchinson', reps,
                             seed, progress=False, count=False)
    for i, x in enumerate(xs):
        h = A @ x
        gen = torch.Generator().manual_seed(seed * 1_000_003 + i)
        for r in range(reps):
            ub = torch.randint(0, 2, (6,), generator=gen).float() * 2 - 1
            uc = torch.randint(0, 2, (3,), generator=gen).float() * 2 - 1
            want = dict(a=torch.outer(lb ** 0.5 * C.T @ ub + lc ** 0.5 * B.T @ uc, x),
                        b=torch.outer(lc ** 0.5 * uc, h), c=torch.outer(lb ** 0.5 * ub, h))
            for n, w in want.items():
                torch.testing.assert_close(calib.grads[n][i * reps + r], w.reshape(-1),
                                           rtol=1e-5, atol=1e-6)
    summed = calibration_pass(model, layers, batches, outputs, (lb, lc), 'sum', 1, seed,
                              progress=False, count=False)
    for i, x in enumerate(xs):
        h = A @ x
        want = dict(a=torch.outer(lb * C.T @ torch.ones(6) + lc * B.T @ torch.ones(3), x),
                    b=torch.outer(lc * torch.ones(3), h), c=torch.outer(lb * torch.ones(6), h))
        for n, w in want.items():
            torch.testing.assert_close(summed.grads[n][i], w.reshape(-1), rtol=1e-5, atol=1e-6)


def test_dp_allocator_meets_the_exact_budget_when_exact_costs_exceed_the_item_sums():
    """Measured latency tables need not be monotone, so the exact cost of the DP's masks may
    exceed the summed item costs: the allocator must then lower the DP's budget until the
    exact cost fits, not hand back the DP's over-budget choice."""
    from torch import nn

    from dm3d_mm.weight.allocators import DPAllocator, WeightProblem
    costs = [[10.0, 6.0, 2.0], [10.0, 6.0, 2.0]]
    dists = [[0.0, 1.0, 5.0], [0.0, 1.0, 5.0]]

    def masks_of(choice):
        return {'a': torch.tensor(choice[0]), 'b': torch.tensor(choice[1])}

    def total(masks):  # +3 whenever both layers are pruned (the item sums miss it)
        ka, kb = (0, 0) if masks is None else (int(masks['a']), int(masks['b']))
        return costs[0][ka] + costs[1][kb] + (3.0 if ka and kb else 0.0)

    problem = WeightProblem(dict(a=nn.Linear(1, 1), b=nn.Linear(1, 1)), total, 0.0, 12.0,
                            [['a'], ['b']], costs, dists, [[True] * 3, [True] * 3], masks_of,
                            exact_differs=True)
    masks, choice = DPAllocator().allocate(problem)
    assert total(masks) <= 12.0  # the item sums' optimum (1, 1) costs 15 exactly
    # the DP's optimum at the largest budget whose masks fit exactly: one layer at 6, the
    # other at 2 (exact cost 11, distortion 6)
    assert sorted(choice) == [1, 2]
