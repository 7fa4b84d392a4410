"""The paths the CPU layer generator can choose, each checked against an oracle.

* planning from a one-channel stand-in equals planning from the full multi-channel normal form;
* the micro-kernel's two channel paths — ``CO_BLOCK`` output channels per pass (block_wide) and one at a
  time (the remainder, depthwise) — and its tap groups (phases with different numbers of taps), in
  1-D/2-D/3-D, with input planes (strided convolutions, Q > 1), checked against ``layer.matrix`` and
  against PyTorch;
* ``out=``: a preallocated output, validated.
"""

from __future__ import annotations

import numpy as np
import pytest

import symdeconv as sd
from symdeconv.codegen.api import LayerBinding
from symdeconv.codegen.layer_plan import LayerPlan
from symdeconv.codegen.machine import CO_BLOCK, host_machine, machine_from, tile_columns
from symdeconv.verify.check import check_layer

pytest.importorskip("numba")
from symdeconv.codegen import rt_layers  # noqa: E402  (imports Numba)
from symdeconv.codegen import rt_driver, rt_layout  # noqa: E402
from symdeconv.codegen.rt_driver import ROW_TARGET  # noqa: E402


@pytest.mark.parametrize(
    "layer",
    [
        sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=4, out_channels=6, groups=2),
        sd.ConvTranspose((3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), in_channels=3, out_channels=3,
                         groups=3),
        sd.Conv((3, 3), stride=2, padding=1, in_channels=2, out_channels=3),
        sd.Conv((3, 3), stride=2, padding="SAME", in_channels=2, out_channels=4, convention="tf").bind((5, 5)),
        sd.Conv(3, stride=1, padding=((1, 1),), lhs_dilation=2, in_channels=2, out_channels=2, convention="jax"),
        sd.ConvTranspose((2, 2, 2), stride=2, padding=0, in_channels=2, out_channels=2),
    ],
    ids=["convT2d_groups", "convT2d_dilated_depthwise", "conv2d_s2", "tf_same", "jax_lhs_dilation", "convT3d"],
)
def test_stand_in_plan_equals_full_normal_form_plan(layer):
    fast = LayerBinding(layer)
    full = LayerBinding(layer, from_normal_form=True)
    assert fast.plan == full.plan
    np.testing.assert_array_equal(fast.index, full.index)
    np.testing.assert_array_equal(fast.scale, full.scale)
    w = np.random.default_rng(0).standard_normal(layer.weight_shape)
    np.testing.assert_array_equal(
        fast.gather(w, np.dtype(np.float64)), (w.reshape(-1)[full.index] * full.scale).transpose(0, 2, 1)
    )


def test_register_tile_is_sized_from_the_machine():
    """The micro-kernel's CO_BLOCK × TILE accumulators fit half the vector registers of the ISA (the other
    half holds loaded inputs and broadcast weights), in whole vectors, for both dtypes and every ISA."""
    isas = {"avx512": machine_from("znver4", {"avx512f", "avx2", "fma"}, "x86_64"),
            "avx2": machine_from("haswell", {"avx2", "fma"}, "x86_64"),
            "sse": machine_from("nehalem", set(), "x86_64"),
            "neon": machine_from("neoverse-n1", set(), "aarch64")}
    assert (tile_columns(isas["avx512"], 4), tile_columns(isas["avx2"], 4)) == (64, 16)
    for m in isas.values():
        for itemsize in (4, 8):
            cols = tile_columns(m, itemsize)
            lanes = m.vector_bits // (8 * itemsize)
            assert cols % lanes == 0 and CO_BLOCK * cols // lanes <= m.registers // 2, (m, itemsize)
    assert rt_layout.tile_shape(4) == (CO_BLOCK, tile_columns(host_machine(), 4))


def test_streaming_threshold_and_its_override(monkeypatch):
    """Outputs are streamed from STREAM_MIN_BYTES (4 MiB); SYMDECONV_STREAM_MIN_BYTES sets another number of
    bytes (0: every output; empty: unset), and anything else but a whole number there is a SymdeconvError
    naming it."""
    from symdeconv.codegen import machine

    monkeypatch.delenv("SYMDECONV_STREAM_MIN_BYTES", raising=False)
    assert machine.stream_min_bytes() == machine.STREAM_MIN_BYTES == 4 << 20
    for value in ("0", "123456"):
        monkeypatch.setenv("SYMDECONV_STREAM_MIN_BYTES", value)
        assert machine.stream_min_bytes() == int(value)
    monkeypatch.setenv("SYMDECONV_STREAM_MIN_BYTES", "")  # empty: unset
    assert machine.stream_min_bytes() == 4 << 20
    for bad in ("not a number", "-1", "4.5", "²"):
        monkeypatch.setenv("SYMDECONV_STREAM_MIN_BYTES", bad)
        with pytest.raises(sd.SymdeconvError, match="SYMDECONV_STREAM_MIN_BYTES must be a whole number"):
            machine.stream_min_bytes()


# (layer, input shapes): out_channels per group ≥ CO_BLOCK plus a remainder, so both channel paths run
PATHS = {
    "convT2d_k3_wide_and_rest": (  # phases with 1, 2, 2, 4 taps; 9 = 8 + 1 output channels
        lambda: sd.ConvTranspose((3, 3), stride=2, padding=1, output_padding=1, in_channels=1, out_channels=9),
        [(2, 3)]),
    "conv2d_s2_planes_wide_and_rest": (  # Q = 2: four input planes; 5 = 4 + 1
        lambda: sd.Conv((3, 3), stride=2, padding=1, in_channels=2, out_channels=5), [(4, 5)]),
    "convT1d_groups_wide_and_rest": (  # 2 groups of 9 output channels
        lambda: sd.ConvTranspose(4, stride=2, padding=1, in_channels=2, out_channels=18, groups=2), [(3,)]),
    "convT3d_wide": (lambda: sd.ConvTranspose((2, 2, 2), stride=2, padding=0, in_channels=1, out_channels=8),
                     [(2, 1, 2)]),
    "convT2d_s3_k2_phases_without_taps": (  # stride > kernel: 5 of the 9 phases are bias only; 5 = 4 + 1
        lambda: sd.ConvTranspose((2, 2), stride=3, padding=0, in_channels=2, out_channels=5), [(3, 4)]),
}


@pytest.mark.parametrize("name", sorted(PATHS))
def test_blocking_paths_equal_layer_matrix(name):
    build, shapes = PATHS[name]
    layer = build()
    result = check_layer(sd.compile(layer, "cpu"), layer, shapes, np.float64, rng=np.random.default_rng(1))
    assert result.ok, result.row()


@pytest.mark.torch
@pytest.mark.parametrize("seed", range(3))
def test_blocking_paths_against_torch_random_configs(seed):
    """Random channel counts around CO_BLOCK (wide blocks, remainders, depthwise), larger inputs."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(100 + seed)
    layer_fns = [
        (sd.ConvTranspose, torch.nn.functional.conv_transpose2d, dict(kernel_size=(4, 4), stride=2, padding=1)),
        (sd.Conv, torch.nn.functional.conv2d, dict(kernel_size=(3, 3), stride=2, padding=1)),
    ]
    for cls, fn, kw in layer_fns:
        groups = int(rng.choice([1, 2, 3]))
        cin_g, cout_g = int(rng.integers(1, 6)), int(rng.choice([1, 3, 4, 8, 9, 13]))
        layer = cls(**kw, groups=groups, in_channels=groups * cin_g, out_channels=groups * cout_g)
        shape = tuple(int(v) for v in rng.integers(3, 40, 2))
        x = rng.standard_normal((2, groups * cin_g) + shape).astype(np.float32)
        w = rng.standard_normal(layer.weight_shape).astype(np.float32)
        b = rng.standard_normal(groups * cout_g).astype(np.float32)
        expected = fn(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                      stride=kw["stride"], padding=kw["padding"], groups=groups).numpy()
        got = sd.compile(layer, "cpu")(x, w, b)
        # float32 accumulation (as oneDNN): error relative to the magnitude of the terms summed
        terms = np.sqrt(cin_g * np.prod(kw["kernel_size"]))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * terms * (1 + np.abs(expected).max()))


def test_out_argument_for_layers_and_chains():
    layer = sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=2, out_channels=3)
    f = sd.compile(layer, "cpu")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 3, 4))
    w = rng.standard_normal(layer.weight_shape)
    expected = f(x, w)
    out = np.full_like(expected, np.nan)
    assert f(x, w, out=out) is out
    np.testing.assert_array_equal(out, expected)
    first = out[0]
    assert f(x[1], w, out=first) is first  # unbatched
    np.testing.assert_array_equal(out[0], expected[1])
    for bad, match in [
        (np.empty((2, 3, 6, 7)), r"out must have shape \(2, 3, 6, 8\)"),
        (np.empty((2, 3, 6, 8), np.float32), "out has dtype float32"),
        (np.empty((2, 3, 6, 16))[..., ::2], "C-contiguous"),
        ([0.0], "out must be a NumPy array"),
        (x, "out must have shape"),
    ]:
        with pytest.raises(sd.SymdeconvError, match=match):
            f(x, w, out=bad)
    buf = np.empty(2 * 3 * 6 * 8 + x.size)
    with pytest.raises(sd.SymdeconvError, match="overlap"):
        g = sd.compile(sd.conv((1.0, 1.0)), "cpu")
        g(buf[:10], out=buf[5:16])
    chain = sd.compile(sd.conv((1, 2, 1)) @ sd.up(2), "cpu")
    xc = rng.standard_normal((3, 5))
    yc = np.empty((3, 12))
    assert chain(xc, out=yc) is yc
    np.testing.assert_array_equal(yc, chain(xc))
    with pytest.raises(sd.SymdeconvError, match=r"out must have shape \(3, 12\)"):
        chain(xc, out=np.empty((3, 11)))


def test_channels_last_out():
    layer = sd.ConvTranspose((3, 3), stride=2, padding="SAME", in_channels=1, out_channels=2, convention="tf")
    f = sd.compile(layer, "cpu")
    x = np.random.default_rng(3).standard_normal((1, 3, 4, 1))
    w = np.random.default_rng(4).standard_normal(layer.weight_shape)
    expected = f(x, w)
    out = np.empty_like(expected)
    assert f(x, w, out=out) is out
    np.testing.assert_array_equal(out, expected)


def test_repeated_calls_check_the_arrays_of_every_call():
    """A call with the shapes of an earlier one reuses its cached recipe (shapes, window, kernel), but the
    arrays themselves are checked again: contiguity, the output's overlap with the inputs; and calls that
    alternate between input shapes, layouts and batching each get their own result."""
    layer = sd.Conv((3, 3), stride=2, padding="VALID", in_channels=2, out_channels=3, convention="tf")  # channels-last
    f = sd.compile(layer, "cpu")
    rng = np.random.default_rng(7)
    w = rng.standard_normal(layer.weight_shape)
    b = rng.standard_normal(3)
    xs = [rng.standard_normal(s) for s in [(2, 5, 6, 2), (1, 4, 4, 2), (5, 6, 2)]]
    expected = [np.array(f(x, w, b)) for x in xs]  # also fills the recipe cache
    for x, y in zip(xs + xs[::-1], expected + expected[::-1]):
        xb = x if x.ndim == 4 else x[None]
        M = np.array(layer.matrix(xb.shape[1:3], weight=w).tolist(), dtype=float)  # (C, *spatial) order
        flat = np.moveaxis(xb, -1, 1).reshape(len(xb), -1) @ M.T
        oracle = np.moveaxis(flat.reshape((len(xb), 3) + y.shape[-3:-1]), 1, -1) + b
        np.testing.assert_allclose(y, oracle if x.ndim == 4 else oracle[0], atol=1e-12)
        out = np.full_like(y, np.nan)
        assert f(x, w, b, out=out) is out
        np.testing.assert_array_equal(out, y)
    x = xs[0]
    np.testing.assert_array_equal(f(np.asfortranarray(x), w, b), f(x, w, b))  # strided input: copied
    with pytest.raises(sd.SymdeconvError, match="weight has dtype float32"):
        f(x, w.astype(np.float32), b)
    buf = np.zeros(x.size + expected[0].size)
    x_in_buf = buf[: x.size].reshape(x.shape)
    x_in_buf[...] = x
    with pytest.raises(sd.SymdeconvError, match="overlap"):
        f(x_in_buf, w, b, out=buf[x.size // 2: x.size // 2 + expected[0].size].reshape(expected[0].shape))
    out = buf[x.size:].reshape(expected[0].shape)
    assert f(x_in_buf, w, b, out=out) is out
    np.testing.assert_array_equal(out, expected[0])


def test_small_weights_remembered_by_their_bytes_never_go_stale(monkeypatch):
    """A small weight's gathered array is reused while the weight's bytes are unchanged: changing the
    weight in place, alternating weight arrays, and a size-dependent layer (one binding per input size,
    the kernel module shared) all give fresh results, checked against ``layer.matrix``."""
    monkeypatch.setenv("SYMDECONV_RUNTIME_CALLS", "0")  # (its first layer's path: the stencil from the first call)
    from symdeconv.codegen.api import WEIGHT_MEMO_MAX

    rng = np.random.default_rng(11)

    def oracle(layer, x, w):
        M = np.array(layer.matrix(x.shape[2:], weight=w).tolist(), dtype=float)
        return (x.reshape(len(x), -1) @ M.T).reshape((len(x), int(layer.out_channels), -1))

    layer = sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=2, out_channels=2, groups=2)  # the stencil path
    f = sd.compile(layer, "cpu")
    x = rng.standard_normal((1, 2, 3, 4))
    w = rng.standard_normal(layer.weight_shape)
    assert w.size <= WEIGHT_MEMO_MAX
    for _ in range(2):
        np.testing.assert_allclose(f(x, w).reshape(1, 2, -1), oracle(layer, x, w), atol=1e-12)
    w[1, 0, 2, 3] += 1.0  # in place: same object, new bytes
    np.testing.assert_allclose(f(x, w).reshape(1, 2, -1), oracle(layer, x, w), atol=1e-12)
    w2 = rng.standard_normal(layer.weight_shape)
    for weight in (w2, w, w2):
        np.testing.assert_allclose(f(x, weight).reshape(1, 2, -1), oracle(layer, x, weight), atol=1e-12)
    # TF "SAME" with a stride: one binding per input size; sizes 4 and 5 pad differently
    same = sd.ConvTranspose(3, stride=2, padding="SAME", in_channels=1, out_channels=1, convention="tf")
    g = sd.compile(same, "cpu")
    ws = rng.standard_normal(same.weight_shape)
    for n in (4, 5, 4, 5):
        xs = rng.standard_normal((1, n, 1))
        expected = oracle(same, np.moveaxis(xs, -1, 1), ws)
        np.testing.assert_allclose(np.moveaxis(g(xs, ws), -1, 1).reshape(expected.shape), expected, atol=1e-12)
    # a weight above the threshold is gathered every call
    big = sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=64, out_channels=72)
    wb = rng.standard_normal(big.weight_shape)
    assert wb.size > WEIGHT_MEMO_MAX
    h = sd.compile(big, "cpu")
    xb = rng.standard_normal((1, 64, 2, 2))
    first = h(xb, wb)
    wb *= 2.0
    np.testing.assert_allclose(h(xb, wb), 2.0 * first, rtol=1e-12, atol=1e-12)


def test_accumulator_stride_avoids_4k_aliasing():
    """acc_stride: ≥ n, whole 64-byte lines, and no two of the block's rows a multiple of 4 KiB apart."""
    rows = CO_BLOCK
    for itemsize in (4, 8):
        for n in list(range(1, 700, 7)) + [510, 512, 1020, 1024, 2048, 4096]:
            s = rt_driver.acc_stride(n, itemsize, rows)
            assert s >= n and s % 16 == 0 and s < n + 16 + 256 * 16
            for k in range(1, rows):
                r = (k * s * itemsize) % 4096
                assert 256 <= r <= 4096 - 256, (n, itemsize, s, k)


def _planes(x, Q, a, L):
    """The definition ``fill`` copies from: plane r (C order over Q) holds x[Q (u + a) + r] at plane position u,
    zero where that is outside x; the planes flattened in C order (a NumPy restatement, index by index)."""
    D = len(Q)
    planes = []
    for r in np.ndindex(*Q):
        plane = np.zeros(L, dtype=x.dtype)
        for u in np.ndindex(*L):
            s = tuple(Q[d] * (u[d] + a[d]) + r[d] for d in range(D))
            if all(0 <= s[d] < x.shape[d] for d in range(D)):
                plane[u] = x[s]
        planes.append(plane.reshape(-1))
    return np.stack(planes)


# (layer, input spatial shape): 1-D to 3-D, input phases (Q = 2, de-interleaved rows), the first input position
# outside x (padding), odd sizes
FILL_CASES = {
    "conv1d_s2": (sd.Conv(3, stride=2, padding=1, in_channels=3, out_channels=4), (37,)),
    "convT1d": (sd.ConvTranspose(4, stride=2, padding=1, in_channels=3, out_channels=4), (29,)),
    "conv2d_s2": (sd.Conv((3, 3), stride=2, padding=1, in_channels=3, out_channels=4), (9, 13)),
    "convT2d_op": (sd.ConvTranspose((3, 3), stride=2, padding=1, output_padding=1, in_channels=2, out_channels=4),
                   (7, 6)),
    "conv2d_s3_dilated": (
        sd.Conv((2, 3), stride=(3, 2), padding=(0, 2), dilation=(2, 1), in_channels=2, out_channels=4), (11, 8)),
    "conv3d_s2": (sd.Conv((3, 3, 3), stride=2, padding=1, in_channels=2, out_channels=4), (5, 4, 7)),
    "convT3d": (sd.ConvTranspose((4, 4, 4), stride=2, padding=1, in_channels=2, out_channels=4), (3, 5, 4)),
}


@pytest.mark.parametrize("name", sorted(FILL_CASES))
def test_fill_copies_the_band_of_a_block(name):
    """``fill_planes`` writes every position of a block's band (the buffer starts as NaN; in use it is reused
    from block to block): the input planes where they hold inputs, zero elsewhere and past the planes' end."""
    layer, shape = FILL_CASES[name]
    plan = LayerPlan.from_kernel_plan(LayerBinding(layer).plan)
    D, Q = plan.ndim, plan.Q
    lo = tuple(int(a) for a, _ in layer.window(shape))
    out = tuple(layer.output_shape(shape))
    jlo, jhi, L = plan.blocks(out, lo)
    a = [jlo[d] + plan.e_min[d] for d in range(D)]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5) + tuple(shape))
    x3 = x.reshape(2, 5, -1)
    for tile in (16, 64):  # the band's length follows the tile width
        g = rt_driver._geometry(plan, x.shape, (2, 4) + out, 1, lo, tile, x.itemsize)[0]
        band = int(g[rt_layers.G_FIELDS["band"]])
        S0 = int(g[rt_layers.G_FIELDS["S0"]])
        for b in range(2):
            for ci0 in (0, 3):  # the block's group starts at input channel ci0
                planes = _planes(x[b, ci0], Q, a, L), _planes(x[b, ci0 + 1], Q, a, L)
                total = planes[0].shape[1]
                for m0 in sorted({0, S0 if D > 1 else 5, (total // S0 - 1) * S0}):
                    xb = np.full((3, plan.n_planes * band), np.nan)  # (a third channel, not written)
                    rt_layers.fill_planes(x3, xb[:2], b, ci0, m0, g)
                    for ci in range(2):
                        padded = np.concatenate([planes[ci], np.zeros((len(planes[ci]), m0 + band))], axis=1)
                        np.testing.assert_array_equal(xb[ci].reshape(plan.n_planes, band), padded[:, m0:m0 + band],
                                                      err_msg=f"{m0} {band}")
                    assert np.isnan(xb[2]).all()


# (torch function, layer, input shape, dtype — the dtype other tests compile the same kernel for): several row
# blocks of work (more than ROW_TARGET outputs per channel and phase: checked below), accumulator lengths not
# multiples of VEC, wide blocks and remainders, 1-D/2-D/3-D
ROW_BLOCK_CASES = {
    "convT1d_9to17": (
        "conv_transpose1d", lambda: sd.ConvTranspose(4, stride=2, padding=1, in_channels=9, out_channels=17),
        (2500,), np.float64),
    "convT2d_8to9_groups": (
        "conv_transpose2d",
        lambda: sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=8, out_channels=18, groups=2), (50, 47),
        np.float32),
    "convT3d_3to8": ("conv_transpose3d",
                     lambda: sd.ConvTranspose((4, 4, 4), stride=2, padding=1, in_channels=3, out_channels=8),
                     (13, 11, 20), np.float32),
    "conv2d_s2_5to9": ("conv2d", lambda: sd.Conv((3, 3), stride=2, padding=1, in_channels=5, out_channels=9),
                       (141, 66), np.float32),
}


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(ROW_BLOCK_CASES))
def test_row_blocks_against_torch(name):
    torch = pytest.importorskip("torch")
    fn_name, build, shape, dtype = ROW_BLOCK_CASES[name]
    layer = build()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, layer.in_channels) + shape).astype(dtype)
    w = rng.standard_normal(layer.weight_shape).astype(dtype)
    b = rng.standard_normal(layer.out_channels).astype(dtype)
    kw = dict(stride=2, padding=1, groups=layer.groups)
    expected = getattr(torch.nn.functional, fn_name)(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                                                     **kw).numpy()
    got = sd.compile(layer, "cpu")(x, w, b)
    phases = np.prod(LayerBinding(layer).plan.P)
    assert np.prod(expected.shape[2:]) / phases > ROW_TARGET  # several blocks of rows
    tol = 1e-12 if dtype == np.float64 else 1e-5
    terms = np.sqrt(layer.in_channels * np.prod(layer.kernel_size))
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * terms * (1 + np.abs(expected).max()))


def _tile_modes(layer, shape, tile=None) -> set[str]:
    """Which column tiling (``flat`` / ``row``) the wide micro-kernel picks, over the blocks and phases.

    Restates the runtime's block geometry and its rule: from 2-D on, row by row when a phase's output columns
    in a row span ≥ TILE and give fewer tiles than the block's flat columns.
    """
    plan = LayerPlan.from_kernel_plan(LayerBinding(layer).plan)
    tile = tile or rt_layout.tile_shape(4)[1]
    lo = [int(a) for a, _ in layer.window(shape)]  # first operator output position per dimension
    out = layer.output_shape(shape)
    first = [[-((p - lo[d]) // plan.P[d]) for p in range(plan.P[d])] for d in range(plan.ndim)]
    stop = [[-((p - lo[d] - out[d]) // plan.P[d]) for p in range(plan.P[d])] for d in range(plan.ndim)]
    length = [max(stop[d]) - min(first[d]) + plan.e_span[d] for d in range(plan.ndim)]
    rows = max(stop[0]) - min(first[0])  # blocks of work split the leading dimension
    s0 = int(np.prod(length[1:]))
    block_rows = max(1, ROW_TARGET // s0)
    block_rows = max(1, -(-rows // max(1, -(-rows // block_rows))))
    modes = set()
    for q0 in range(0, rows, block_rows):
        cols = min(block_rows, rows - q0) * s0
        M = -(-cols // tile) * tile
        for p in range(plan.P[-1]):
            cf = max(0, first[-1][p] - min(first[-1]))
            cs = min(length[-1] - plan.e_span[-1], stop[-1][p] - min(first[-1]))
            n_rows = cols // length[-1]
            row = plan.ndim > 1 and cs - cf >= tile and n_rows * -(-(cs - cf) // tile) < M // tile
            modes.add("row" if row else "flat")
    return modes


# (torch function, layer, input shape): rows of TILE = 64 outputs per phase, of 127 (row-exact, the last tile
# moved back), of 32, 45, 70 and 33 (flat); rows and columns without outputs of a phase (the union of the
# phases' ranges); 4 + 1 output channels (wide pass and remainder); 8 and 9 taps (two and three tap groups)
TILE_MODE_CASES = {
    "convT3d_rows_of_32": ("conv_transpose3d",
                           lambda: sd.ConvTranspose((4, 4, 4), stride=2, padding=1, in_channels=3, out_channels=5),
                           (3, 4, 32)),
    "convT3d_rows_of_45": ("conv_transpose3d",
                           lambda: sd.ConvTranspose((4, 4, 4), stride=2, padding=1, in_channels=2, out_channels=5),
                           (2, 3, 45)),
    "convT3d_rows_of_64": ("conv_transpose3d",
                           lambda: sd.ConvTranspose((4, 4, 4), stride=2, padding=1, in_channels=2, out_channels=5),
                           (2, 3, 64)),
    "convT3d_rows_of_127": ("conv_transpose3d",
                            lambda: sd.ConvTranspose((4, 4, 4), stride=2, padding=1, in_channels=2, out_channels=5),
                            (2, 2, 127)),
    "convT2d_rows_of_64": ("conv_transpose2d",
                           lambda: sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=3, out_channels=5),
                           (9, 64)),
    "convT2d_rows_of_70": ("conv_transpose2d",
                           lambda: sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=2, out_channels=5),
                           (7, 70)),
    "convT2d_rows_of_127": ("conv_transpose2d",
                            lambda: sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=2, out_channels=5),
                            (5, 127)),
    "conv2d_s2_rows_of_33": ("conv2d", lambda: sd.Conv((3, 3), stride=2, padding=1, in_channels=3, out_channels=5),
                             (12, 66)),
    "conv2d_s2_rows_of_64": ("conv2d", lambda: sd.Conv((3, 3), stride=2, padding=1, in_channels=3, out_channels=5),
                             (6, 128)),
    "convT2d_rows_of_6": ("conv_transpose2d",
                          lambda: sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=3, out_channels=5),
                          (40, 6)),
}


def test_tile_mode_cases_take_both_modes():
    """With this machine's tile and with both ISAs' float32 tiles, the cases run both column tilings."""
    for tile in (None, 16, 64):
        modes = {name: _tile_modes(build(), shape, tile) for name, (_, build, shape) in TILE_MODE_CASES.items()}
        assert set().union(*modes.values()) == {"row", "flat"}, (tile, modes)
        assert modes["convT2d_rows_of_6"] == {"flat"} and modes["convT2d_rows_of_127"] == {"row"}, modes


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(TILE_MODE_CASES))
def test_tile_modes_against_torch(name):
    torch = pytest.importorskip("torch")
    fn_name, build, shape = TILE_MODE_CASES[name]
    layer = build()
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, layer.in_channels) + shape).astype(np.float32)
    w = rng.standard_normal(layer.weight_shape).astype(np.float32)
    b = rng.standard_normal(layer.out_channels).astype(np.float32)
    expected = getattr(torch.nn.functional, fn_name)(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                                                     stride=2, padding=1).numpy()
    got = sd.compile(layer, "cpu")(x, w, b)
    terms = np.sqrt(layer.in_channels * np.prod(layer.kernel_size))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * terms * (1 + np.abs(expected).max()))


@pytest.mark.torch
def test_tile_modes_random_3d_against_torch():
    """Random 3-D transposed convolutions with rows around TILE outputs, against torch; both modes occur."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2026)
    modes = set()
    for _ in range(5):
        cin, cout = int(rng.integers(1, 5)), int(rng.choice([4, 5, 9]))
        layer = sd.ConvTranspose((4, 4, 4), stride=2, padding=1, in_channels=cin, out_channels=cout)
        # rows of TILE = 64 outputs per phase, a little fewer or more, or 127/128 (two tiles, the last moved back)
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.choice([32, 63, 64, 65, 127, 128])))
        modes |= _tile_modes(layer, shape)
        x = rng.standard_normal((int(rng.integers(1, 3)), cin) + shape).astype(np.float32)
        w = rng.standard_normal(layer.weight_shape).astype(np.float32)
        b = rng.standard_normal(cout).astype(np.float32)
        expected = torch.nn.functional.conv_transpose3d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                                                        stride=2, padding=1).numpy()
        got = sd.compile(layer, "cpu")(x, w, b)
        terms = np.sqrt(cin * 64)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * terms * (1 + np.abs(expected).max()),
                                   err_msg=f"C_in={cin}, C_out={cout}, shape={shape}")
    assert modes == {"row", "flat"}, modes
