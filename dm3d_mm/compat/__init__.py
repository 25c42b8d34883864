"""Small fixes that make the dependency stack usable as pinned (CPU torch, current numpy)."""
from .numpy_aliases import patch_numpy_aliases
from .spconv_cpu import patch_spconv_cpu_backward


def apply_all():
    """Apply every compatibility fix (each is idempotent and a no-op when not needed)."""
    patch_numpy_aliases()
    patch_spconv_cpu_backward()


__all__ = ['apply_all', 'patch_numpy_aliases', 'patch_spconv_cpu_backward']
