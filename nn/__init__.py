"""DNNs through approximate multipliers: quantisation, approximate layers, module swap.

>>> from torch import nn
>>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
>>> approx = approximate(model, "exact")          # every layer: 8-bit quantised, exact products
>>> type(approx[0]).__name__
'ApproxLinear'
"""

from .config import AssignmentMapping, LayerConfig
from .layers import ApproxConv1d, ApproxConv2d, ApproxConvTranspose2d, ApproxLinear, ApproxModule
from .multipliers import ResolvedConfig, clear_caches, exact_lut, load_multiplier, prepared_lut, resolve_config
from .products import ApproxProduct
from .quant import (
    ActivationQuantizer,
    HistogramObserver,
    WeightQuantizer,
    calibrate,
    calibration,
    dequantize,
    fake_quantize,
    qparams_from_range,
    qrange,
    quantize,
    weight_qparams,
)
from .rnn import ApproxGRU, ApproxGRUCell, ApproxLSTM, ApproxLSTMCell, ApproxRNN, ApproxRNNCell
from .swap import approx_layers, approximable_layers, approximate, default_mapping, layer_macs, to_float

__all__ = [
    "ActivationQuantizer",
    "ApproxConv1d",
    "ApproxConv2d",
    "ApproxConvTranspose2d",
    "ApproxGRU",
    "ApproxGRUCell",
    "ApproxLSTM",
    "ApproxLSTMCell",
    "ApproxLinear",
    "ApproxModule",
    "ApproxProduct",
    "ApproxRNN",
    "ApproxRNNCell",
    "AssignmentMapping",
    "HistogramObserver",
    "LayerConfig",
    "ResolvedConfig",
    "WeightQuantizer",
    "approx_layers",
    "approximable_layers",
    "approximate",
    "calibrate",
    "calibration",
    "clear_caches",
    "default_mapping",
    "dequantize",
    "exact_lut",
    "fake_quantize",
    "layer_macs",
    "load_multiplier",
    "prepared_lut",
    "qparams_from_range",
    "qrange",
    "quantize",
    "resolve_config",
    "to_float",
    "weight_qparams",
]
