"""``scipy.signal.upfirdn`` and ``scipy.signal.resample_poly`` on symdeconv's generated kernels.

>>> import numpy as np, symdeconv as sd
>>> sd.signal.upfirdn([0.5, 1.0, 0.5], np.arange(10.0), 2, 3)      # doctest: +SKIP
array([0. , 1. , 2.5, 4. , 5.5, 7. , 8.5])

Same signatures, output lengths, dtypes and values as SciPy's (to rounding: the kernels sum in another
order; the chain kernels of short filters accumulate float32 input in float64, the runtime that takes
longer ones in the data's dtype, as SciPy does).  SciPy is not needed to run them; ``resample_poly``
needs it only to design its filter from a window name (pass the FIR coefficients as ``window``
otherwise).

**Not the operator** ``sd.upfirdn(h, up, down)``.  That one builds the symbolic operator
``↓down (h ∗ ↑up x)`` for the algebra (normal forms, identities, exact matrices); this module computes
numbers, with SciPy's output window.

The window convention of operator chains, and SciPy's
---------------------------------------------------
An operator chain compiled with ``sd.compile`` returns its *natural output window*: every output
position that can be non-zero for an input of ``n`` samples at positions ``0 … n − 1``.  Each primitive
maps an input window ``[lo, hi)`` to an output window (``Operator.out_box``):

- ``up(L)``: ``[L·lo, L·hi)`` — the window ends with the ``L − 1`` zeros inserted after the last sample;
- ``conv(h)`` with ``K`` taps: ``[lo, hi + K − 1)``;
- ``down(M)``: ``[⌈lo / M⌉, ⌈hi / M⌉)``.

So ``down(M) @ conv(h) @ up(L)`` has the natural window ``[0, ⌈(n·L + K − 1) / M⌉)``.  SciPy's
``upfirdn`` returns ``[0, ((n − 1)·L + K − 1) // M + 1) = [0, ⌈((n − 1)·L + K) / M⌉)``: it upsamples
to ``(n − 1)·L + 1`` samples, without the trailing inserted zeros.  Both windows start at output
position 0 (offset 0), and SciPy's is a prefix of the natural one, shorter by
``⌈(n·L + K − 1) / M⌉ − ⌈((n − 1)·L + K) / M⌉`` samples (between 0 and ``⌈(L − 1) / M⌉``), each of
which reads only inserted zeros and is 0.  Example: ↑3 ↓2 with 33 taps on 10⁶ samples — the chain gives
1 500 016 samples, SciPy 1 500 015, the last chain sample being 0.

Here the generated kernel's entry point ``run(x, y, c, lo)`` (documented in every generated chain
module: it writes ``y[..., t]`` = the operator's output at position ``lo + t``, for any ``lo`` and any
length of ``y``, zeros outside the natural window) computes SciPy's window directly: nothing is cut or
copied afterwards.  ``resample_poly`` keeps the outputs ``R … R + n_out − 1`` of SciPy's ``upfirdn``
with a zero-padded filter; the kernel computes exactly those (``lo = R``).  Signal extension modes
(``mode=`` other than zeros with ``cval=0``; ``padtype='line'`` etc.) extend ``x`` explicitly by as many
samples as those outputs read: ``a`` on the left, ``a`` a multiple of ``M``, so that prepending them
moves every output by the whole number ``a·L / M`` of positions (``lo = R + a·L / M``).

How the kernels are chosen
--------------------------
``up`` and ``down`` are first divided by their gcd ``g`` (noble identity: ``↓gM (h ∗ ↑gL x) =
↓M (h[::g] ∗ ↑L x)``, the same window length too).  The filter is zero-padded to ``L·T`` taps, ``T``
being its taps per phase rounded up (exact up to 8, then to a grid at most 25 % coarser: 10, 12, 14,
16, 20, 24, …), so that filters of nearby lengths share one kernel.  One kernel per ``(L, M, T)`` is
compiled with symbolic taps, ``sd.compile(sd.upfirdn(sd.taps("h", L·T), L, M))``, kept for the
process (and by Numba's disk cache for the next) — at the structure's third kernel call per real dtype
(float32 or float64; a complex filter makes two kernel calls per call): the first two run on the
once-compiled runtime described below (``rt_driver.RUNTIME_CALLS``); the numeric taps are passed at call
time, so a new filter of the same structure compiles nothing (the padding costs at most 25 % more multiply-adds).
Numba compiles each kernel once per dtype, float32 and float64, the first time on a machine; the
kernels unroll every tap, so this grows with the filter (1–3 s for a few to 64 taps, 6 s at 144, about a
minute at 480).  Filters of more than ``RUNTIME_MIN_TAPS`` (48) taps, counted after ``up`` and ``down``
are divided by their gcd and the taps per phase rounded to the grid, therefore run on the once-compiled layer
runtime instead (``_RuntimeKernel``: the same normal form as a one-channel layer plan, nothing compiled
per filter), so a 44.1 ↔ 48 kHz resampler (160/147, a 3 201-tap filter) gives its first result in under
a second once the runtime is in Numba's cache.  Complex data runs the real kernels on the real and
imaginary parts: complex ``x`` as one call over its real rows stacked on its imaginary rows, complex
``h`` as one call per part (both complex: two calls over the stacked rows, combined as
``hr∗xr − hi∗xi + i·(hr∗xi + hi∗xr)``).  Any axis and any memory layout: the axis is moved last and
the other axes become the rows of one batched kernel call.  Calls below ``SERIAL_WORK``
multiply-adds run on one thread.
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
import threading
from typing import Any

import numpy as np

from .algebra import taps as _taps
from .algebra import upfirdn as _upfirdn_operator
from .codegen._alloc import output_empty
from .codegen import compile as _compile
from .errors import SymdeconvError, in_context

__all__ = ["upfirdn", "resample_poly"]

#: SciPy's signal extension modes of ``upfirdn`` (its ``_upfirdn_modes``)
MODES = ("constant", "wrap", "edge", "smooth", "symmetric", "reflect", "antisymmetric", "antireflect", "line")
#: the modes whose extension needs at least two samples (SciPy divides by, or takes the modulus of, n − 1)
_MODES_TWO_SAMPLES = ("smooth", "reflect", "antireflect", "line")
#: ``resample_poly``'s padtypes that subtract a background, resample, and add it back
_BACKGROUNDS = {"mean": np.mean, "median": np.median, "maximum": np.max, "minimum": np.min}
#: kernel calls with fewer multiply-adds than this run on one thread (see ``_Kernel.__call__``)
SERIAL_WORK = 1 << 17
_DTYPES = tuple(np.dtype(t) for t in (np.float32, np.float64, np.complex64, np.complex128))

_F32, _F64, _C64 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.complex64)
_kernels: dict[tuple[int, int, int], "_Kernel"] = {}
_lock = threading.Lock()


# ==================================================================================================
# Public functions
# ==================================================================================================


def upfirdn(h: Any, x: Any, up: int = 1, down: int = 1, axis: int = -1, mode: str = "constant",
            cval: Any = 0) -> np.ndarray:
    """Upsample by ``up``, filter with the FIR ``h``, downsample by ``down``: ``scipy.signal.upfirdn``.

    ``y[k] = Σ_j h[j] · u[k·down − j]`` with ``u`` the input with ``up − 1`` zeros inserted after each
    sample, for ``k = 0 … ((n − 1)·up + len(h) − 1) // down`` (SciPy's output length; ``n`` =
    ``x.shape[axis]``).  ``mode`` / ``cval``: SciPy's signal extension beyond both ends of ``x``
    (``'constant'`` with ``cval``, ``'edge'``, ``'line'``, ``'smooth'``, ``'wrap'``, ``'symmetric'``,
    ``'reflect'``, ``'antisymmetric'``, ``'antireflect'``).  The output dtype is SciPy's:
    ``np.result_type(h.dtype, x.dtype, np.float32)``, which must be float32, float64, complex64 or
    complex128.

    This computes numbers; ``sd.upfirdn(h, up, down)`` (no ``x``) is the symbolic *operator*
    ``↓down (h ∗ ↑up x)``, whose natural output window is longer than SciPy's by the trailing samples
    that read only inserted zeros (see this module's docstring).

    Differences from SciPy: bad input raises :class:`symdeconv.SymdeconvError` (a ``ValueError``) naming
    the parameter; an empty ``x`` along ``axis`` is refused (SciPy returns zeros), as are the modes
    ``'smooth'``, ``'reflect'``, ``'antireflect'`` and ``'line'`` on a single sample (SciPy reads out of
    bounds, crashes or returns NaN).  For an ``axis`` other than the last, the result is a view with
    that axis moved back into place (SciPy's is C-contiguous); its values are the same.
    """
    try:  # (not ``with context(…)``: no generator on this hot path)
        up, down = _factor(up, "up"), _factor(down, "down")
        h = _array(h, "h")
        if h.ndim != 1 or h.size == 0:
            raise SymdeconvError(f"h must be a 1-D array with at least one tap, got shape {h.shape}")
        x = _array(x, "x")
        axis = _axis(axis, x)
        out_dtype = _out_dtype(h, x)
        mode, cval = _mode(mode), _cval(cval, out_dtype)
        count = ((x.shape[axis] - 1) * up + h.size - 1) // down + 1
        return _apply(h, x, up, down, axis, mode, cval, 0, count, out_dtype)
    except SymdeconvError as err:
        raise in_context(err, "symdeconv.signal.upfirdn")


def resample_poly(x: Any, up: int, down: int, axis: int = 0, window: Any = ("kaiser", 5.0),
                  padtype: str = "constant", cval: Any = None) -> np.ndarray:
    """Resample by ``up / down`` with a polyphase low-pass filter: ``scipy.signal.resample_poly``.

    SciPy's defaults, including ``axis=0``.  ``up`` and ``down`` are divided by their gcd; the filter is
    ``window`` itself when it is a list or an array (the FIR coefficients), else SciPy's design
    ``firwin(2·h + 1, 1 / max(up, down), window=window)`` with ``h = 10·max(up, down)`` (this needs SciPy);
    it is scaled by ``up`` and centred, and the ``⌈n·up / down⌉`` outputs aligned with the input are
    returned.  ``padtype``: ``'constant'`` (with ``cval``, default 0) or any other ``upfirdn`` mode, or
    ``'mean'``, ``'median'``, ``'maximum'``, ``'minimum'`` (that statistic of ``x`` along ``axis`` is
    subtracted before filtering and added back after).  ``up == down`` returns a copy of ``x`` (its
    dtype unchanged, as SciPy).  The differences from SciPy are :func:`upfirdn`'s.
    """
    try:
        return _resample_poly(x, up, down, axis, window, padtype, cval)
    except SymdeconvError as err:
        raise in_context(err, "symdeconv.signal.resample_poly")


def _resample_poly(x: Any, up: Any, down: Any, axis: Any, window: Any, padtype: Any, cval: Any) -> np.ndarray:
    up, down = _factor(up, "up"), _factor(down, "down")
    x = _array(x, "x")
    axis = _axis(axis, x)
    if not isinstance(padtype, str) or (padtype not in _BACKGROUNDS and padtype not in MODES):
        raise SymdeconvError(
            f"padtype must be one of {', '.join(list(_BACKGROUNDS) + list(MODES))}; got {padtype!r}"
        )
    if cval is not None and padtype != "constant":
        raise SymdeconvError(f"cval has no effect when padtype is {padtype!r}; leave it None")
    g = math.gcd(up, down)
    up, down = up // g, down // g
    if up == down == 1:
        return x.copy()
    h, half_len = _resampling_filter(window, x, up, down)
    n = x.shape[axis]
    n_out = -(-n * up // down)
    # SciPy prepends n_pre_pad = down − half_len % down zeros to h and keeps the upfirdn outputs from
    # (half_len + n_pre_pad) // down on; the same outputs of the filter padded by only what puts the
    # filter's centre on the output grid ((−half_len) mod down zeros: fewer taps when down | half_len)
    pre = -half_len % down
    h = np.concatenate((np.zeros(pre, dtype=h.dtype), h))
    start = (half_len + pre) // down
    mode, cval = padtype, 0 if cval is None else cval
    background = None
    if padtype in _BACKGROUNDS:
        background = _BACKGROUNDS[padtype](x, axis=axis, keepdims=True)
        x = x - background
        mode, cval = "constant", 0
    out_dtype = _out_dtype(h, x)
    y = _apply(h, x, up, down, axis, mode, _cval(cval, out_dtype), start, n_out, out_dtype)
    if background is not None:
        y += background
    return y


# ==================================================================================================
# The computation
# ==================================================================================================


def _apply(h: np.ndarray, x: np.ndarray, up: int, down: int, axis: int, mode: str, cval: Any,
           start: int, count: int, out_dtype: np.dtype) -> np.ndarray:
    """Outputs ``start … start + count − 1`` of ``↓down (h ∗ ↑up x̃)`` along ``axis`` (``x̃``: ``x``
    extended beyond its ends by ``mode``), in ``out_dtype``.  ``h`` keeps its own dtype: a real ``h`` is
    not made complex (its taps are cast to the kernels' real dtype as SciPy casts them to ``out_dtype``)."""
    last_axis = axis == x.ndim - 1
    xm = x if last_axis else np.moveaxis(x, axis, -1)
    lead, n = xm.shape[:-1], xm.shape[-1]
    if n == 0:
        raise SymdeconvError(f"x must have at least one sample along axis {axis}, got shape {x.shape}")
    if n == 1 and mode in _MODES_TWO_SAMPLES:
        raise SymdeconvError(f"mode {mode!r} needs at least two samples along axis {axis}, got shape {x.shape}")
    rows = math.prod(lead)
    if rows == 0:
        out = np.zeros(lead + (count,), dtype=out_dtype)
        return out if last_axis else np.moveaxis(out, -1, axis)
    g = math.gcd(up, down)
    L, M = up // g, down // g
    if g > 1:
        h = h[::g]
    kernel = _kernel(L, M, _taps_per_phase(-(-h.size // L)))
    real = _F32 if out_dtype == _F32 or out_dtype == _C64 else _F64
    lo = start
    if mode != "constant" or cval != 0:
        # x is read at i = (k·M − j) / L for the outputs k of the window and the taps j < K
        first = -((h.size - 1 - start * M) // L)
        last = ((start + count - 1) * M) // L
        a = -(-max(0, -first) // M) * M  # a multiple of M: the window moves by a·L / M outputs
        b = max(0, last - (n - 1))
        xm = _extend(xm, a, b, mode, cval, out_dtype if (xm.dtype.kind == "c" or cval.imag) else real)
        lo = start + a * L // M
    X = _rows(xm, real)  # (parts · rows, 1, n'), parts = 2 for complex x (real rows, then imaginary rows)
    if h.dtype.kind != "c":
        ys = [kernel(X, h, lo, count)]
    else:
        ys = [kernel(X, h.real, lo, count), kernel(X, h.imag, lo, count)]
    if out_dtype.kind != "c":
        out = ys[0]
    else:
        out = output_empty((rows, count), out_dtype)
        if X.shape[0] == rows:  # real x: the taps' real and imaginary parts
            out.real, out.imag = ys
        elif len(ys) == 1:  # complex x, real h: the rows' real and imaginary parts
            out.real, out.imag = ys[0][:rows], ys[0][rows:]
        else:  # (hr + i·hi) ∗ (xr + i·xi) = hr∗xr − hi∗xi + i·(hr∗xi + hi∗xr)
            np.subtract(ys[0][:rows], ys[1][rows:], out=out.real)
            np.add(ys[0][rows:], ys[1][:rows], out=out.imag)
    out = out.reshape(lead + (count,))
    return out if last_axis else np.moveaxis(out, -1, axis)


class _Kernel:
    """The compiled chain ``↓M (h ∗ ↑L x)`` with ``L·T`` symbolic taps ``h0 …``, and how to call it.

    Its first ``rt_driver.RUNTIME_CALLS`` calls per dtype run on the once-compiled runtime
    (:class:`_RuntimeKernel`), so that a filter structure used once or twice compiles nothing of its own;
    the chain is planned and compiled at the next call (``SYMDECONV_RUNTIME_CALLS``)."""

    def __init__(self, L: int, M: int, T: int):
        self.L, self.M, self.T, self.size = L, M, T, L * T
        self._chain = self._runtime = None
        self._calls: dict[str, int] = {}  # dtype char → calls run on the runtime (-1: on the chain kernel)

    @property
    def chain(self):
        """The compiled chain (planned with SymPy and emitted on first use)."""
        if self._chain is None:
            with _lock:
                if self._chain is None:
                    self._chain = self._build()
        return self._chain

    def _build(self):
        L, M = self.L, self.M
        op = _upfirdn_operator(_taps("h", self.size), L, M)
        chain = _compile(op, "cpu", name=f"upfirdn_up{L}_down{M}_taps{self.size}")
        if tuple(s.name for s in chain.symbols) != tuple(f"h{j}" for j in range(self.size)):
            raise SymdeconvError(
                f"internal: the upfirdn kernel {(L, M, self.T)} does not read its taps h0 … in order")
        # the module's coefficients(w) only reorders the taps (each is read once): remember the order
        order = chain.module.coefficients(np.arange(self.size, dtype=np.float64))
        self.order = order.astype(np.intp)
        if not np.array_equal(np.sort(self.order), np.arange(self.size)) or not np.array_equal(self.order, order):
            self.order = None
        self.module = chain.module
        return chain

    def __call__(self, X: np.ndarray, h: np.ndarray, lo: int, count: int) -> np.ndarray:
        """The outputs ``lo … lo + count − 1`` for the rows of ``X`` (``(rows, 1, n)``) and the real taps
        ``h`` (at most ``L·T``; cast to ``X``'s dtype), as ``(rows, count)``.

        Below ``SERIAL_WORK`` multiply-adds the call runs on one thread: a parallel launch costs more
        than such a call, and on a busy machine its join can wait a whole scheduler slice for the other
        thread.
        """
        from .codegen.rt_driver import own_kernel_due

        if not own_kernel_due(self._calls, X.dtype.char):
            if self._runtime is None:
                self._runtime = _RuntimeKernel(self.L, self.M, self.T)
            return self._runtime(X, h, lo, count)
        module = self.chain.module  # (planned and compiled at the first such call)
        w = np.zeros(self.size, dtype=X.dtype)
        w[: h.size] = h
        c = w[self.order] if self.order is not None else module.coefficients(w)
        y = output_empty((X.shape[0], 1, count), X.dtype)  # (large ones reuse dropped outputs' memory)
        if X.shape[0] * count * self.T >= SERIAL_WORK:
            module.run(X, y, c, lo)
        else:
            import numba  # (loaded by sd.compile already; not at import of symdeconv)

            threads = numba.get_num_threads()
            numba.set_num_threads(1)  # (per calling thread)
            try:
                module.run(X, y, c, lo)
            finally:
                numba.set_num_threads(threads)
        return y.reshape(X.shape[0], count)


class _RuntimeKernel:
    """``↓M (h ∗ ↑L x)`` with ``L·T`` taps on the once-compiled layer runtime (:mod:`symdeconv.codegen.rt_layers`):
    nothing is compiled per filter structure, for filters whose unrolled chain kernel would take long to compile.

    The normal form, written down directly: output phase ``p < L`` reads the taps ``k = (M p mod L) + L t``
    (``t < T``) at input offsets ``(M p − k) / L`` — ``y[L j + p] = Σ_t h[k_t] · x[M j + (M p − k_t) / L]`` —
    which is the layer plan of a one-channel layer with periods ``P = L``, ``Q = M``.
    """

    def __init__(self, L: int, M: int, T: int):
        from .codegen.layer_plan import LayerPlan, Phase

        self.L, self.M, self.T, self.size = L, M, T, L * T
        phases, taps = [], []
        for p in range(L):
            ks = range((M * p) % L, self.size, L)
            phases.append(Phase((p,), tuple(((M * p - k) // L,) for k in ks)))
            taps.extend(ks)
        self.plan = LayerPlan((L,), (M,), tuple(phases))
        self.tap_of_slot = np.array(taps, dtype=np.intp)
        self.work = threading.local()  # per calling thread: the runtime's geometry and scratch buffers

    def __call__(self, X: np.ndarray, h: np.ndarray, lo: int, count: int) -> np.ndarray:
        from .codegen import rt_driver

        w = np.zeros(self.size, dtype=X.dtype)
        w[: h.size] = h
        weight = np.ascontiguousarray(w[self.tap_of_slot]).reshape(-1, 1, 1)
        y = output_empty((X.shape[0], 1, count), X.dtype)  # (large ones reuse dropped outputs' memory)
        work = getattr(self.work, "d", None)
        if work is None:
            work = self.work.d = {}
        rt_driver.run_layer(self.plan, X, y, weight, np.zeros(1, dtype=X.dtype), 1, (lo,), work)
        return y.reshape(X.shape[0], count)


#: filters of more taps than this (after the gcd and the rounding to the kernels' grid) run on the
#: once-compiled runtime instead of a chain kernel of their own: a chain kernel's first compile grows with
#: its taps (3–8 s from 33 to 101), and from about 60 taps the runtime is about as fast (benchmarks/README.md)
RUNTIME_MIN_TAPS = 48


def _kernel(L: int, M: int, T: int) -> _Kernel | _RuntimeKernel:
    """The kernel of ``(L, M, T)``, compiled (or, for long filters, planned on the runtime) once per process."""
    key = (L, M, T)
    kernel = _kernels.get(key)
    if kernel is None:
        from .codegen.api import require_numba

        require_numba()
        with _lock:
            kernel = _kernels.get(key)
            if kernel is None:
                build = _RuntimeKernel if L * T > RUNTIME_MIN_TAPS else _Kernel
                kernel = _kernels[key] = build(L, M, T)
    return kernel


def _taps_per_phase(t: int) -> int:
    """``t`` rounded up to the kernels' grid: exact up to 8, then the multiples of 2^(k − 2) in [2^k, 2^(k+1))."""
    if t <= 8:
        return t
    step = 1 << (t.bit_length() - 3)
    return -(-t // step) * step


def _rows(xm: np.ndarray, real: np.dtype) -> np.ndarray:
    """``xm`` (``(..., n)``, any layout) as the kernel's C-contiguous, writeable ``(rows, 1, n)`` input in
    ``real``; complex data as its real rows followed by its imaginary rows."""
    n = xm.shape[-1]
    if xm.dtype.kind == "c":
        buf = output_empty((2,) + xm.shape, real)
        buf[0], buf[1] = xm.real, xm.imag
    else:
        buf = np.ascontiguousarray(xm, dtype=real)
        if not buf.flags.writeable:  # (a read-only array would be a second Numba specialisation)
            buf = buf.copy()
    return buf.reshape(-1, 1, n)


def _extend(xm: np.ndarray, a: int, b: int, mode: str, cval: Any, dtype: np.dtype) -> np.ndarray:
    """``xm`` with ``a`` samples before and ``b`` after along its last axis, SciPy's extension by ``mode``
    (the values of ``_extend_left`` / ``_extend_right`` in ``scipy/signal/_upfirdn_apply.pyx``)."""
    n = xm.shape[-1]
    out = np.empty(xm.shape[:-1] + (a + n + b,), dtype=dtype)
    x = out[..., a:a + n]
    x[...] = xm
    for side, idx in (("left", np.arange(-a, 0)), ("right", np.arange(n, n + b))):
        if idx.size:
            target = out[..., :a] if side == "left" else out[..., a + n:]
            target[...] = _extension(x, idx, side, mode, cval)
    return out


def _extension(x: np.ndarray, idx: np.ndarray, side: str, mode: str, cval: Any) -> Any:
    """The values of ``x`` (last axis, ``n`` samples) extended at the positions ``idx`` (all < 0 on the
    left, all ≥ n on the right) by ``mode``, broadcast over the leading axes."""
    n = x.shape[-1]
    left = side == "left"
    # distance counted from the near end: t = −idx − 1 on the left, idx − n on the right (both ≥ 0)
    t = -idx - 1 if left else idx - n
    first, last = x[..., :1], x[..., n - 1:]
    if mode == "constant":  # (a complex-typed cval here has no imaginary part when x is real)
        return np.asarray(cval if x.dtype.kind == "c" else cval.real, dtype=x.dtype)
    if mode == "edge":
        return first if left else last
    if mode in ("smooth", "line"):
        if mode == "smooth":
            slope = (x[..., 1:2] - first) if left else (last - x[..., n - 2:n - 1])
        else:
            slope = (last - first) / x.dtype.type(n - 1)
        steps = (idx if left else t + 1).astype(x.dtype)
        return (first if left else last) + steps * slope
    if mode == "wrap":
        return x[..., (idx % n)]
    if mode in ("symmetric", "antisymmetric"):
        # period 2n: x[0 … n−1] then x reversed (mirrored about the ends, each end sample repeated)
        u = (-idx - 1) % (2 * n) if left else idx % (2 * n)
        mirrored = u >= n
        values = x[..., np.where(mirrored, 2 * n - 1 - u, u)]
        if mode == "antisymmetric":  # SciPy's signs: −x on the left of x, −(reversed x) on its right
            values = np.where(~mirrored if left else mirrored, -values, values)
        return values
    # reflect / antireflect: period 2(n − 1), the end samples not repeated
    p = 2 * (n - 1)
    if mode == "reflect":
        u = (-idx - 1) % p if left else idx % p
        if left:
            return x[..., np.where(u < n - 1, u + 1, 2 * n - 3 - u)]
        return x[..., np.where(u < n - 1, u, 2 * n - 2 - u)]
    # antireflect
    if left:
        near = -idx < n  # x[0] − (x[−idx] − x[0])
        simple = first - (x[..., np.minimum(-idx, n - 1)] - first)
        u = (-idx - 1) % p
        base = first + (first - last) * ((-idx - 1) // (n - 1)).astype(x.dtype)
        far = np.where(u < n - 1, base - (x[..., np.minimum(u + 1, n - 1)] - first),
                       base - (last - x[..., np.clip(2 * n - 3 - u, 0, n - 1)]))
        return np.where(near, simple, far)
    near = idx < 2 * n - 1  # x[n−1] − (x[2n − 2 − idx] − x[n−1])
    simple = last - (x[..., np.clip(2 * n - 2 - idx, 0, n - 1)] - last)
    u = idx % p
    base = last + (last - first) * (idx // (n - 1) - 1).astype(x.dtype)
    far = np.where(u < n - 1, base + (x[..., np.minimum(u, n - 1)] - first),
                   base + (last - x[..., np.clip(2 * n - 2 - u, 0, n - 1)]))
    return np.where(near, simple, far)


def _resampling_filter(window: Any, x: np.ndarray, up: int, down: int) -> tuple[np.ndarray, int]:
    """``resample_poly``'s filter, already scaled by ``up``, and its half length (SciPy's rules)."""
    if isinstance(window, list) or (hasattr(window, "__array__") and not isinstance(window, (tuple, str))):
        # SciPy: a list or an array is the FIR filter itself (a tuple or a string names a window)
        h = _array(window, "window").copy()
        if h.ndim != 1 or h.size == 0 or h.dtype.kind not in "iufc":
            raise SymdeconvError(
                f"window: FIR coefficients must be a non-empty 1-D array of numbers, got shape {h.shape} "
                f"dtype {h.dtype}"
            )
        h *= up
        return h, (h.size - 1) // 2
    # SciPy designs the filter in x's dtype when x is real or complex floating (complex: real parts)
    dtype = np.finfo(x.dtype).dtype if x.dtype.kind in "fc" else _F64
    try:
        hash(window)
    except TypeError:
        return _designed_filter.__wrapped__(window, up, down, dtype)
    return _designed_filter(window, up, down, dtype)


@functools.lru_cache(maxsize=64)
def _designed_filter(window: Any, up: int, down: int, dtype: np.dtype) -> tuple[np.ndarray, int]:
    """SciPy's ``firwin`` design for ``resample_poly`` (remembered: a design costs more than a small call)."""
    try:
        from scipy.signal import firwin
    except ImportError:
        raise SymdeconvError(
            f"window={window!r}: designing the filter from a window needs SciPy (pip install scipy); "
            "without it, pass the FIR coefficients as an array (window=np.array([...]))"
        ) from None
    max_rate = max(up, down)
    half_len = 10 * max_rate
    try:
        h = firwin(2 * half_len + 1, 1.0 / max_rate, window=window).astype(dtype)
    except (ValueError, TypeError) as err:
        raise SymdeconvError(f"window={window!r}: scipy.signal.firwin cannot design with it ({err})") from None
    h *= up
    h.flags.writeable = False
    return h, half_len


# ==================================================================================================
# Validation
# ==================================================================================================


def _factor(value: Any, name: str) -> int:
    """A rate factor: an integer ≥ 1 (a float with an integer value is accepted, as SciPy does)."""
    if type(value) is int and value >= 1:
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise SymdeconvError(f"{name} must be a positive integer, got {value!r} ({type(value).__name__})")
    if not isinstance(value, numbers.Integral) and not float(value).is_integer():
        raise SymdeconvError(f"{name} must be a positive integer, got {value!r}")
    k = int(value)
    if k < 1:
        raise SymdeconvError(f"{name} must be a positive integer (>= 1), got {k}")
    return k


def _array(value: Any, name: str) -> np.ndarray:
    if type(value) is np.ndarray and value.dtype.kind in "biufc":
        return value
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as err:
        raise SymdeconvError(f"{name} must be an array of numbers: {err}") from None
    if arr.dtype.kind not in "biufc":
        raise SymdeconvError(f"{name} must be an array of numbers, got dtype {arr.dtype}")
    return arr


def _axis(axis: Any, x: np.ndarray) -> int:
    if type(axis) is int and -x.ndim <= axis < x.ndim:
        return axis % x.ndim
    if x.ndim < 1:
        raise SymdeconvError(f"x must have at least one axis, got a {x.ndim}-D array")
    try:
        a = operator.index(axis)
    except TypeError:
        raise SymdeconvError(f"axis must be an integer, got {axis!r}") from None
    if not -x.ndim <= a < x.ndim:
        raise SymdeconvError(f"axis {a} is out of range for x with {x.ndim} axes (shape {x.shape})")
    return a % x.ndim


def _out_dtype(h: np.ndarray, x: np.ndarray) -> np.dtype:
    """SciPy's output dtype, ``np.result_type(h, x, float32)``: one of the four the kernels serve."""
    dtype = np.result_type(h.dtype, x.dtype, np.float32)
    if dtype not in _DTYPES:
        raise SymdeconvError(
            f"x and h: dtypes {x.dtype} and {h.dtype} give {dtype}; supported are float32, float64, complex64 "
            "and complex128"
        )
    return dtype


def _mode(mode: Any) -> str:
    if not isinstance(mode, str) or mode.lower() not in MODES:
        raise SymdeconvError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode.lower()


def _cval(cval: Any, dtype: np.dtype) -> Any:
    """``cval`` as a scalar of ``dtype`` (complex only for complex output)."""
    if type(cval) is int and cval == 0:
        return dtype.type(0)
    if isinstance(cval, (bool, np.bool_)) or not isinstance(cval, numbers.Number):
        raise SymdeconvError(f"cval must be a number, got {cval!r} ({type(cval).__name__})")
    if dtype.kind != "c" and complex(cval).imag != 0:
        raise SymdeconvError(f"cval {cval!r} is complex but the output dtype is {dtype}")
    return np.asarray(cval).astype(dtype)[()]
