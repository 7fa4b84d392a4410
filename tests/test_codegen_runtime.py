"""The run-time helpers of emitted CPU kernels (symdeconv.codegen.runtime, ._alloc), against NumPy."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from symdeconv.codegen._alloc import aligned_empty
from symdeconv.codegen.rt_driver import GATHER_PARALLEL_MIN, gather_strided  # noqa: E402
from symdeconv.codegen.runtime import (
    copy_even,
    LINE_BYTES, line_head, stack_tile, store_fence, stream_line, stream_pair,
)


@numba.njit
def _tile_roundtrip(x):
    tile = stack_tile(x, 3, 5)
    for i in range(3):
        for j in range(5):
            tile[i, j] = x[i, j] * 2
    out = np.empty((3, 5), dtype=x.dtype)
    out[:, :] = tile
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stack_tile_is_a_writable_array_of_the_dtype(dtype):
    x = np.arange(15, dtype=dtype).reshape(3, 5)
    out = _tile_roundtrip(x)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, 2 * x)


# the last case is gathered in parallel (at least GATHER_PARALLEL_MIN entries), the others on one thread
GATHER_CASES = [(1, 5, 7, 4), (3, 2, 4, 9), (4, 1, 1, 3), (2, 64, 64, 32)]


def test_gather_cases_take_both_paths():
    sizes = [g * ci * co * s for g, ci, co, s in GATHER_CASES]
    assert min(sizes) < GATHER_PARALLEL_MIN <= max(sizes)


@pytest.mark.parametrize("groups,cin_g,cout_g,n_slots", GATHER_CASES)
def test_gather_strided_matches_numpy_fancy_indexing(groups, cin_g, cout_g, n_slots):
    rng = np.random.default_rng(0)
    # a torch-like transposed layout (C_in, C_out/G, K) with slots reading permuted, scaled taps
    weight = rng.standard_normal((groups * cin_g, cout_g, n_slots))
    flat = weight.reshape(-1)
    base = rng.permutation(n_slots).astype(np.intp)
    scale = rng.standard_normal(n_slots)
    strides = (cin_g * cout_g * n_slots, n_slots, cout_g * n_slots)  # (group, output, input channel)
    out = np.empty((n_slots, cin_g, groups * cout_g))
    gather_strided(flat, base, scale, *strides, cout_g, out)
    s, c, o = np.ogrid[:n_slots, :cin_g, : groups * cout_g]
    g = o // cout_g
    expected = flat[base[s] + g * strides[0] + (o - g * cout_g) * strides[1] + c * strides[2]] * scale[s]
    np.testing.assert_array_equal(out, expected)


# --- streaming stores of output rows -------------------------------------------------------------------------


@numba.njit
def _stream_rows(a, b, out_line, out_pair):
    """Every whole line of out_line / out_pair (rows that start on a line) by stream_line / stream_pair."""
    per = LINE_BYTES // out_line.itemsize
    for at in range(0, out_line.shape[0], per):
        stream_line(out_line, at, a, at)
    for at in range(0, a.shape[0], per // 2):
        stream_pair(out_pair, 2 * at, a, at, b, at)
    store_fence()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_line_head_counts_the_elements_before_a_line_boundary(dtype):
    itemsize = np.dtype(dtype).itemsize
    base = aligned_empty(64, dtype)
    assert base.ctypes.data % LINE_BYTES == 0
    rows = [base[k:] for k in range(LINE_BYTES // itemsize + 2)]  # starts 0, 1, … elements past a line
    want = [(-k * itemsize) % LINE_BYTES // itemsize for k in range(len(rows))]
    got = [int(_line_head_of(r)) for r in rows]
    assert got == want
    # an address that is not a multiple of the itemsize: no whole elements in its lines
    raw = aligned_empty(64 * itemsize + 1, np.uint8)
    odd = raw[1:1 + 8 * itemsize].view(dtype)
    assert _line_head_of(odd) == -1


@numba.njit
def _line_head_of(row):
    return line_head(row)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_streaming_stores_write_whole_lines(dtype):
    n = 4 * LINE_BYTES // np.dtype(dtype).itemsize  # four lines of elements per source row
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    a_view, b_view = a[3:], b[1:]  # sources need no alignment
    out_line = aligned_empty(n - 16, dtype)  # (whole lines: n − 16 elements is a multiple of a line)
    out_pair = aligned_empty(2 * (n - 16), dtype)
    out_line[:] = np.nan
    out_pair[:] = np.nan
    _stream_rows(a_view[:n - 16], b_view[:n - 16], out_line, out_pair)
    np.testing.assert_array_equal(out_line, a_view[:n - 16])
    np.testing.assert_array_equal(out_pair[0::2], a_view[:n - 16])
    np.testing.assert_array_equal(out_pair[1::2], b_view[:n - 16])


@pytest.mark.parametrize("shape", [(3,), (5, 7), (2, 64, 64, 64)])
def test_aligned_empty_starts_on_a_line(shape):
    for dtype in (np.float32, np.float64):
        y = aligned_empty(shape, dtype)
        assert y.shape == shape and y.dtype == dtype and y.flags.c_contiguous and y.flags.writeable
        assert y.ctypes.data % LINE_BYTES == 0


@numba.njit
def _copy_even_of(dst, j, src, i, count):
    copy_even(dst, j, src, i, count)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_copy_even_copies_every_other_element_and_nothing_else(dtype):
    """``copy_even(dst, j, src, i, count)`` writes ``dst[j + t] = src[i + 2 t]`` for ``t < count`` and no
    other element, for every count up to a vector, at unaligned offsets, with the source range ending at the
    array's last element (its masked load reads nothing past that)."""
    lanes = LINE_BYTES // np.dtype(dtype).itemsize
    rng = np.random.default_rng(11)
    for count in range(lanes + 1):
        for j, i in ((0, 0), (3, 5), (lanes - 1, 1)):
            src = rng.standard_normal(i + max(0, 2 * count - 1)).astype(dtype)  # ends at src[i + 2 count − 2]
            dst = np.full(j + lanes + 3, np.nan, dtype=dtype)
            _copy_even_of(dst, j, src, i, count)
            expect = np.full_like(dst, np.nan)
            expect[j:j + count] = src[i:i + 2 * count:2]
            np.testing.assert_array_equal(dst, expect)


# --- Numba's disk cache against the files compiled code depends on ------------------------------------------


def test_stale_numba_cache_is_dropped_when_a_dependency_changes(tmp_path):
    """A cached function that freezes a constant of another file: after that file changes, Numba's own cache
    (keyed by the function's file) still returns the old constant; with ``refresh_stale_caches`` at the end
    of the module, a new process returns the new one."""
    import subprocess
    import sys
    import textwrap

    dep = tmp_path / "dep.py"
    for name, refresh in (("plain", ""), ("checked", f"refresh_stale_caches(globals(), {str(dep)!r})")):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(f"""
            import numba
            from dep import VALUE
            from symdeconv.codegen.runtime import refresh_stale_caches

            @numba.njit(cache=True)
            def f():
                return VALUE

            {refresh}
            """))

    def run(name):
        code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import {name}; print({name}.f())"
        done = subprocess.run([sys.executable, "-B", "-c", code], capture_output=True, text=True, check=True)
        return int(done.stdout.strip())

    dep.write_text("VALUE = 1\n")
    assert (run("plain"), run("checked")) == (1, 1)
    dep.write_text("VALUE = 2\n")
    assert run("plain") == 1  # the hazard: Numba's cache does not see the other file
    assert run("checked") == 2
    assert run("checked") == 2  # and from its refreshed cache
