"""The assembly micro-kernel of the GEMM-like layer path (``symdeconv.codegen.rt_asm``), which AVX2 machines run.

It is switched on per call by the driver (``machine.asm_tiles``); ``SYMDECONV_ASM_TILES=1`` runs it on any
x86-64 CPU with AVX2 and FMA, so these tests check on AVX-512 machines too the code an AVX2 machine runs.
Oracles: NumPy sums for the micro-kernel alone, the layers' definitions (NumPy, ``test_codegen_wino_path``) for
whole layers.
"""

from __future__ import annotations

import platform

import numpy as np
import pytest

import symdeconv as sd
from symdeconv.codegen import machine

from .test_codegen_wino_path import naive_conv, naive_conv_transpose

pytest.importorskip("numba")

_CAPABLE = (platform.machine().lower() in ("x86_64", "amd64") and machine.host_machine().isa in ("avx2", "avx512")
            and machine.host_machine().fma)
needs_avx2 = pytest.mark.skipif(not _CAPABLE, reason="the assembly micro-kernel needs x86-64 with AVX2 and FMA")


def test_the_switch(monkeypatch):
    """On by default only where Numba compiles for AVX2 with FMA; 0 / 1 in the environment turn it off / on
    (on only where the CPU can run it), empty leaves the default; any other value is a SymdeconvError
    naming the variable."""
    monkeypatch.delenv("SYMDECONV_ASM_TILES", raising=False)
    m = machine.host_machine()
    assert machine.asm_tiles() == (_CAPABLE and m.isa == "avx2")
    monkeypatch.setenv("SYMDECONV_ASM_TILES", "0")
    assert machine.asm_tiles() is False
    monkeypatch.setenv("SYMDECONV_ASM_TILES", "1")
    assert machine.asm_tiles() == _CAPABLE
    monkeypatch.setenv("SYMDECONV_ASM_TILES", "")  # empty: unset
    assert machine.asm_tiles() == (_CAPABLE and m.isa == "avx2")
    for bad in ("yes", "2", " 1"):
        monkeypatch.setenv("SYMDECONV_ASM_TILES", bad)
        with pytest.raises(sd.SymdeconvError, match="SYMDECONV_ASM_TILES must be 0 or 1"):
            machine.asm_tiles()


@needs_avx2
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_micro_kernel_against_numpy(dtype):
    """``tile_fma`` for 1–3 vectors at scattered, overlapping and unaligned columns, 1 or 4 taps, channel
    counts 1–37, weights of a later tap and channel block: the tile gains exactly the NumPy sum."""
    import numba

    from symdeconv.codegen.rt_asm import TAP_GROUP, TILE_VECTORS, tile_buffer
    from symdeconv.codegen.rt_layers import _tile_taps  # tile_fma with the literal counts it needs

    @numba.njit
    def run(acc, xflat, offs, w, t, co, cin_g, vecs, nv, g):
        tile = tile_buffer(acc)
        for r in range(tile.shape[0]):
            for e in range(tile.shape[1]):
                tile[r, e] = acc[r, e]
        _tile_taps(tile, xflat, offs, w, t, co, cin_g, vecs, 0, nv, g)
        for r in range(tile.shape[0]):
            for e in range(tile.shape[1]):
                acc[r, e] = tile[r, e]

    rng = np.random.default_rng(1)
    lanes = 32 // np.dtype(dtype).itemsize
    assert TILE_VECTORS == 3
    for cin_g in (1, 5, 37):
        xflat = rng.standard_normal((cin_g, 300)).astype(dtype)
        w = rng.standard_normal((7, cin_g, 11)).astype(dtype)
        offs = rng.integers(0, 60, 7)
        for nv in (1, 2, 3):
            for g in (1, TAP_GROUP):
                vecs = rng.integers(0, 200, 3)  # any columns: apart, overlapping, unaligned
                t, co = int(rng.integers(0, 7 - g + 1)), int(rng.integers(0, 11 - 4 + 1))
                start = rng.standard_normal((4, 3 * lanes)).astype(dtype)
                acc = start.copy()
                run(acc, xflat, offs, w, t, co, cin_g, vecs, nv, g)
                want = start.astype(np.float64)
                for v in range(nv):
                    for tap in range(t, t + g):
                        cols = xflat[:, offs[tap] + vecs[v]:offs[tap] + vecs[v] + lanes].astype(np.float64)
                        want[:, v * lanes:(v + 1) * lanes] += w[tap, :, co:co + 4].T.astype(np.float64) @ cols
                tol = (1e-4 if dtype == np.float32 else 1e-12) * max(1, cin_g * g)
                np.testing.assert_allclose(acc[:, :nv * lanes], want[:, :nv * lanes], rtol=tol, atol=tol)
                np.testing.assert_array_equal(acc[:, nv * lanes:], start[:, nv * lanes:])  # other vectors kept


# layer, input shape: phases of 1, 2 and 4 taps (tap groups and single taps), channels past whole blocks (the
# one-channel pass beside), groups, rows shorter and longer than a vector, 1-D / 2-D / 3-D, and a float64
# block of more vectors than one batch (VECTOR_LIST)
LAYERS = {
    "transpose k3 s2 op1": (sd.ConvTranspose((3, 3), stride=2, padding=1, output_padding=1, in_channels=12,
                                             out_channels=10), (2, 12, 9, 13)),
    "transpose k4 s2, rows of 32": (sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=32, out_channels=16),
                                    (1, 32, 16, 16)),
    "transpose k4 s2, groups": (sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=16, out_channels=24,
                                                 groups=2), (2, 16, 5, 7)),
    "transpose 1-D k5 s3": (sd.ConvTranspose((5,), stride=3, padding=2, in_channels=6, out_channels=9), (2, 6, 50)),
    "transpose 3-D k2 s2": (sd.ConvTranspose((2, 2, 2), stride=2, in_channels=8, out_channels=8), (1, 8, 5, 6, 7)),
    "conv k3 p1": (sd.Conv((3, 3), stride=1, padding=1, in_channels=20, out_channels=12), (2, 20, 11, 3)),
    "transpose k4 s2, wide rows": (sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=8, out_channels=8),
                                   (1, 8, 40, 64)),
    "transpose 1-D, long blocks": (sd.ConvTranspose((4,), stride=2, padding=1, in_channels=8, out_channels=8),
                                   (1, 8, 4000)),
}


def _oracle(layer, x, w, b):
    if isinstance(layer, sd.ConvTranspose):
        return naive_conv_transpose(x, w, b, layer.stride[0], layer.padding[0], layer.output_padding[0], layer.groups)
    return naive_conv(x, w, b, layer.padding[0], layer.groups)


@needs_avx2
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layers_on_the_assembly_micro_kernel(name, dtype, monkeypatch):
    """Whole layers with the assembly micro-kernel switched on, against their definitions (the geometry of
    the call carries the switch; a broken kernel fails every case here).  The long 1-D blocks in float64
    hold more column vectors per phase than one batch of VECTOR_LIST."""
    from symdeconv.codegen import rt_driver

    monkeypatch.setenv("SYMDECONV_ASM_TILES", "1")
    layer, shape = LAYERS[name]
    rng = np.random.default_rng(len(name))
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(layer.weight_shape).astype(dtype)
    b = rng.standard_normal(layer.out_channels).astype(dtype)
    f = sd.compile(layer, "cpu")
    got = f(x, w, b)
    want = _oracle(layer, x, w, b)
    tol = 2e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(layer.in_channels * np.prod(layer.kernel_size)))
    from symdeconv.codegen.rt_layers import VECTOR_LIST
    from symdeconv.codegen.rt_layout import tile_shape

    tile = tile_shape(x.itemsize)[1]
    geometry, _, _, _, m_max = rt_driver._geometry(f.module.PLAN, x.shape, got.shape, layer.groups,
                                                   (0,) * (x.ndim - 2), tile, x.itemsize)
    assert geometry[rt_driver.G_FIELDS["asm"]] == 1
    if name == "transpose 1-D, long blocks" and dtype == np.float64:
        assert m_max // (32 // x.itemsize) > VECTOR_LIST


@needs_avx2
@pytest.mark.parametrize("seed", range(3))
def test_random_layers_on_the_assembly_micro_kernel(seed, monkeypatch):
    """Random transposed and strided 1-D / 2-D layers (kernel, stride, padding, output padding, groups,
    channel counts, input sizes down to one sample) with the assembly micro-kernel, against their
    definitions."""
    monkeypatch.setenv("SYMDECONV_ASM_TILES", "1")
    rng = np.random.default_rng(500 + seed)
    for _ in range(4):
        D = int(rng.integers(1, 3))
        groups = int(rng.choice([1, 2]))
        cin, cout = groups * int(rng.integers(2, 13)), groups * int(rng.integers(1, 11))
        k = int(rng.integers(1, 6))
        stride = int(rng.integers(1, 4))
        padding = int(rng.integers(0, k))
        output_padding = int(rng.integers(0, stride))
        layer = sd.ConvTranspose((k,) * D, stride=stride, padding=padding, output_padding=output_padding,
                                 in_channels=cin, out_channels=cout, groups=groups)
        n = tuple(int(v) for v in rng.integers(max(1, padding), 24, D))
        if any(s <= 0 for s in layer.output_shape(n)):
            continue
        x = rng.standard_normal((int(rng.integers(1, 3)), cin) + n).astype(np.float32)
        w = rng.standard_normal(layer.weight_shape).astype(np.float32)
        b = rng.standard_normal(cout).astype(np.float32)
        got = sd.compile(layer, "cpu")(x, w, b)
        want = naive_conv_transpose(x, w, b, stride, padding, output_padding, groups)
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * np.sqrt(cin * k ** D), err_msg=str(layer))


# 3-D layers on the Winograd path: last-dimension taps per phase (nx) 2, 5 (two pairs, the second adding to the
# first, then one tap), 1 and 3; column blocks of several VEC groups and a short last row block
WINO_LAYERS = {
    "transpose k4 s2 p1": (sd.ConvTranspose((4, 4, 4), stride=2, padding=1, in_channels=16, out_channels=16),
                           (1, 16, 7, 6, 37)),
    "transpose k6 s3 p2": (sd.ConvTranspose((6, 6, 6), stride=3, padding=2, in_channels=16, out_channels=8),
                           (2, 16, 4, 5, 9)),
    "conv k(2, 2, 5) p1": (sd.Conv((2, 2, 5), padding=1, in_channels=16, out_channels=8), (1, 16, 6, 7, 40)),
    "conv k(2, 2, 1)": (sd.Conv((2, 2, 1), in_channels=16, out_channels=12), (2, 16, 5, 4, 3)),
    "conv k(2, 2, 3) p1, groups": (sd.Conv((2, 2, 3), padding=1, in_channels=32, out_channels=8, groups=2),
                                   (1, 32, 4, 4, 70)),
}


@needs_avx2
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(WINO_LAYERS))
def test_winograd_layers_on_the_assembly_products(name, dtype, monkeypatch):
    """The Winograd path with its products by the assembly kernel (``rt_asm.wino_fma``: tiles of three and
    two vectors, taps in pairs and alone), against the layers' definitions; the call's geometry carries the
    switch.  Its sums are those of the Numba kernel, in the same order: the results are equal bit for bit."""
    from symdeconv.codegen.layer_plan import choose_strategy
    from symdeconv.codegen.rt_layout import W_ASM

    monkeypatch.setenv("SYMDECONV_ASM_TILES", "1")
    layer, shape = WINO_LAYERS[name]
    f = sd.compile(layer, "cpu")
    groups = layer.groups
    assert choose_strategy(f.module.PLAN, layer.in_channels // groups, layer.out_channels // groups).path == "winograd"
    rng = np.random.default_rng(len(name))
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(layer.weight_shape).astype(dtype)
    b = rng.standard_normal(layer.out_channels).astype(dtype)
    f.__dict__.pop("_local", None)  # (no geometry kept from an earlier test: the switch is read with it)
    got = f(x, w, b)
    if isinstance(layer, sd.ConvTranspose):
        want = naive_conv_transpose(x, w, b, layer.stride[0], layer.padding[0], layer.output_padding[0], groups)
    else:
        want = naive_conv(x, w, b, layer.padding[0], groups)
    tol = 2e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(layer.in_channels * np.prod(layer.kernel_size)))
    def switch():  # the call's Winograd geometry: g[W_ASM]
        (state,) = [v for key, v in f._scratches(f.module)[0].items() if key[0] == "wino"]
        return state[2][W_ASM]

    assert switch() == 1
    monkeypatch.setenv("SYMDECONV_ASM_TILES", "0")  # the Numba kernel: the same sums, in the same order
    f.__dict__.pop("_local", None)
    np.testing.assert_array_equal(f(x, w, b), got)
    assert switch() == 0


@needs_avx2
def test_layers_compiled_for_avx2(tmp_path):
    """The whole runtime compiled for an AVX2 CPU (Numba's target set to Haswell, as on the AVX2-only
    machines this project runs on), in a new process: the register tiles of that ISA, the assembly kernels
    on by default (GEMM-like and Winograd), a stencil, against the layers' definitions (float32)."""
    import json
    import os
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import json, sys
        import numpy as np
        import symdeconv as sd
        from symdeconv.codegen import machine
        from tests.test_codegen_wino_path import naive_conv_transpose

        rng = np.random.default_rng(3)
        errors = {"isa": machine.host_machine().isa, "asm": machine.asm_tiles()}
        for name, (ci, co, groups, n) in {"gemm": (24, 20, 1, (9, 14)), "grouped": (16, 24, 2, (6, 5)),
                                           "stencil": (4, 4, 4, (11, 30))}.items():
            layer = sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=ci, out_channels=co, groups=groups)
            x = rng.standard_normal((2, ci) + n).astype(np.float32)
            w = rng.standard_normal(layer.weight_shape).astype(np.float32)
            b = rng.standard_normal(co).astype(np.float32)
            got = sd.compile(layer, "cpu")(x, w, b)
            errors[name] = float(np.abs(got - naive_conv_transpose(x, w, b, 2, 1, 0, groups)).max())
        layer = sd.ConvTranspose((4, 4, 4), stride=2, padding=1, in_channels=16, out_channels=8)  # Winograd
        x = rng.standard_normal((1, 16, 5, 4, 30)).astype(np.float32)
        w = rng.standard_normal(layer.weight_shape).astype(np.float32)
        b = rng.standard_normal(8).astype(np.float32)
        f = sd.compile(layer, "cpu")
        from symdeconv.codegen.layer_plan import choose_strategy
        assert choose_strategy(f.module.PLAN, 16, 8).path == "winograd"
        errors["winograd"] = float(np.abs(f(x, w, b) - naive_conv_transpose(x, w, b, 2, 1)).max())
        print(json.dumps(errors))
        """)
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES="+avx2,+fma",
               SYMDECONV_CACHE_DIR=str(tmp_path), SYMDECONV_RUNTIME_CALLS="0")
    env.pop("SYMDECONV_ASM_TILES", None)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result.pop("isa"), result.pop("asm")) == ("avx2", True)
    assert max(result.values()) < 1e-3, result
