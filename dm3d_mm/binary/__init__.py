"""BiPointNet-style binarised point encoders (sign weights and activations with a
straight-through estimator, Entropy-Maximising Aggregation, Layer-wise Scale Recovery) and
bit-packed storage of binary weights."""
from .ema import EMAMaxPool, ema_shift
from .layers import BinaryLinear, sign_ste
from .pack import (
                   pack_signs,
                   packed_state_dict,
                   save_packed_checkpoint,
                   unpack_signs,
                   unpacked_state_dict,
)
from .pfn import BinaryPFNLayer, BinaryPillarFeatureNet
from .vfe import BinaryHardVFE, BinaryVFELayer

__all__ = ['BinaryLinear', 'sign_ste', 'EMAMaxPool', 'ema_shift', 'BinaryPFNLayer',
           'BinaryPillarFeatureNet', 'BinaryVFELayer', 'BinaryHardVFE', 'pack_signs',
           'unpack_signs', 'packed_state_dict', 'unpacked_state_dict',
           'save_packed_checkpoint']
