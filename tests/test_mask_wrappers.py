"""Masks stay exact under every way mmengine steps an optimizer: gradient accumulation,
several optimizers (OptimWrapperDict), mixed precision (CUDA), and an EMA copy of the model
(EMAHook) that the fine-tune validates and saves."""
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import nn

import dm3d_mm  # noqa: F401
from dm3d_mm.weight.masks import MaskSet, optimizers_of


class TinyNet(BaseModel):
    """Two convs and a linear head, a regression loss (mmengine's BaseModel protocol)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs) if isinstance(inputs, (list, tuple)) else inputs
        y = self.fc(self.conv2(torch.relu(self.conv1(x))).mean((2, 3)))
        if mode == 'loss':
            target = torch.stack(data_samples) if isinstance(data_samples, (list, tuple)) \
                else data_samples
            return dict(loss=((y.squeeze(1) - target) ** 2).mean())
        return [y]


def _masks(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(getattr(model, n).weight.shape, generator=g) > 0.5
            for n in ('conv1', 'conv2', 'fc')}


def _batch(i):
    g = torch.Generator().manual_seed(i)
    return torch.randn(4, 3, 6, 6, generator=g), torch.randn(4, generator=g)


def _check(model, masks, before):
    for n, m in masks.items():
        w = getattr(model, n).weight.detach().cpu()
        assert torch.all(w[~m] == 0), n  # pruned: exactly zero
        assert not torch.equal(w[m], before[n][m]), n  # kept: trained


def _train(model, wrapper, masks, steps, device='cpu'):
    before = {n: getattr(model, n).weight.detach().cpu().clone() for n in masks}
    MaskSet(model, {n: m.to(device) for n, m in masks.items()}).attach(optimizers_of(wrapper))
    for i in range(steps):
        x, t = (v.to(device) for v in _batch(i))
        loss = model(x, t, mode='loss')['loss']
        wrapper.update_params(loss)
    return before


def test_masks_survive_gradient_accumulation():
    torch.manual_seed(0)
    model = TinyNet()
    masks = _masks(model)
    wrapper = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.1),
                           accumulative_counts=3)
    _check(model, masks, _train(model, wrapper, masks, 7))


def test_masks_survive_an_optim_wrapper_dict():
    torch.manual_seed(0)
    model = TinyNet()
    masks = _masks(model)
    convs = [*model.conv1.parameters(), *model.conv2.parameters()]
    wrapper = OptimWrapperDict(
        convs=OptimWrapper(torch.optim.SGD(convs, lr=0.1, momentum=0.9, weight_decay=0.1)),
        head=OptimWrapper(torch.optim.AdamW(model.fc.parameters(), lr=0.05,
                                            weight_decay=0.1)))
    assert len(optimizers_of(wrapper)) == 2
    before = {n: getattr(model, n).weight.detach().clone() for n in masks}
    MaskSet(model, masks).attach(optimizers_of(wrapper))
    for i in range(6):
        x, t = _batch(i)
        loss = model(x, t, mode='loss')['loss']
        loss.backward()
        for w in wrapper.values():  # an OptimWrapperDict steps each optimizer on its own
            w.step()
            w.zero_grad()
    _check(model, masks, before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='AmpOptimWrapper needs CUDA')
def test_masks_survive_mixed_precision():
    from mmengine.optim import AmpOptimWrapper
    torch.manual_seed(0)
    model = TinyNet().cuda()
    masks = _masks(model)
    wrapper = AmpOptimWrapper(optimizer=torch.optim.AdamW(model.parameters(), lr=0.05,
                                                          weight_decay=0.1))
    before = {n: getattr(model, n).weight.detach().cpu().clone() for n in masks}
    MaskSet(model, {n: m.cuda() for n, m in masks.items()}).attach(optimizers_of(wrapper))
    for i in range(6):
        x, t = (v.cuda() for v in _batch(i))
        with wrapper.optim_context(model):
            loss = model(x, t, mode='loss')['loss']
        wrapper.update_params(loss)
    _check(model, masks, before)


def test_an_ema_copy_keeps_the_masks_through_a_fine_tune(tmp_path):
    """A fine-tune from a checkpoint whose meta holds masks its weights do not show yet (the
    EMA copy starts from those dense weights): the EMA model, which the runner validates and
    saves, holds exact zeros at every pruned weight, as the model does."""
    from mmengine.runner import Runner
    from mmengine.runner.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = TinyNet()
    masks = _masks(model)
    ckpt = str(tmp_path / 'masked.pth')
    save_checkpoint(dict(state_dict=model.state_dict(), meta=dict(dm3d=dict(masks=masks))),
                    ckpt)
    data = [dict(inputs=_batch(i)[0][0], data_samples=_batch(i)[1][0]) for i in range(8)]
    runner = Runner(
        model=model, work_dir=str(tmp_path / 'work'), load_from=ckpt,
        train_dataloader=dict(dataset=data, batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.05, weight_decay=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        custom_hooks=[dict(type='EMAHook', momentum=0.5),
                      dict(type='DM3DPruningHook', prune_on_start=False, flops_frames=0)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2)),
        default_scope='mmdet3d')
    runner.train()
    ema = next(h for h in runner.hooks if type(h).__name__ == 'EMAHook').ema_model.module
    for net in (runner.model, ema):
        for n, m in masks.items():
            assert torch.all(getattr(net, n).weight.detach()[~m] == 0), n
    saved = torch.load(str(tmp_path / 'work' / 'epoch_2.pth'), weights_only=False)
    for key in ('state_dict', 'ema_state_dict'):
        for n, m in masks.items():
            w = saved[key][f'{n}.weight'] if key == 'state_dict' else \
                saved[key][f'module.{n}.weight']
            assert torch.all(w[~m] == 0), (key, n)
