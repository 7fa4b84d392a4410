"""The Winograd F(3, 2) path of grouped 3-D layers (``rt_wino``), checked against oracles.

* the transform tables: ``Aᵀ[(G g) ⊙ (Bᵀ d)]`` is the two-tap correlation, in exact arithmetic;
* which plans get the path (``LayerPlan.wino_tables``), and when ``run`` takes it (channels per group);
* results against a naive NumPy definition of the layers (no PyTorch needed) and against PyTorch:
  paddings and output padding (partial windows, border outputs), groups, batches, float32/float64,
  several row blocks, kernel 6 stride 3, a stride-1 kernel-2 convolution;
* windows of the operator starting between phases (the low border outputs of the shared row write).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import sympy as sp

import symdeconv as sd
from symdeconv.codegen._alloc import aligned_empty
from symdeconv.codegen.api import LayerBinding
from symdeconv.codegen import rt_driver, rt_layout
from symdeconv.codegen.emit_cpu_layers import layer_plan
from symdeconv.codegen.layer_plan import WINO_MIN_CIN
from symdeconv.codegen.machine import CO_BLOCK
from symdeconv.codegen.rt_layout import WINO_COLS, WINO_M
from symdeconv.codegen.rt_wino import AT, BT, G

from ._layer_helpers import naive_conv, naive_conv_transpose

pytest.importorskip("numba")


def _close(got, expected, dtype, terms):
    tol = 1e-12 if np.dtype(dtype) == np.float64 else 2e-5
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * np.sqrt(terms) * (1 + np.abs(expected).max()))


def _spy_on_wino(module, monkeypatch) -> list:
    calls = []
    real = rt_driver.run_wino

    def spy(plan, x, *args, **kwargs):
        if plan is module.PLAN:
            calls.append(x.shape)
        return real(plan, x, *args, **kwargs)

    monkeypatch.setattr(rt_driver, "run_wino", spy)
    return calls


# --- the transforms ------------------------------------------------------------------------------------------


def test_transforms_compute_the_two_tap_correlation_exactly():
    """Aᵀ [(G g) ⊙ (Bᵀ d)] = (g0 d_e + g1 d_{e+1})_e for symbolic d, g: Winograd's F(WINO_M, 2), exactly."""
    m = WINO_M
    bt, g_, at = sp.Matrix(BT), sp.Matrix(G), sp.Matrix(AT)
    assert bt.shape == (m + 1, m + 1) and g_.shape == (m + 1, 2) and at.shape == (m, m + 1)
    d = sp.Matrix(sp.symbols(f"d0:{m + 1}"))
    g = sp.Matrix(sp.symbols("g0:2"))
    got = at * (g_ * g).multiply_elementwise(bt * d)
    want = sp.Matrix([g[0] * d[e] + g[1] * d[e + 1] for e in range(m)])
    assert (got - want).expand().is_zero_matrix is True
    # Bᵀ and Aᵀ: exact additions; G: sums of weights scaled by ±1 or ±½ (exact in binary floating point)
    assert set(bt) <= {0, 1, -1} and set(at) <= {0, 1, -1} and set(g_) <= {0, 1, -1, sp.Rational(1, 2), sp.Rational(-1, 2)}


def test_block_rows_give_the_fewest_padded_columns():
    """``wino_block_rows``: blocks of near-equal row counts (1 to 2 times the fewest blocks that fit
    WINO_COLS columns), the one with the fewest columns after rounding each block up to VEC, and of
    those the one with the fullest last block."""
    def padded(rows, per, Lx):  # columns of all blocks of ``per`` rows (the last one shorter), rounded up
        sizes = [min(per, rows - q) for q in range(0, rows, per)]
        return sum(-(-(n * Lx) // rt_layout.VEC) * rt_layout.VEC for n in sizes)

    assert rt_driver.block_rows(121, 34) == 11  # 11 blocks of 384 columns, not 10 of 13 rows
    for rows, Lx in [(121, 34), (289, 34), (1, 10), (7, 200), (1000, 18), (50, 600), (64, 66)]:
        got = rt_driver.block_rows(rows, Lx)
        most = max(1, WINO_COLS // Lx)
        fewest = -(-rows // most)
        assert 1 <= got <= most
        assert fewest <= -(-rows // got) <= 2 * fewest
        family = {-(-rows // n) for n in range(fewest, min(rows, 2 * fewest) + 1)}
        least = min(padded(rows, per, Lx) for per in family)
        assert padded(rows, got, Lx) == least, (rows, Lx)
        lacking = lambda per: -(-rows // per) * per - rows  # noqa: E731
        assert lacking(got) == min(lacking(per) for per in family if padded(rows, per, Lx) == least), (rows, Lx)


# --- which plans, which calls ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "applies"),
    [
        (sd.ConvTranspose((4, 4, 4), stride=2, padding=1), True),
        (sd.ConvTranspose((4, 4, 4), stride=2, padding=0), True),
        (sd.ConvTranspose((4, 4, 4), stride=2, padding=2, output_padding=1), True),
        (sd.ConvTranspose((6, 6, 6), stride=3, padding=1), True),
        (sd.ConvTranspose((2, 2, 2), stride=1, padding=0), True),
        (sd.Conv((2, 2, 2), stride=1, padding=1), True),
        (sd.ConvTranspose((4, 4, 6), stride=(2, 2, 3), padding=1), True),  # the last dimension's taps stay direct
        (sd.ConvTranspose((3, 3, 3), stride=2, padding=1), False),  # phases with one tap along a leading dimension
        (sd.ConvTranspose((4, 4, 3), stride=2, padding=1), False),  # phases with 1 and 2 taps along the last dimension
        (sd.Conv((3, 3, 3), stride=2, padding=1), False),  # input phases (Q = 2)
        (sd.Conv((2, 2, 2), stride=1, padding=0, dilation=2), False),  # taps two apart
        (sd.ConvTranspose((4, 4), stride=2, padding=1), False),  # 2-D: the path is 3-D only
        (sd.ConvTranspose((4, 4, 4, 4), stride=2, padding=1), False),  # 4-D: the GEMM-like runtime kernel runs
        (sd.ConvTranspose(4, stride=2, padding=1), False),
    ],
    ids=lambda v: getattr(v, "kernel_size", v),
)
def test_which_plans_get_the_winograd_path(layer, applies):
    plan = LayerBinding(layer).plan
    wt = layer_plan(plan).wino_tables()
    assert (wt is not None) == applies
    assert ("winograd" in sd.compile(layer, "cpu").module.PLAN.paths) == applies
    if applies:
        assert plan.ndim == 3
        assert wt.slots.shape == (len(plan.phases), 4, wt.nx)
        for ph, slots in zip(plan.phases, wt.slots):  # every tap of a phase exactly once in its table
            assert sorted(int(s) for row in slots for s in row) == sorted(s for s, _ in ph.slots)


def test_run_takes_the_winograd_path_by_channels(monkeypatch):
    """cin_g ≥ WINO_MIN_CIN and cout_g a multiple of CO_BLOCK: the Winograd path; otherwise the direct one."""
    rng = np.random.default_rng(5)
    for cin, cout, groups, taken in [(WINO_MIN_CIN, CO_BLOCK, 1, True), (2 * WINO_MIN_CIN, 2 * CO_BLOCK, 2, True),
                                     (WINO_MIN_CIN - 1, CO_BLOCK, 1, False), (WINO_MIN_CIN, CO_BLOCK + 2, 1, False),
                                     (2 * WINO_MIN_CIN, 2 * CO_BLOCK, 4, False)]:
        layer = sd.ConvTranspose((4, 4, 4), stride=2, padding=1, in_channels=cin, out_channels=cout, groups=groups)
        f = sd.compile(layer, "cpu")
        calls = _spy_on_wino(f.module, monkeypatch)
        x = rng.standard_normal((1, cin, 2, 3, 3)).astype(np.float32)
        w = rng.standard_normal(layer.weight_shape).astype(np.float32)
        b = rng.standard_normal(cout).astype(np.float32)
        _close(f(x, w, b), naive_conv_transpose(x, w, b, 2, 1, groups=groups), np.float32, cin * 8)
        assert bool(calls) == taken, (cin, cout, groups)
        monkeypatch.undo()


# --- results ---------------------------------------------------------------------------------------------------

# name: (layer, oracle, input shape (N, C, *spatial), dtype); channels ≥ WINO_MIN_CIN per group, C_out per group a
# multiple of CO_BLOCK, so that run() takes the Winograd path (asserted)
CASES = {
    "convT_k4s2p1_odd": (
        lambda: sd.ConvTranspose((4, 4, 4), stride=2, padding=1, in_channels=16, out_channels=8),
        lambda x, w, b: naive_conv_transpose(x, w, b, 2, 1), (2, 16, 3, 5, 7), np.float64),
    "convT_k4s2p0": (
        lambda: sd.ConvTranspose((4, 4, 4), stride=2, padding=0, in_channels=16, out_channels=4),
        lambda x, w, b: naive_conv_transpose(x, w, b, 2, 0), (1, 16, 4, 3, 6), np.float32),
    "convT_k4s2p2_output_padding": (  # odd outputs: border outputs on both sides of the rows
        lambda: sd.ConvTranspose((4, 4, 4), stride=2, padding=2, output_padding=1, in_channels=16, out_channels=4),
        lambda x, w, b: naive_conv_transpose(x, w, b, 2, 2, 1), (1, 16, 5, 4, 3), np.float32),
    "convT_groups": (
        lambda: sd.ConvTranspose((4, 4, 4), stride=2, padding=1, in_channels=32, out_channels=8, groups=2),
        lambda x, w, b: naive_conv_transpose(x, w, b, 2, 1, groups=2), (2, 32, 3, 3, 4), np.float32),
    "convT_k6s3": (
        lambda: sd.ConvTranspose((6, 6, 6), stride=3, padding=1, in_channels=16, out_channels=4),
        lambda x, w, b: naive_conv_transpose(x, w, b, 3, 1), (1, 16, 3, 2, 4), np.float32),
    "conv_k2s1": (
        lambda: sd.Conv((2, 2, 2), stride=1, padding=1, in_channels=16, out_channels=4),
        lambda x, w, b: naive_conv(x, w, b, 1), (1, 16, 4, 5, 6), np.float32),
    "convT_row_blocks_float32": (  # many rows of windows: several blocks of work
        lambda: sd.ConvTranspose((4, 4, 4), stride=2, padding=1, in_channels=16, out_channels=4),
        lambda x, w, b: naive_conv_transpose(x, w, b, 2, 1), (1, 16, 21, 24, 30), np.float32),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_winograd_path_against_the_layer_definition(name, monkeypatch):
    build, oracle, shape, dtype = CASES[name]
    layer = build()
    f = sd.compile(layer, "cpu")
    calls = _spy_on_wino(f.module, monkeypatch)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(layer.weight_shape).astype(dtype)
    b = rng.standard_normal(layer.out_channels).astype(dtype)
    got = f(x, w, b)
    assert calls, "run() did not take the Winograd path"
    assert got.dtype == dtype
    _close(got, oracle(x, w, b), dtype, layer.in_channels * np.prod(layer.kernel_size))
    if name == "convT_row_blocks_float32":
        T = [n // WINO_M + 1 for n in shape[2:4]]  # windows along the leading dimensions
        assert T[0] * T[1] * (shape[4] + 2) > 2 * WINO_COLS


# layer, oracle, input shapes: output rows of 16 elements (whole lines in float32 and float64), then not
STREAMED = {
    "two-phases": (sd.ConvTranspose((4, 4, 4), stride=2, padding=1, in_channels=16, out_channels=4),  # stream_pair
                   lambda x, w, b: naive_conv_transpose(x, w, b, 2, 1), [(1, 16, 3, 4, 8), (2, 16, 3, 5, 7)]),
    "one-phase": (sd.Conv((2, 2, 2), stride=1, padding=1, in_channels=16, out_channels=4),  # stream_line
                  lambda x, w, b: naive_conv(x, w, b, 1), [(1, 16, 3, 4, 15), (2, 16, 3, 5, 12)]),
}


@pytest.mark.parametrize(("dtype", "offset"), [(np.float32, 0), (np.float32, 16), (np.float32, 4),
                                               (np.float64, 0), (np.float64, 16), (np.float64, 8)],
                         ids=["f32-line", "f32-numpy", "f32-odd", "f64-line", "f64-numpy", "f64-odd"])
@pytest.mark.parametrize("kind", sorted(STREAMED))
def test_streamed_rows_against_the_layer_definition(dtype, offset, kind, monkeypatch):
    """Rows of whole 64-byte lines written with streaming stores (the threshold lowered to 0), in outputs
    that start on a line (every row streamed), 16 bytes past one (NumPy's usual start: no row starts a
    line, the plain loop) or one element past (the rows start at every element offset), and rows that
    are not whole lines, for two last-dimension phases (``stream_pair``) and one (``stream_line``),
    against the naive definition."""
    layer, oracle, shapes = STREAMED[kind]
    f = sd.compile(layer, "cpu")
    assert rt_driver.stream_min_bytes() > 0
    monkeypatch.setenv("SYMDECONV_STREAM_MIN_BYTES", "0")
    assert rt_driver.stream_min_bytes() == 0
    calls = _spy_on_wino(f.module, monkeypatch)
    itemsize = np.dtype(dtype).itemsize
    rng = np.random.default_rng(offset + itemsize)
    for shape in shapes:
        x = rng.standard_normal(shape).astype(dtype)
        w = rng.standard_normal(layer.weight_shape).astype(dtype)
        b = rng.standard_normal(layer.out_channels).astype(dtype)
        want = oracle(x, w, b)
        raw = aligned_empty(want.size * itemsize + offset, np.uint8)
        out = raw[offset:offset + want.size * itemsize].view(dtype).reshape(want.shape)
        out[...] = np.nan
        got = f(x, w, b, out=out)
        assert np.shares_memory(got, out)
        _close(out, want, dtype, layer.in_channels * np.prod(layer.kernel_size))
    assert len(calls) == 2, "run() did not take the Winograd path"


@pytest.mark.torch
@pytest.mark.parametrize("seed", range(3))
def test_winograd_path_against_torch_random_configs(seed, monkeypatch):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(300 + seed)
    for _ in range(2):
        groups = int(rng.choice([1, 2]))
        cin_g, cout_g = int(rng.choice([16, 17, 24])), int(rng.choice([4, 8]))
        padding = int(rng.integers(0, 3))
        output_padding = int(rng.integers(0, 2))
        layer = sd.ConvTranspose((4, 4, 4), stride=2, padding=padding, output_padding=output_padding, groups=groups,
                                 in_channels=groups * cin_g, out_channels=groups * cout_g)
        shape = tuple(int(v) for v in rng.integers(2, 12, 3))
        x = rng.standard_normal((int(rng.integers(1, 3)), groups * cin_g) + shape).astype(np.float32)
        w = rng.standard_normal(layer.weight_shape).astype(np.float32)
        b = rng.standard_normal(groups * cout_g).astype(np.float32)
        f = sd.compile(layer, "cpu")
        calls = _spy_on_wino(f.module, monkeypatch)
        got = f(x, w, b)
        assert calls
        monkeypatch.undo()
        expected = torch.nn.functional.conv_transpose3d(
            torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride=2, padding=padding,
            output_padding=output_padding, groups=groups).numpy()
        _close(got, expected, np.float32, cin_g * 64)


@pytest.mark.parametrize("cin", [4, WINO_MIN_CIN], ids=["direct", "winograd"])
def test_windows_starting_between_phases(cin, monkeypatch):
    """``run`` computes any window ``[lo, lo + out)`` of the operator's outputs.  A layer's own window starts
    at 0; one starting at an odd position puts the first output of a last-dimension phase before the
    interleaved range (a low border output), in the direct kernel and in the Winograd path alike."""
    layer = sd.ConvTranspose((4, 4, 4), stride=2, padding=1, in_channels=cin, out_channels=CO_BLOCK)
    binding = LayerBinding(layer)
    module = sd.compile(layer, "cpu").module
    calls = _spy_on_wino(module, monkeypatch)
    rng = np.random.default_rng(21)
    shape = (3, 4, 5)
    x = rng.standard_normal((2, cin) + shape)
    w = rng.standard_normal(layer.weight_shape)
    b = rng.standard_normal(CO_BLOCK)
    gathered = binding.gather(w, np.dtype(np.float64))
    size = tuple(layer.output_shape(shape))
    full = np.full((2, CO_BLOCK) + size, np.nan)
    module.run(x, full, gathered, b, 1, 0, 0, 0, work={})
    _close(full, naive_conv_transpose(x, w, b, 2, 1), np.float64, cin * 64)
    for lo in [(1, 1, 1), (0, 1, 3), (2, 3, 1)]:
        out = tuple(size[d] - lo[d] - 1 for d in range(3))
        y = np.full((2, CO_BLOCK) + out, np.nan)
        module.run(x, y, gathered, b, 1, *lo, work={})
        window = tuple(slice(lo[d], lo[d] + out[d]) for d in range(3))
        expected = full[(slice(None), slice(None)) + window]
        np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-13, err_msg=str(lo))
    assert bool(calls) == (cin >= WINO_MIN_CIN)
