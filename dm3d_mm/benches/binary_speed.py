"""Can a binarised PFN layer run faster than the float one on this CPU? A bit-packed
XNOR-popcount product (signs packed 8 per byte, XOR, popcount by a 256-entry table, all in
torch) against the float GEMM (oneDNN/MKL) of the same shape, side by side; also checks that
both give the same +-1 product.

Example: python tools/bench.py binary_speed --rows 60000 --in-features 32 --out-features 32
"""

import numpy as np
import torch

from ..cost.latency_cost import best_seconds
from ..registry import BENCHES
from .base import Bench

POPCOUNT = torch.tensor([bin(i).count('1') for i in range(256)], dtype=torch.int32)


def pack_rows(signs: torch.Tensor) -> torch.Tensor:
    """(R, C) +-1 -> (R, ceil(C / 8)) uint8, 1 = +1."""
    return torch.from_numpy(np.packbits((signs >= 0).numpy(), axis=1))


def xnor_popcount_linear(xp: torch.Tensor, wp: torch.Tensor, in_features: int,
                         chunk: int = 4096) -> torch.Tensor:
    """sign(x) . sign(W)^T from packed rows: in_features - 2 * popcount(x XOR w)."""
    out = torch.empty(xp.shape[0], wp.shape[0], dtype=torch.float32)
    for s in range(0, xp.shape[0], chunk):
        diff = torch.bitwise_xor(xp[s:s + chunk, None, :], wp[None])  # (r, out, bytes)
        ones = POPCOUNT[diff.long()].sum(-1)
        out[s:s + chunk] = (in_features - 2 * ones).float()
    return out


def best_of(fn, repeats):
    """The best of ``repeats`` wall times of ``fn`` on the CPU (seconds)."""
    return best_seconds(fn, repeats, torch.device('cpu'))


@BENCHES.register_module(name='binary_speed')
class BinarySpeedBench(Bench):
    """A bit-packed XNOR-popcount PFN layer against the float one on this CPU."""

    def add_arguments(self, p) -> None:
        p.add_argument('--rows', type=int, default=60000, help='points (pillars x points each)')
        p.add_argument('--in-features', type=int, default=32)
        p.add_argument('--out-features', type=int, default=32)
        p.add_argument('--repeats', type=int, default=5)

    def run(self, args) -> None:
        torch.manual_seed(0)
        x = torch.randn(args.rows, args.in_features)
        w = torch.randn(args.out_features, args.in_features)
        xs, ws = torch.sign(x), torch.sign(w)
        xs[xs == 0], ws[ws == 0] = 1, 1
        xp, wp = pack_rows(xs), pack_rows(ws)
        ref = xs @ ws.T
        assert torch.equal(xnor_popcount_linear(xp, wp, args.in_features), ref)
        t_float = best_of(lambda: x @ w.T, args.repeats)
        t_sign_float = best_of(lambda: xs @ ws.T, args.repeats)
        t_pack = best_of(lambda: pack_rows(xs), args.repeats)
        t_xnor = best_of(lambda: xnor_popcount_linear(xp, wp, args.in_features), args.repeats)
        print(f'torch threads {torch.get_num_threads()}, rows {args.rows}, '
              f'{args.in_features} -> {args.out_features}')
        print('| product | ms | / float GEMM |\n|---|---:|---:|')
        for name, t in (('float GEMM (x W^T)', t_float), ('signs as floats, GEMM', t_sign_float),
                        ('XNOR-popcount on packed signs (torch)', t_xnor),
                        ('packing the activations (numpy packbits)', t_pack)):
            print(f'| {name} | {t * 1e3:.2f} | {t / t_float:.2f} |')
        print(f'weight storage: {w.numel() * 4} B float32 -> {wp.numel()} B packed '
              f'({w.numel() * 4 / wp.numel():.0f}x)')
