"""CUDA kernels: run in the CUDA simulator (or on a GPU when there is one), and compiled to PTX for real.

The simulator executes kernels as Python, so it does not type-check them as Numba's CUDA target
does; every emitted CUDA module is therefore also compiled with ``cuda.compile_ptx(..., cc=(8, 0))`` in
a separate process with the simulator off.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symdeconv as sd
from symdeconv.codegen import catalogue
from symdeconv.verify.check import check_chain

pytest.importorskip("numba")

REPO = Path(__file__).resolve().parents[1]
a, b = sp.symbols("a b")


def _cuda_runs() -> bool:
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return True
    from numba import cuda

    return cuda.is_available()


needs_cuda = pytest.mark.skipif(not _cuda_runs(), reason="neither the CUDA simulator nor a GPU is available")

CHAINS = {
    "hold_then_conv": lambda: sd.conv(sd.taps("q", 3)) @ sd.hold(2),
    "resampler_up3_down2": lambda: sd.upfirdn(sd.taps("h", 5), 3, 2),
    "strided": lambda: sd.strided_conv((1, a, 2), 2),
    "bilinear_2d": lambda: sd.shift((-1, -1)) @ sd.conv([[1, 3, 3, 1], [3, 9, 9, 3], [3, 9, 9, 3], [1, 3, 3, 1]]) @ sd.up((2, 2)),
    "channel_mixing": lambda: sd.channel_conv([[[1, 2], [a, 0]], [[0, 1], [3, 4]], [[1, 1], [1, b]]]) @ sd.up(2, 2),
    "conv_3d": lambda: sd.conv([[[1, 2], [3, 4]], [[5, 6], [7, a]]]) @ sd.up((2, 1, 2)),
}
SIZES = {1: (1, 4), 2: ((1, 1), (3, 2)), 3: ((2, 1, 2),)}


@needs_cuda
@pytest.mark.parametrize("name", sorted(CHAINS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cuda_chain_kernel_equals_matrix(name, dtype):
    op = CHAINS[name]()
    f = sd.compile(op, "cuda")
    result = check_chain(f, op, SIZES[op.ndim], dtype, rng=np.random.default_rng(11))
    assert result.ok, result.row()


@needs_cuda
def test_cuda_and_cpu_agree_on_a_batch_larger_than_one_block():
    op = sd.upfirdn(sd.taps("h", 6), 2, 3)
    x = np.random.default_rng(2).standard_normal((5, 40))
    h = np.linspace(-1, 1, 6)
    np.testing.assert_allclose(sd.compile(op, "cuda")(x, h), sd.compile(op, "cpu")(x, h), atol=1e-12)


@needs_cuda
def test_cuda_bad_input_is_a_symdeconv_error():
    f = sd.compile(sd.conv((1, 2)) @ sd.up(2), "cuda")
    with pytest.raises(sd.SymdeconvError, match="dtype float32 or float64"):
        f(np.zeros(4, dtype=np.int32))
    x = np.arange(8.0)
    np.testing.assert_array_equal(f(x[::2]), f(np.ascontiguousarray(x[::2])))  # a strided view is copied


def test_cuda_source_is_tiled_with_a_simple_fallback_and_a_launcher():
    src = sd.emit(sd.transposed_conv((1, 3, 3, 1), 2), "cuda")
    assert "@cuda.jit(cache=True)" in src and "def launch(" in src and "atomic" not in src
    assert 'STRATEGY = "tiled"' in src and "cuda.syncthreads()" in src
    # the simple kernel (small planes) keeps one thread per output, bounds check first
    assert "def kernel_simple(" in src and "cuda.grid(2)" in src
    assert "if t0 >= out0:" in src
    src3 = sd.emit(CHAINS["conv_3d"](), "cuda")
    assert 'STRATEGY = "simple"' in src3 and "if t2 >= out2:" in src3 and "cuda.shared" not in src3


def _without_simulator(args: list[str]) -> subprocess.CompletedProcess:
    """``python args…`` in a process with the CUDA simulator off (PTX needs Numba's real CUDA target);
    the test is skipped where NVVM is missing."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=600)
    if "NvvmSupportError" in out.stdout + out.stderr or "libNVVM cannot be found" in out.stdout + out.stderr:
        pytest.skip("NVVM (numba-cuda[cu13]) is not installed")
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def _check_ptx(paths: list[Path]) -> None:
    out = _without_simulator(["-m", "symdeconv.verify.ptx", *map(str, paths)])
    assert out.stdout.count("ok ") == len(paths)


def test_committed_cuda_kernels_compile_to_ptx():
    """Numba's real CUDA pipeline (type inference + NVVM) accepts every kernel of the catalogue, f32 and f64."""
    pytest.importorskip("numba.cuda")
    paths = sorted((REPO / "generated" / "cuda").glob("*.py"))
    assert paths, "the committed catalogue has CUDA kernels"
    _check_ptx(paths)


def test_every_emitter_path_compiles_to_ptx(tmp_path):
    """Tiled chains (multi-channel, symbolic taps, 2-D), small tiles, and the simple-only fallbacks."""
    pytest.importorskip("numba.cuda")
    from symdeconv.codegen.api import plan as make_plan
    from symdeconv.codegen.emit_cuda import emit_cuda

    emitted = {name: sd.emit(CHAINS[name](), "cuda") for name in ("channel_mixing", "conv_3d", "strided", "bilinear_2d")}
    small = sd.ConvTranspose((3, 3), stride=2, padding=1, output_padding=1, in_channels=2, out_channels=1)
    emitted["small_tile_2d_rows2"] = emit_cuda(make_plan(small), tile=(4, 4), rows=2)
    emitted["small_tile_2d_rows1"] = emit_cuda(make_plan(small), tile=(2, 4), rows=1)
    emitted["small_tile_chain_1d"] = emit_cuda(make_plan(CHAINS["resampler_up3_down2"]()), tile=(4,))
    emitted["huge_halo"] = sd.emit(sd.Conv(3, stride=1, padding=0, dilation=3000), "cuda")
    assert 'STRATEGY = "simple"' in emitted["huge_halo"] and 'STRATEGY = "simple"' in emitted["conv_3d"]
    paths = []
    for name, src in emitted.items():
        path = tmp_path / f"{name}.py"
        path.write_text(src)
        paths.append(path)
    _check_ptx(paths)


def _plan_literal(source: str) -> list[str]:
    """The lines of a module's ``PLAN = LayerPlan(...)`` literal, from its leading comment to its ``)``."""
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# The normal form as data"))
    return lines[start:lines.index(")", start) + 1]


def test_cuda_layer_modules_are_written_from_the_layer_plan():
    """Every CUDA layer module of the catalogue holds its LayerPlan as the CPU module does (the same literal
    text but for the CPU module's own paths), and what its kernels read is that plan's: periods, slot count,
    the slot numbers its tap loops use, and (tiled) the tap extents LOW / HIGH."""
    from symdeconv.codegen.api import plan as make_plan
    from symdeconv.codegen.cache import load_module
    from symdeconv.codegen.layer_plan import LayerPlan

    layers = [e for e in catalogue.entries() if make_plan(e.obj(), e.name).kind == "grouped"]
    assert len(layers) == 6
    for entry in layers:
        p = make_plan(entry.obj(), entry.name)
        cuda_src = (REPO / "generated" / "cuda" / f"{entry.name}.py").read_text()
        cpu_lines = _plan_literal((REPO / "generated" / "cpu" / f"{entry.name}.py").read_text())
        cuda_lines = _plan_literal(cuda_src)
        assert [line for line in cuda_lines if "paths=" not in line] == [line for line in cpu_lines if "paths=" not in line]
        assert "    paths=('gemm',)," in cuda_lines
        module = load_module(REPO / "generated" / "cuda" / f"{entry.name}.py")
        lp = module.PLAN
        assert lp == LayerPlan.from_kernel_plan(p)
        assert (module.P, module.Q, module.N_SLOTS) == (lp.P, lp.Q, lp.n_slots)
        used = {int(s) for s in re.findall(r"\bw(?:_tile)?\[(\d+), (?:k|ci, co)\]", cuda_src)}
        assert used == set(range(lp.n_slots)), entry.name
        if module.STRATEGY == "tiled":
            offsets = [off for ph in lp.phases for off in ph.offsets]
            assert module.LOW == tuple(map(min, zip(*offsets))) and module.HIGH == tuple(map(max, zip(*offsets)))


def test_cuda_emitter_reads_the_layer_plan():
    """The grouped code path goes through LayerPlan: the plan it rebuilds from it is the plan it was given,
    and slots not numbered phase by phase (which LayerPlan refuses) are refused by the CUDA emitter too."""
    import dataclasses

    from symdeconv.codegen.api import plan as make_plan
    from symdeconv.codegen.emit_cuda import emit_cuda, layer_view

    p = make_plan(sd.ConvTranspose((3, 3), stride=2, padding=1, output_padding=1, in_channels=2, out_channels=2))
    view, lp = layer_view(p)
    assert view == p and lp.n_slots == p.n_slots and [ph.phase for ph in lp.phases] == [ph.phase for ph in p.phases]
    first, second = p.phases[0], p.phases[1]
    swapped = dataclasses.replace(p, phases=(dataclasses.replace(first, slots=second.slots),
                                             dataclasses.replace(second, slots=first.slots)) + p.phases[2:])
    with pytest.raises(ValueError, match="numbers its slots phase by phase"):
        emit_cuda(swapped)
    chain = sd.emit(CHAINS["channel_mixing"](), "cuda")
    assert "PLAN" not in chain and "layer_plan" not in chain  # chain modules are unchanged


#: run with the simulator off: the float64 instructions in the float32 PTX of each named kernel, and the
#: float32 arithmetic found there (to show the pattern sees the floating-point instructions at all)
_F64_SCRIPT = """
import json, re, sys
from symdeconv.verify.ptx import compile_module_ptx
out = {}
for path, kernel in zip(sys.argv[1::2], sys.argv[2::2]):
    ptx = compile_module_ptx(path, ("float32",))[kernel + " float32"]
    ops = re.findall(r"^\\s*([a-z]+(?:\\.[a-z0-9]+)*)", ptx, re.M)
    out[path + " " + kernel] = ([op for op in ops if ".f64" in op], sorted({op for op in ops if op.endswith(".f32")}))
print(json.dumps(out))
"""


def test_layer_simple_kernels_accumulate_float32_data_in_float32():
    """kernel_simple (beside a tiled kernel) and the simple-only kernel of a layer module, compiled to PTX for
    float32 arguments: no float64 instruction at all (a float64 accumulator would add in float64, 1/32 or
    1/64 of the float32 rate on consumer GPUs, and convert every product to float64 and back)."""
    pytest.importorskip("numba.cuda")
    kernels = [("conv_transpose2d_k4_s2_p1", "kernel_simple"), ("conv_transpose3d_k4_s2_p1", "kernel"),
               ("conv2d_k3_s2_p1", "kernel_simple")]
    args = [a for name, kernel in kernels for a in (str(REPO / "generated" / "cuda" / f"{name}.py"), kernel)]
    found = json.loads(_without_simulator(["-c", _F64_SCRIPT, *args]).stdout.strip().splitlines()[-1])
    assert len(found) == len(kernels)
    for where, (f64, f32) in found.items():
        assert f64 == [], f"{where}: float64 instructions in the float32 kernel: {sorted(set(f64))}"
        assert any(op.startswith(("fma.", "add.")) for op in f32), f"{where}: no float32 accumulation found ({f32})"


def test_catalogue_has_cuda_files_for_every_entry():
    names = {e.name for e in catalogue.entries()}
    assert names <= {p.stem for p in (REPO / "generated" / "cuda").glob("*.py")}


@needs_cuda
def test_device_arrays_in_give_device_arrays_out():
    """x already on the device (anything with __cuda_array_interface__): the result is a device array (no
    copy back to the host), equal to the host path's; weights and bias may be host or device arrays; out=
    takes a device array; bad device input gets a SymdeconvError."""
    from numba import cuda

    from symdeconv.codegen.api import is_device_array

    rng = np.random.default_rng(4)
    layer = sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=2, out_channels=3)
    f = sd.compile(layer, "cuda")
    x = rng.standard_normal((1, 2, 3, 2)).astype(np.float32)
    w = rng.standard_normal(layer.weight_shape).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    M = np.array(layer.matrix((3, 2), weight=w).tolist(), float)
    expected = (M @ x.reshape(-1)).reshape(1, 3, 6, 4) + b.reshape(1, 3, 1, 1)
    np.testing.assert_allclose(f(x, w, b), expected, rtol=1e-5, atol=1e-5)
    y = f(cuda.to_device(x), w, b)
    assert not isinstance(y, np.ndarray) and is_device_array(y)
    np.testing.assert_allclose(y.copy_to_host(), expected, rtol=1e-5, atol=1e-5)
    d_out = cuda.device_array((1, 3, 6, 4), dtype=np.float32)
    got = f(cuda.to_device(x), cuda.to_device(w), cuda.to_device(b), out=d_out)
    assert is_device_array(got)
    np.testing.assert_allclose(d_out.copy_to_host(), expected, rtol=1e-5, atol=1e-5)
    unbatched = f(cuda.to_device(x[0]), w, b)
    np.testing.assert_allclose(unbatched.copy_to_host(), expected[0], rtol=1e-5, atol=1e-5)
    d_x = cuda.to_device(x)
    with pytest.raises(sd.SymdeconvError, match="must not overlap the input"):
        sd.compile(sd.Conv((3, 3), stride=1, padding=1, in_channels=2, out_channels=2), "cuda")(
            d_x, np.ones((2, 2, 3, 3), np.float32), out=d_x)
    with pytest.raises(sd.SymdeconvError, match="out must be a device array"):
        f(cuda.to_device(x), w, b, out=np.empty((1, 3, 6, 4), np.float32))
    for bad, match in [  # the host's out= messages (one check serves both)
        (cuda.device_array((1, 3, 6, 5), dtype=np.float32), r"out must have shape \(1, 3, 6, 4\) \(the output's\)"),
        (cuda.device_array((1, 3, 6, 4), dtype=np.float64), "out has dtype float64 but the output is float32"),
    ]:
        with pytest.raises(sd.SymdeconvError, match=match):
            f(cuda.to_device(x), w, b, out=bad)
        with pytest.raises(sd.SymdeconvError, match=match):
            f(x, w, b, out=np.empty(bad.shape, bad.dtype))
    with pytest.raises(sd.SymdeconvError, match="dtype float32 or float64"):
        f(cuda.to_device(x.astype(np.int32)), w, b)
    chain = sd.compile(sd.conv((1.0, 2.0, 1.0)) @ sd.up(2), "cuda")
    xs = rng.standard_normal(5)
    ys = chain(cuda.to_device(xs))
    assert is_device_array(ys)
    np.testing.assert_allclose(ys.copy_to_host(), np.convolve(np.stack([xs, np.zeros(5)], 1).reshape(-1),
                                                              [1.0, 2.0, 1.0]), rtol=1e-12)
