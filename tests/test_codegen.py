"""CPU kernels emitted from the normal form, checked against independent oracles.

Oracles: the operator's SymPy matrix (``op.matrix``, built from sparse products of the primitives, not
from the normal form), naive NumPy definitions (tests/helpers.py) and the reference vectors of ``tests/data/public.json`` (copied
from outside the project).  Numba compiles each kernel structure once per dtype; the session shares one cache.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symdeconv as sd
from symdeconv.codegen import cache
from symdeconv.codegen.plan import plan_chain
from symdeconv.verify.check import check_chain

from .helpers import np_upfirdn

pytest.importorskip("numba")

q = sd.taps("q", 3)
a, b = sp.symbols("a b")

CHAINS = {
    "hold_then_conv": lambda: sd.conv(q) @ sd.hold(2),
    "transposed_conv_k4_s2": lambda: sd.transposed_conv(sd.taps("h", 4), 2),
    "resampler_up3_down2": lambda: sd.upfirdn(sd.taps("h", 5), 3, 2),
    "down2_conv121_up3": lambda: sd.down(2) @ sd.conv((1, 2, 1)) @ sd.up(3),
    "strided_conv": lambda: sd.strided_conv(q, 2),
    "dilated_conv": lambda: sd.dilated_conv(q, 2),
    "shift_advance": lambda: sd.shift(-1) @ sd.conv(q),
    "up_down_keeps_evens": lambda: sd.up(2) @ sd.down(2),
    "products_of_symbols": lambda: sd.conv((a, b)) @ sd.conv((1, a)) @ sd.up(2),
    "linear_interp": lambda: sd.linear_interp(3),
    "bilinear_2d": lambda: sd.shift((-1, -1)) @ sd.conv([[1, 3, 3, 1], [3, 9, 9, 3], [3, 9, 9, 3], [1, 3, 3, 1]]) @ sd.up((2, 2)),
    "anisotropic_2d": lambda: sd.down((1, 2)) @ sd.conv([[a, 1, 2], [b, 0, -1]]) @ sd.up((3, 1)),
    "pixel_shuffle_after_conv": lambda: sd.pixel_shuffle(2, 1) @ sd.channel_conv([[[a, 2]], [[3, b]]]),
    "channel_mixing": lambda: sd.channel_conv([[[1, 2], [a, 0]], [[0, 1], [3, 4]], [[1, 1], [1, b]]]) @ sd.up(2, 2),
    "conv_3d": lambda: sd.conv([[[1, 2], [3, 4]], [[5, 6], [7, a]]]) @ sd.up((2, 1, 2)),
}

SIZES = {1: (1, 2, 5), 2: ((1, 1), (2, 3), (3, 2)), 3: ((1, 1, 1), (2, 2, 2))}


@pytest.mark.parametrize("name", sorted(CHAINS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_chain_kernel_equals_matrix(name, dtype):
    op = CHAINS[name]()
    f = sd.compile(op, "cpu")
    result = check_chain(f, op, SIZES[op.ndim], dtype, rng=np.random.default_rng(7))
    assert result.ok, result.row()
    assert result.basis_vectors > 0


def test_matches_shared_reference_vector(shared_vectors):
    ref = shared_vectors["hold_then_conv_equals_transposed_conv"]
    f = sd.compile(sd.conv(q) @ sd.hold(ref["up"]), "cpu")
    y = f(np.array(ref["x"], dtype=np.float64), ref["q"])
    np.testing.assert_array_equal(y, ref["y_full"])
    g = sd.compile(sd.transposed_conv(sd.taps("h", 4), 2), "cpu")
    np.testing.assert_array_equal(g(np.array(ref["x"], float), ref["h_equals_convolve_11_q"])[: len(ref["y_full"])], ref["y_full"])


def test_resampler_matches_scipy_definition(shared_vectors):
    for case in shared_vectors["scipy_upfirdn"]["cases"]:
        h, x, L, M = case["h"], np.array(case["x"], float), case["up"], case["down"]
        f = sd.compile(sd.upfirdn(sd.taps("h", len(h)), L, M), "cpu")
        y = f(x, h)
        expect = np.array(case["y"])
        np.testing.assert_allclose(y[: len(expect)], expect, atol=1e-12)
        assert not np.any(y[len(expect):]), "beyond scipy's length the natural window holds only zeros"


def test_resampler_matches_naive_numpy_on_long_signal():
    rng = np.random.default_rng(3)
    h = rng.standard_normal(7)
    x = rng.standard_normal((3, 101))  # leading axis: batch
    f = sd.compile(sd.upfirdn(sd.taps("h", 7), 3, 2), "cpu")
    y = f(x, h)
    for row, out in zip(x, y):
        expect = np_upfirdn(h, row, 3, 2)
        np.testing.assert_allclose(out[: len(expect)], expect, atol=1e-12)


def test_leading_axes_are_batch():
    op = sd.shift((-1, -1)) @ sd.conv([[1, 2], [3, 4]]) @ sd.up((2, 2))
    f = sd.compile(op, "cpu")
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    y = f(x)
    for i in range(2):
        for j in range(3):
            np.testing.assert_array_equal(y[i, j], f(np.ascontiguousarray(x[i, j])))
    M = np.array(op.matrix((4, 5)).tolist(), float)
    np.testing.assert_allclose(y[1, 2].reshape(-1), M @ x[1, 2].reshape(-1), atol=1e-12)


def test_weights_by_mapping_and_by_order_agree():
    f = sd.compile(sd.conv(q) @ sd.hold(2), "cpu")
    x = np.arange(5.0)
    by_order = f(x, [1.0, -2.0, 0.5])
    by_map = f(x, {q[2]: 0.5, "q0": 1.0, q[1]: -2.0})
    np.testing.assert_array_equal(by_order, by_map)
    assert [s.name for s in f.symbols] == ["q0", "q1", "q2"]


# --- the kernel source ----------------------------------------------------------------------------------


def test_emission_is_deterministic_and_names_its_normal_form():
    op = sd.upfirdn(sd.taps("h", 5), 3, 2)
    src = sd.emit(op, "cpu")
    assert src == sd.emit(sd.upfirdn(sd.taps("h", 5), 3, 2), "cpu")
    assert "DO NOT EDIT" in src and "generated by symdeconv" in src
    for line in str(sd.canonical(op)).splitlines():
        assert line in src
    compile(src, "<emitted>", "exec")  # valid Python


def test_every_multiplication_is_a_real_tap():
    """Each phase's code has exactly the normal form's taps — none by an inserted zero."""
    op = sd.transposed_conv((1, 3, 3, 1), 2)
    nf = sd.canonical(op)
    for target in ("cpu", "cuda"):
        src = sd.emit(op, target)
        products = [line for line in src.splitlines() if line.strip().startswith("acc +=")]
        assert len(products) == nf.n_taps() == 4  # 8 products of ↑2-then-conv, half of them by zeros
        assert "0.0 *" not in src


def test_numeric_taps_are_baked_and_symbolic_taps_are_runtime():
    src = sd.emit(sd.shift(-1) @ sd.conv(sd.bilinear_kernel(4)) @ sd.up(2), "cpu")
    assert "0.75 * x[" in src and "0.25 * x[" in src and "c[" not in src.split("def kernel")[1]
    plan = plan_chain(sd.conv((a, 2 * a, b)) @ sd.up(2))
    assert plan.symbols == ("a", "b")
    src2 = sd.emit(sd.conv((a, 2 * a, b)) @ sd.up(2), "cpu")
    assert re.search(r"c\[\d\] = 2.0 \* w\[0\]  # 2.0·a", src2)


def test_structure_only_plans_share_a_file():
    """Chains with the same normal form get the same cache key, whatever expression built them."""
    p1 = plan_chain(sd.conv(q) @ sd.hold(2))
    p2 = plan_chain(sd.conv(sd.convolve((1, 1), q)) @ sd.up(2))
    assert p1.key("cpu") == p2.key("cpu") and p1.key("cpu") != p1.key("cuda")


# --- array-likes and strided views ---------------------------------------------------------------------------


def test_lists_scalars_and_strided_views_are_taken_as_numpy_takes_them():
    """A strided view gives what its contiguous copy gives; a list is an array (integers become float64)."""
    f = sd.compile(sd.conv(q) @ sd.hold(2), "cpu")
    base = np.arange(24.0).reshape(3, 8)
    np.testing.assert_array_equal(f(base[:, ::2], [1, 2, 3]), f(np.ascontiguousarray(base[:, ::2]), [1, 2, 3]))
    np.testing.assert_array_equal(f(base.T, (1, 2, 3)), f(np.ascontiguousarray(base.T), np.array([1.0, 2, 3])))
    got = f([1, 2, 3], [1, 2, 3])
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, f(np.array([1.0, 2.0, 3.0]), [1, 2, 3]))


# --- bad input ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def f_sym():
    return sd.compile(sd.conv(q) @ sd.hold(2), "cpu")


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.arange(4), [1, 2, 3]), "dtype float32 or float64"),
        ((np.float64(1.0), [1, 2, 3]), "at least 1 axes"),
        (([[1.0], [2.0, 3.0]], [1, 2, 3]), "array-like of numbers"),
        ((np.zeros(4, np.complex128), [1, 2, 3]), "dtype float32 or float64"),
        ((np.zeros(0), [1, 2, 3]), "at least one sample"),
        ((np.zeros(4),), "symbolic taps"),
        ((np.zeros(4), [1, 2]), "3 real numbers"),
        ((np.zeros(4), {"q0": 1, "q1": 2}), "no value for symbol q2"),
        ((np.zeros(4), {"q0": 1, "q1": 2, "q2": 3, "z": 1}), "unknown symbol"),
    ],
)
def test_bad_input_to_compiled_chain(f_sym, args, match):
    with pytest.raises(sd.SymdeconvError, match=match):
        f_sym(*args)


def test_bad_input_multichannel():
    f = sd.compile(sd.channel_conv([[[1, 2], [3, 4]], [[0, 1], [1, 0]], [[1, 1], [1, 1]]]), "cpu")
    with pytest.raises(sd.SymdeconvError, match="3 channels .* expects 2"):
        f(np.zeros((4, 3, 5)))
    with pytest.raises(sd.SymdeconvError, match="at least 2 axes"):
        f(np.zeros(5))
    with pytest.raises(sd.SymdeconvError, match="numeric taps only"):
        f(np.zeros((2, 5)), [1.0])
    assert f(np.zeros((2, 5))).shape == (3, 6)


def test_bad_arguments_to_emit_and_compile():
    with pytest.raises(sd.SymdeconvError, match="target must be one of"):
        sd.emit(sd.up(2), "gpu")
    with pytest.raises(sd.SymdeconvError, match="sd.compile: obj must be a symdeconv operator"):
        sd.compile("conv(1,2)", "cpu")
    with pytest.raises(sd.SymdeconvError, match="not a polynomial"):
        sd.emit(sd.conv((1 / a, 1)), "cpu")
    with pytest.raises(sd.SymdeconvError, match="complex"):
        sd.emit(sd.conv((1 + 2 * sp.I, 1)), "cpu")


# --- the cache --------------------------------------------------------------------------------------------


def test_cache_folder_honours_env_and_files_are_real(monkeypatch, tmp_path):
    monkeypatch.setenv("SYMDECONV_CACHE_DIR", str(tmp_path / "kc"))
    assert cache.cache_dir() == tmp_path / "kc"
    monkeypatch.delenv("SYMDECONV_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "symdeconv"


def test_compiled_kernel_lives_in_the_cache_and_numba_caches_it():
    f = sd.compile(sd.conv(q) @ sd.hold(2), "cpu")
    f(np.arange(3.0), [1, 2, 3])
    path = Path(f.path)
    assert path.is_file() and path.read_text() == f.source
    assert Path(os.environ["SYMDECONV_CACHE_DIR"]) in path.parents
    assert list((path.parent / "__pycache__").glob(f"{path.stem}.kernel-*.nbi")), "numba cache index written"


def test_atomic_writes_under_concurrency(tmp_path):
    target = tmp_path / "k.py"
    text = "x = 1\n" * 20000
    errors = []

    def writer():
        try:
            for _ in range(20):
                cache.write_atomic(target, text)
                assert target.read_text() == text
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert target.read_text() == text
    assert not [p for p in tmp_path.iterdir() if p.name != "k.py"], "no temporary files left behind"
    mtime = target.stat().st_mtime_ns
    assert cache.write_atomic(target, text) is False and target.stat().st_mtime_ns == mtime


def test_two_processes_compiling_the_same_kernel(tmp_path):
    code = (
        "import numpy as np, symdeconv as sd\n"
        "f = sd.compile(sd.conv((1, 2, 3)) @ sd.up(2), 'cpu')\n"
        "print(f(np.arange(4.0)).tolist())\n"
    )
    env = {**os.environ, "SYMDECONV_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(Path(sd.__file__).parents[1])}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    x_up = np.zeros(8)
    x_up[::2] = np.arange(4.0)
    expect = np.convolve(x_up, [1, 2, 3])
    assert outs[0] == outs[1] == f"{expect.tolist()}\n"
    assert len(list((tmp_path / "cpu").glob("*.py"))) == 1


def test_import_symdeconv_does_not_import_numba():
    code = "import sys, symdeconv as sd; sd.emit(sd.up(2), 'cpu'); print('numba' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(Path(sd.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
