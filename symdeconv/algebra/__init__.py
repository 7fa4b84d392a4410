"""Layer 1: symbolic operators on N-D multi-channel sequences (SymPy only) and their finite matrices."""

from .arrays import as_taps, convolve, dilate, reverse, taps
from .constructions import dilated_conv, linear_interp, strided_conv, transposed_conv, upfirdn, xcorr
from .operators import (
    Compose, Conv, Down, Hold, Operator, Periodic, PixelShuffle, PixelUnshuffle, Primitive, Scale, Shift, Sum, Up,
    as_operator, channel_conv, conv, down, hold, identity, periodic, pixel_shuffle, pixel_unshuffle, shift, up,
)

__all__ = [
    "Operator", "Primitive", "Up", "Down", "Hold", "Shift", "Conv", "PixelShuffle", "PixelUnshuffle", "Periodic",
    "Compose", "Sum", "Scale", "up", "down", "hold", "shift", "identity", "conv", "channel_conv", "pixel_shuffle",
    "pixel_unshuffle", "periodic", "as_operator", "taps", "convolve", "dilate", "reverse", "as_taps",
    "strided_conv", "dilated_conv", "transposed_conv", "xcorr", "upfirdn", "linear_interp",
]
