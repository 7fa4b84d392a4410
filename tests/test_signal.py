"""symdeconv.signal.upfirdn / resample_poly against scipy.signal, over a seeded sweep, and their errors.

Each kernel structure ``(L, M, taps per phase)`` (after dividing ``up`` and ``down`` by their gcd and
rounding the taps per phase up to the kernels' grid) compiles once per real dtype, about 1–3 s the
first time on a machine (then Numba's disk cache, ``SYMDECONV_CACHE_DIR``, serves it).  So the sweeps
draw a few random structures and, for each, many random calls that land on it: every ``(up, down)`` in
1..7 with that reduced ratio, every filter length in 1..40 with those taps per phase, signal lengths
1..300 (also shorter than the filter), the four dtypes and integer input, any axis of 1-D, 2-D and 3-D
arrays, non-contiguous, reversed, Fortran-ordered and read-only inputs, and every extension mode.
The counts of configurations are asserted (``UPFIRDN_CONFIGS``, ``RESAMPLE_CONFIGS``).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import symdeconv as sd
from symdeconv import SymdeconvError

signal = pytest.importorskip("scipy.signal")
pytest.importorskip("numba")

DTYPES = (np.float32, np.float64, np.complex64, np.complex128)
INTS = (np.int16, np.int32, np.int64)
LAYOUTS = ("contiguous", "strided", "transposed", "reversed", "readonly")
#: SciPy crashes (integer modulo by zero) or returns NaN for these on one sample; symdeconv refuses them
TWO_SAMPLE_MODES = ("smooth", "reflect", "antireflect", "line")
PADTYPES = ("constant", "mean", "median", "maximum", "minimum") + tuple(m for m in sd.signal.MODES if m != "constant")

UPFIRDN_STRUCTURES, UPFIRDN_PER_STRUCTURE = 8, 75
RESAMPLE_PAIRS, RESAMPLE_PER_PAIR = 5, 40
UPFIRDN_CONFIGS = UPFIRDN_STRUCTURES * UPFIRDN_PER_STRUCTURE
RESAMPLE_CONFIGS = RESAMPLE_PAIRS * RESAMPLE_PER_PAIR + 3 * 8  # + explicit filters


def structure(up: int, down: int, ntaps: int) -> tuple[int, int, int]:
    """The kernel a call runs on (the rule of symdeconv/signal.py, restated)."""
    g = math.gcd(up, down)
    L, M, K = up // g, down // g, -(-ntaps // g)
    t = -(-K // L)
    if t > 8:
        step = 1 << (t.bit_length() - 3)
        t = -(-t // step) * step
    return L, M, t


# --- inputs ------------------------------------------------------------------------------------------------


def random_signal(rng: np.random.Generator, shape: tuple[int, ...], dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return rng.integers(-50, 50, size=shape).astype(dtype)
    x = rng.standard_normal(shape)
    if dtype.kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def laid_out(x: np.ndarray, layout: str) -> np.ndarray:
    """``x``'s values in another memory layout (a view that is not C-contiguous, or a read-only copy)."""
    if layout == "strided":  # every other element along every axis of a larger array
        big = np.zeros(tuple(2 * s for s in x.shape), dtype=x.dtype)
        view = big[(slice(None, None, 2),) * x.ndim]
        view[...] = x
        return view
    if layout == "transposed":  # Fortran order
        return np.ascontiguousarray(x.T).T
    if layout == "reversed":  # negative strides along the last axis
        return np.ascontiguousarray(x[..., ::-1])[..., ::-1]
    if layout == "readonly":
        y = x.copy()
        y.flags.writeable = False
        return y
    return x


def random_call(rng: np.random.Generator, n: int, dtypes=DTYPES + INTS) -> tuple[np.ndarray, int, str]:
    """A signal with ``n`` samples along a random axis of a random 1-D, 2-D or 3-D shape, in a random layout."""
    ndim = int(rng.integers(1, 4))
    shape = [int(v) for v in rng.integers(1, 4, size=ndim)]
    axis = int(rng.integers(-ndim, ndim))
    shape[axis] = n
    dtype = dtypes[int(rng.integers(len(dtypes)))]
    layout = LAYOUTS[int(rng.integers(len(LAYOUTS)))]
    return laid_out(random_signal(rng, tuple(shape), dtype), layout), axis, layout


def check_close(y: np.ndarray, ref: np.ndarray, x: np.ndarray, gain: float, ntaps: int, what: str) -> None:
    """Same shape, dtype and values as SciPy to rounding: the kernels sum in another order (and float32 in
    float64), so the bound is a few units of the dtype's precision per tap, on the scale of the result."""
    assert y.shape == ref.shape, what
    assert y.dtype == ref.dtype, what
    eps = np.finfo(ref.dtype).eps
    scale = float(np.max(np.abs(ref), initial=0.0)) + gain * float(np.max(np.abs(x), initial=0.0)) + 1e-30
    np.testing.assert_allclose(y, ref, rtol=0, atol=8 * eps * ntaps * scale, err_msg=what)


# --- the sweeps ----------------------------------------------------------------------------------------------


def upfirdn_sweep(seed: int = 18) -> int:
    """Random ``upfirdn`` calls, ``UPFIRDN_PER_STRUCTURE`` on each of ``UPFIRDN_STRUCTURES`` random kernel
    structures; returns the number of configurations compared with SciPy."""
    rng = np.random.default_rng(seed)
    checked = 0
    for _ in range(UPFIRDN_STRUCTURES):
        up0, down0, ntaps0 = int(rng.integers(1, 8)), int(rng.integers(1, 8)), int(rng.integers(1, 41))
        target = structure(up0, down0, ntaps0)
        L, M, _ = target
        # every (up, down) in 1..7 with this reduced ratio, with the filter lengths in 1..40 that land here
        calls = {(g * L, g * M): [k for k in range(1, 41) if structure(g * L, g * M, k) == target]
                 for g in range(1, 8) if g * max(L, M) <= 7}
        ratios = [ratio for ratio, lengths in calls.items() if lengths]
        for _ in range(UPFIRDN_PER_STRUCTURE):
            up, down = ratios[int(rng.integers(len(ratios)))]
            lengths = calls[(up, down)]
            ntaps = lengths[int(rng.integers(len(lengths)))]
            h_dtype = (np.float64, np.float32, np.complex128)[int(rng.integers(3)) if rng.random() < 0.3 else 0]
            h = random_signal(rng, (ntaps,), h_dtype)
            n = int(rng.integers(1, 301)) if rng.random() < 0.7 else int(rng.integers(1, ntaps + 1))
            x, axis, layout = random_call(rng, n)
            mode = "constant" if rng.random() < 0.5 else sd.signal.MODES[int(rng.integers(len(sd.signal.MODES)))]
            if n == 1 and mode in TWO_SAMPLE_MODES:
                mode = "edge"
            cval = float(rng.standard_normal()) if mode == "constant" and rng.random() < 0.3 else 0
            before = x.copy()
            y = sd.signal.upfirdn(h, x, up, down, axis=axis, mode=mode, cval=cval)
            ref = signal.upfirdn(h, x, up, down, axis=axis, mode=mode, cval=cval)
            what = f"up={up} down={down} taps={ntaps} h {h.dtype} x {x.dtype}{x.shape} axis={axis} {layout} {mode}"
            check_close(y, ref, x, float(np.abs(h).sum()), ntaps, what)
            assert np.array_equal(x, before), what  # the input is not written
            checked += 1
    return checked


def resample_sweep(seed: int = 1802) -> int:
    """Random ``resample_poly`` calls: ``RESAMPLE_PER_PAIR`` for each of ``RESAMPLE_PAIRS`` random (up, down)
    in 1..7 (distinct ratios) with SciPy's designed filter and every padtype, then explicit filters."""
    rng = np.random.default_rng(seed)
    checked = 0
    pairs: list[tuple[int, int]] = []
    reduced: set[tuple[int, int]] = set()  # distinct kernels: distinct ratios
    while len(pairs) < RESAMPLE_PAIRS:
        up, down = int(rng.integers(1, 8)), int(rng.integers(1, 8))
        g = math.gcd(up, down)
        if up != down and (up // g, down // g) not in reduced:
            pairs.append((up, down))
            reduced.add((up // g, down // g))
    for p, (up, down) in enumerate(pairs):
        # (single precision on the first two pairs only: each pair's kernel is large, 20·max(up, down) taps,
        # and compiles once per real dtype)
        dtypes = DTYPES + INTS if p < 2 else (np.float64, np.complex128) + INTS
        for _ in range(RESAMPLE_PER_PAIR):
            padtype = PADTYPES[int(rng.integers(len(PADTYPES)))] if rng.random() < 0.6 else "constant"
            n = int(rng.integers(2 if padtype in TWO_SAMPLE_MODES else 1, 301))
            x, axis, layout = random_call(rng, n, dtypes)
            cval = float(rng.standard_normal()) if padtype == "constant" and rng.random() < 0.3 else None
            y = sd.signal.resample_poly(x, up, down, axis=axis, padtype=padtype, cval=cval)
            ref = signal.resample_poly(x, up, down, axis=axis, padtype=padtype, cval=cval)
            what = f"up={up} down={down} x {x.dtype}{x.shape} axis={axis} {layout} padtype={padtype} cval={cval}"
            check_close(y, ref, x, 2.0 * up, 20 * max(up, down), what)
            checked += 1
    # explicit FIR filters (the window as an array, also when SciPy is absent): 3 lengths, 8 calls each, on the
    # first pair (each length is a kernel of its own)
    up, down = pairs[0]
    for ntaps in (1, 7, 24):
        for _ in range(8):
            window = rng.standard_normal(ntaps)
            x, axis, layout = random_call(rng, int(rng.integers(1, 120)))
            y = sd.signal.resample_poly(x, up, down, axis=axis, window=window)
            ref = signal.resample_poly(x, up, down, axis=axis, window=window)
            what = f"up={up} down={down} window of {ntaps} x {x.dtype}{x.shape} axis={axis} {layout}"
            check_close(y, ref, x, up * float(np.abs(window).sum()), ntaps, what)
            checked += 1
    return checked


def test_upfirdn_matches_scipy_over_a_seeded_sweep():
    assert upfirdn_sweep() == UPFIRDN_CONFIGS


def test_resample_poly_matches_scipy_over_a_seeded_sweep():
    assert resample_sweep() == RESAMPLE_CONFIGS


def test_up_equals_down_returns_a_copy_of_x():
    x = np.arange(12, dtype=np.int32).reshape(3, 4)
    for up in (1, 3):
        y = sd.signal.resample_poly(x, up, up, axis=1)
        ref = signal.resample_poly(x, up, up, axis=1)
        assert y.dtype == ref.dtype == np.int32 and np.array_equal(y, ref)
        assert not np.shares_memory(y, x)


def test_empty_batch_axes_give_empty_results_of_scipys_shape():
    x = np.ones((0, 5, 7), dtype=np.float32)
    for axis in (1, 2):
        y, ref = sd.signal.upfirdn([1.0, 2.0, 3.0], x, 3, 2, axis=axis), signal.upfirdn([1.0, 2.0, 3.0], x, 3, 2, axis=axis)
        assert y.shape == ref.shape and y.dtype == ref.dtype
        y, ref = sd.signal.resample_poly(x, 3, 2, axis=axis), signal.resample_poly(x, 3, 2, axis=axis)
        assert y.shape == ref.shape and y.dtype == ref.dtype


def test_large_and_batched_calls_run_the_parallel_path(monkeypatch):
    monkeypatch.setenv("SYMDECONV_RUNTIME_CALLS", "0")  # (the chain kernel's parallel path, from the first call)
    rng = np.random.default_rng(5)
    h = rng.standard_normal(33)
    x = rng.standard_normal((3, 20_000))
    assert 3 * 30_000 * 12 >= sd.signal.SERIAL_WORK  # (rows × outputs × taps per phase)
    check_close(sd.signal.upfirdn(h, x, 3, 2), signal.upfirdn(h, x, 3, 2), x, float(np.abs(h).sum()), 33, "large")
    xt = (x.astype(np.complex64) * (1 - 2j)).T  # axis 0 (resample_poly's default) of a Fortran-ordered array
    check_close(sd.signal.resample_poly(xt, 3, 2), signal.resample_poly(xt, 3, 2), xt, 6.0, 60, "large, axis 0")


# --- the window convention (module docstring) ----------------------------------------------------------------


def test_the_chain_window_is_scipys_followed_by_zeros():
    """The operator's natural window is [0, ⌈(nL + K − 1)/M⌉); SciPy's is its first ((n − 1)L + K − 1)//M + 1
    samples, and the rest read only inserted zeros."""
    op = sd.upfirdn(sd.taps("h", 33), 3, 2)
    assert op.out_box(((0, 10**6),)) == ((0, 1_500_016),)
    assert ((10**6 - 1) * 3 + 33 - 1) // 2 + 1 == 1_500_015  # the example
    rng = np.random.default_rng(7)
    for _ in range(200):
        L, M, K, n = (int(v) for v in rng.integers(1, [8, 8, 41, 301]))
        (lo, hi), = sd.upfirdn(sd.taps("h", K), L, M).out_box(((0, n),))
        scipy_len = ((n - 1) * L + K - 1) // M + 1
        assert lo == 0 and hi == -(-(n * L + K - 1) // M)
        assert 0 <= hi - scipy_len <= -(-(L - 1) // M)
    # the compiled chain itself: the kernel symdeconv.signal runs for ↑3 ↓2 with 33 taps (36 after padding)
    chain = sd.signal._kernel(3, 2, 12).chain
    h = rng.standard_normal(36)
    h[33:] = 0
    x = rng.standard_normal(50)
    natural = chain(x, h)
    assert natural.shape == (chain.window((50,))[0][1],) == (-(-(50 * 3 + 36 - 1) // 2),)
    for K in (36, 33):
        ours = sd.signal.upfirdn(h[:K], x, 3, 2)
        assert ours.size == ((50 - 1) * 3 + K - 1) // 2 + 1
        np.testing.assert_allclose(natural[: ours.size], ours, rtol=1e-13, atol=1e-13)
        assert not natural[ours.size:].any()


# --- errors ----------------------------------------------------------------------------------------------------

X = np.ones(8)
H = np.ones(3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(up=0), "up must be a positive integer"),
        (dict(up=-2), "up must be a positive integer"),
        (dict(up=1.5), "up must be a positive integer"),
        (dict(up="2"), "up must be a positive integer"),
        (dict(up=True), "up must be a positive integer"),
        (dict(down=0), "down must be a positive integer"),
        (dict(down=None), "down must be a positive integer"),
        (dict(h=[]), "h must be a 1-D array with at least one tap"),
        (dict(h=np.ones((2, 2))), "h must be a 1-D array"),
        (dict(h=5.0), "h must be a 1-D array"),
        (dict(h=["a", "b"]), "h must be an array of numbers"),
        (dict(h=[1, [2, 3]]), "h must be an array of numbers"),
        (dict(x=3.0), "x must have at least one axis"),
        (dict(x=np.ones((2, 0))), "x must have at least one sample along axis 1"),
        (dict(x=np.array([None, 1])), "x must be an array of numbers"),
        (dict(axis=1), "axis 1 is out of range"),
        (dict(axis=-2), "axis -2 is out of range"),
        (dict(axis=0.0), "axis must be an integer"),
        (dict(mode="nearest"), "mode must be one of"),
        (dict(mode=None), "mode must be one of"),
        (dict(cval="0"), "cval must be a number"),
        (dict(cval=1j), "cval .* is complex but the output dtype is float64"),
        (dict(x=np.ones(1), mode="reflect"), "mode 'reflect' needs at least two samples"),
        (dict(x=np.ones(1), mode="line"), "mode 'line' needs at least two samples"),
        (dict(h=np.ones(3, dtype=np.clongdouble)), "supported are float32, float64, complex64 and complex128"),
    ] + ([(dict(x=np.ones(4, dtype=np.longdouble)), "x and h: dtypes float128 and float64 give float128")]
         if np.dtype(np.longdouble) != np.float64 else []),
)
def test_upfirdn_refuses_bad_input(kwargs, match):
    args = dict(h=H, x=X, up=2, down=1)
    args.update(kwargs)
    with pytest.raises(SymdeconvError, match=match) as err:
        sd.signal.upfirdn(**args)
    assert str(err.value).startswith("symdeconv.signal.upfirdn: ")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(up=0), "up must be a positive integer"),
        (dict(down=2.5), "down must be a positive integer"),
        (dict(x=np.ones((3, 4)), axis=2), "axis 2 is out of range"),
        (dict(x=np.zeros((0, 3))), "x must have at least one sample along axis 0"),
        (dict(padtype="zeros"), "padtype must be one of"),
        (dict(padtype="mean", cval=1.0), "cval has no effect when padtype is 'mean'"),
        (dict(cval="1"), "cval must be a number"),
        (dict(window=np.ones((2, 3))), "window: FIR coefficients must be a non-empty 1-D array"),
        (dict(window=[]), "window: FIR coefficients must be a non-empty 1-D array"),
        (dict(window=["a"]), "window must be an array of numbers"),
        (dict(window="no-such-window"), "scipy.signal.firwin cannot design with it"),
        (dict(x=np.ones(1), padtype="smooth"), "mode 'smooth' needs at least two samples"),
    ],
)
def test_resample_poly_refuses_bad_input(kwargs, match):
    args = dict(x=X, up=3, down=2)
    args.update(kwargs)
    with pytest.raises(SymdeconvError, match=match) as err:
        sd.signal.resample_poly(**args)
    assert str(err.value).startswith("symdeconv.signal.resample_poly: ")


def test_resample_poly_without_scipy(monkeypatch):
    """SciPy is not a dependency: an explicit filter works without it; a window to design says it needs it."""
    monkeypatch.setitem(sys.modules, "scipy.signal", None)  # `from scipy.signal import firwin` raises ImportError
    sd.signal._designed_filter.cache_clear()
    x = np.random.default_rng(3).standard_normal(40)
    window = np.hanning(9)
    y = sd.signal.resample_poly(x, 3, 2, window=window)
    monkeypatch.undo()
    check_close(y, signal.resample_poly(x, 3, 2, window=window), x, 3 * window.sum(), 9, "explicit window")
    monkeypatch.setitem(sys.modules, "scipy.signal", None)
    with pytest.raises(SymdeconvError, match=r"window=\('kaiser', 5.0\): designing the filter .* needs SciPy"):
        sd.signal.resample_poly(x, 3, 2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
def test_long_filters_run_on_the_runtime_and_match_scipy(dtype):
    """Filters of more than RUNTIME_MIN_TAPS taps (after the gcd) take the once-compiled runtime, not a chain
    kernel of their own: a 44.1 -> 48 kHz resampler (160/147, a 3 201-tap filter), a 400-tap 7/5 upfirdn
    with every extension mode's window start, and batched rows, against SciPy."""
    from symdeconv.signal import RUNTIME_MIN_TAPS, _kernel, _RuntimeKernel

    rng = np.random.default_rng(11)
    real = np.float32 if dtype == np.float32 else np.float64
    x = rng.standard_normal((3, 700)).astype(real)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal((3, 700))
    tol = dict(rtol=2e-4, atol=2e-4) if real == np.float32 else dict(rtol=1e-10, atol=1e-10)
    got = sd.signal.resample_poly(x, 160, 147, axis=1)
    np.testing.assert_allclose(got, signal.resample_poly(x, 160, 147, axis=1), **tol)
    assert isinstance(_kernel(160, 147, -(-3201 // 160)), _RuntimeKernel)
    h = rng.standard_normal(400)
    assert 400 > RUNTIME_MIN_TAPS
    for mode in ("constant", "edge", "symmetric"):
        np.testing.assert_allclose(sd.signal.upfirdn(h, x, 7, 5, axis=-1, mode=mode),
                                   signal.upfirdn(h, x, 7, 5, axis=-1, mode=mode), **tol)


def test_a_filter_structure_runs_on_the_runtime_until_its_third_call(monkeypatch):
    """A short filter's structure (L, M, T) runs its first RUNTIME_CALLS calls per dtype on the once-compiled
    runtime — its chain kernel is not even planned — and from then on its own chain kernel; every call
    matches SciPy, and SYMDECONV_RUNTIME_CALLS=0 takes the chain kernel at once."""
    from symdeconv.codegen import rt_driver
    from symdeconv.signal import _Kernel, _RuntimeKernel

    monkeypatch.delenv("SYMDECONV_RUNTIME_CALLS", raising=False)
    monkeypatch.setattr(sd.signal, "_kernels", {})  # (as in a new process: no structure's calls counted)
    runs = []
    real_runtime = _RuntimeKernel.__call__
    monkeypatch.setattr(_RuntimeKernel, "__call__",
                        lambda self, *a: (runs.append("runtime"), real_runtime(self, *a))[1])
    rng = np.random.default_rng(12)
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        for call in range(rt_driver.RUNTIME_CALLS + 2):
            h, x = rng.standard_normal(33).astype(dtype), rng.standard_normal(int(rng.integers(20, 90))).astype(dtype)
            np.testing.assert_allclose(sd.signal.upfirdn(h, x, 3, 2), signal.upfirdn(h, x, 3, 2), rtol=tol, atol=tol)
            kernel = sd.signal._kernels[(3, 2, 12)]  # (↑3 ↓2, 33 taps: 12 per phase, a chain kernel's structure)
            assert isinstance(kernel, _Kernel)
            if dtype == np.float64:
                assert (kernel._chain is None) == (call < rt_driver.RUNTIME_CALLS), call
    assert runs == ["runtime"] * (2 * rt_driver.RUNTIME_CALLS)
    monkeypatch.setattr(sd.signal, "_kernels", {})
    monkeypatch.setenv("SYMDECONV_RUNTIME_CALLS", "0")
    h, x = rng.standard_normal(33), rng.standard_normal(40)
    np.testing.assert_allclose(sd.signal.upfirdn(h, x, 3, 2), signal.upfirdn(h, x, 3, 2), rtol=1e-12, atol=1e-12)
    assert runs == ["runtime"] * (2 * rt_driver.RUNTIME_CALLS) and sd.signal._kernels[(3, 2, 12)]._chain is not None
