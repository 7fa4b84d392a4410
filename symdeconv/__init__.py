"""symdeconv — exact "deconvolution" layers: derive, prove, generate and verify.

Transposed, strided and dilated convolutions are compositions of upsampling ↑k, downsampling ↓k and
convolution.  symdeconv represents them as symbolic operators (SymPy), decides identities between
operator chains for every input length through a polyphase normal form, and (in later layers)
generates and verifies Numba kernels from that form.

>>> import symdeconv as sd
>>> q = sd.taps("q", 3)
>>> A = sd.conv(q) @ sd.hold(2)
>>> B = sd.conv(sd.convolve((1, 1), q)) @ sd.up(2)
>>> bool(sd.equivalent(A, B))
True
"""

from . import testing
from .algebra import (
    Operator, as_taps, channel_conv, conv, convolve, dilate, dilated_conv, down, hold, identity, linear_interp,
    periodic, pixel_shuffle, pixel_unshuffle, reverse, shift, strided_conv, taps, transposed_conv, up, upfirdn,
    xcorr,
)
from .canonical import (
    IDENTITIES as identities,
    CheckerboardReport, Counterexample, Equivalence, Identity, NormalForm, Proof, bilinear_kernel, canonical,
    checkerboard, equivalent, matrices_agree,
)
from .algebra import shapes
from .algebra.convert import Conversion, WeightTransform, convert
from .algebra.layers import Conv, ConvTranspose, Layer, output_padding_for
from .plot import Plot, plot_checkerboard, plot_matrix, plot_taps  # matplotlib loads lazily, when a plot is drawn
from .codegen import compile, emit, empty_output_pool  # noqa: A004 - sd.compile is the public name; Numba loads lazily
from . import signal  # scipy.signal.upfirdn / resample_poly on generated kernels (sd.upfirdn is the operator)
# sd.torch.ConvTranspose2d(64, 32, 3, ...) / sd.keras.Conv2DTranspose(...): the frameworks' own argument orders;
# neither module imports its framework (sd.from_torch / sd.from_keras import it when called)
from . import keras, torch
from .keras import from_keras
from .torch import from_torch
from .errors import SymdeconvError

__version__ = "0.1.0"

__all__ = [
    "SymdeconvError", "Operator", "up", "down", "hold", "shift", "identity", "conv", "channel_conv",
    "pixel_shuffle", "pixel_unshuffle", "periodic", "taps", "convolve", "dilate", "reverse", "as_taps",
    "strided_conv", "dilated_conv", "transposed_conv", "xcorr", "upfirdn", "linear_interp",
    "canonical", "NormalForm", "equivalent", "Equivalence", "Counterexample", "matrices_agree",
    "identities", "Identity", "Proof", "bilinear_kernel", "checkerboard", "CheckerboardReport", "testing",
    "Conv", "ConvTranspose", "Layer", "output_padding_for", "shapes", "convert", "Conversion", "WeightTransform",
    "emit", "empty_output_pool", "signal", "from_torch", "from_keras", "Plot", "plot_checkerboard", "plot_taps", "plot_matrix",
]
# not in __all__: compile (``from symdeconv import *`` would shadow the builtin; use sd.compile), and the
# modules torch and keras (they would shadow the real frameworks; use sd.torch, sd.keras)
