"""Sparse-tensor backends of the spatial modules: spconv (required), torchsparse (optional)."""
from ..errors import UserError

BACKENDS = ('spconv', 'torchsparse')


def require_backend(name: str) -> None:
    """Fail early and clearly when a spatial module is configured for a backend we lack."""
    if name == 'spconv':
        return
    if name == 'torchsparse':
        try:
            import torchsparse  # noqa: F401
        except ImportError:
            raise ImportError(
                "backend='torchsparse' needs the optional torchsparse package, which is not on "
                'the package index (build it from github.com/mit-han-lab/torchsparse). The '
                "spconv backend works on CPU and GPU: use backend='spconv'.") from None
        raise NotImplementedError(
            'torchsparse is installed, but the dm3d_mm spatial modules run on spconv tensors '
            "(the mmdet3d 1.x default); use backend='spconv'.")
    raise UserError(f'unknown sparse backend {name!r}; choose one of {BACKENDS}')
