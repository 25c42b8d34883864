"""Encoder stage outputs shared across counted forwards (``spatial/stage_memo.py``): a
forward that resumes from kept stages counts and computes exactly what a full forward does,
on the shipped Ada3D and SPSS detectors, and the memo never serves a forward it cannot."""
import pytest
import torch
from test_joint import ADA3D, SPSS, _model

import dm3d_mm  # noqa: F401


def _records(counter):
    layers = {n: (st.pairs.tolist(), st.calls, st.sites_in, st.sites_out, st.bias_flops,
                  st.spatial_saving, st.binary) for n, st in counter.layers.items()}
    return layers, {n: st.flops for n, st in counter.aux.items()}


def _counted(model, batches, ref, outputs, sites, ratios, memo=None):
    from dm3d_mm.joint.search import shared_stages
    from dm3d_mm.joint.sites import ratios_in_force
    from dm3d_mm.weight.calibration import counted_distortion
    with ratios_in_force(sites, ratios), shared_stages(sites, memo):
        counter, distortion = counted_distortion(model, batches, ref, outputs)
    return _records(counter), distortion


@pytest.mark.parametrize('names', [ADA3D, SPSS], ids=['ada3d', 'spss'])
def test_resumed_forwards_count_and_compute_what_full_forwards_do(names, synth_root):
    from dm3d_mm.joint.sites import find_sites
    from dm3d_mm.pruning.calib_frames import calibration_batches
    from dm3d_mm.spatial.stage_memo import StageMemo
    from dm3d_mm.weight.calibration import reference_outputs
    from dm3d_mm.weight.head_outputs import build_head_outputs
    cfg, _, model = _model(names, synth_root)
    model.eval()
    batches = calibration_batches(cfg, 2, 'train')
    outputs = build_head_outputs(model)
    ref = reference_outputs(model, batches, outputs)
    sites = find_sites(model)
    first, last = sites[0].name, sites[-1].name
    trained = {s.name: s.get() for s in sites}
    # the last site moved (every stage before it kept), the first moved (little kept), back
    combos = [trained, dict(trained, **{last: 1.0}), dict(trained, **{last: 0.25}),
              dict(trained, **{first: 1.0}), dict(trained, **{first: 1.0, last: 1.0}),
              trained]
    memo = StageMemo()
    resumed = []
    for ratios in combos:
        full = _counted(model, batches, ref, outputs, sites, ratios)
        shared = _counted(model, batches, ref, outputs, sites, ratios, memo)
        assert shared == full, ratios
        resumed.append(memo.resumed)
    assert resumed[0] == 0 and resumed[1] > 0 and resumed[-1] > resumed[-2]
    # the calibration pass differentiates through the encoder: it runs every stage (a
    # resumed prefix has no graph), and its gradient rows and count are a plain pass's
    from dm3d_mm.joint.search import shared_stages
    from dm3d_mm.weight.calibration import calibration_pass
    from dm3d_mm.weight.discovery import find_prunable_layers
    layers = find_prunable_layers(model, parts=['middle_encoder'])
    before = memo.resumed
    with shared_stages(sites, memo):
        kept = calibration_pass(model, layers, batches, outputs, progress=False)
    plain = calibration_pass(model, layers, batches, outputs, progress=False)
    assert memo.resumed == before
    assert _records(kept.counter) == _records(plain.counter)
    assert all(torch.equal(kept.grads[n], plain.grads[n]) for n in layers)
    # weights changed in place (as masks change them) are part of the key: nothing stale
    conv = next(m for m in model.middle_encoder.encoder_layers[0].modules()
                if getattr(m, 'weight', None) is not None and m.weight.dim() == 5)
    conv.weight.data[..., 0] = 0
    assert _counted(model, batches, ref, outputs, sites, trained, memo) == \
        _counted(model, batches, ref, outputs, sites, trained)
    assert memo.resumed == before


def test_the_memo_serves_only_counted_eval_forwards(synth_root):
    from dm3d_mm.cost import FlopsCounter
    from dm3d_mm.joint.sites import find_sites
    from dm3d_mm.spatial.stage_memo import StageMemo
    _, _, model = _model(ADA3D, synth_root)
    enc = model.middle_encoder
    x = [torch.zeros(3, 4), torch.zeros(3, 4, dtype=torch.int32)]
    memo = StageMemo()
    model.eval()
    assert memo.begin(enc, x, 1, 4) is None  # nothing counting
    with FlopsCounter(model):
        assert memo.begin(enc, x, 1, 4) is not None
        model.train()
        assert memo.begin(enc, x, 1, 4) is None
    assert FlopsCounter.active() == []
    assert find_sites(model)[0].module.stage_memo is None
