"""Large outputs come from a pool of dropped outputs (``symdeconv.codegen._alloc.OutputPool``).

* the pool's rule, on its own: a buffer is handed out again only when no array refers to it (not the output,
  not a view of it, not an array made from it); the buffers it tracks stay within its limit and entry count,
  also after held outputs are dropped, and the oldest go first;
* through compiled layers, chains and ``sd.signal`` (stencil, GEMM-like runtime, channels-last, chain
  kernels): an output the caller holds keeps its values while later calls run, a dropped one is reused, and
  every result equals the layer's definition written in NumPy (or SciPy's);
* ``SYMDECONV_OUTPUT_POOL_MB``: 0 turns the pool off, text that is not a whole number is refused by name;
* threads calling one compiled layer at once each get their own output.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import symdeconv as sd
from symdeconv import SymdeconvError
from symdeconv.codegen import _alloc
from symdeconv.codegen._alloc import LINE_BYTES, SMALL_BYTES, OutputPool

from ._layer_helpers import naive_conv_transpose

MIB = 1 << 20


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


@pytest.fixture(autouse=True)
def _default_pool_limit(monkeypatch):
    monkeypatch.delenv("SYMDECONV_OUTPUT_POOL_MB", raising=False)


# --- the pool on its own -------------------------------------------------------------------------------------


def test_a_buffer_is_reused_only_when_nothing_refers_to_it():
    pool = OutputPool()
    shape = (MIB // 4,)
    y1 = pool.empty(shape, np.float32)
    assert y1.shape == shape and y1.dtype == np.float32 and y1.flags.c_contiguous and y1.flags.writeable
    assert _address(y1) % LINE_BYTES == 0
    first = _address(y1)
    y2 = pool.empty(shape, np.float32)  # y1 is held: a new buffer
    assert _address(y2) != first
    view = y1[10:20]
    del y1
    y3 = pool.empty(shape, np.float32)  # a view of y1 still refers to its buffer
    assert _address(y3) not in (first, _address(y2))
    del view
    y4 = pool.empty(shape, np.float32)  # nothing refers to it now
    assert _address(y4) == first
    # another shape and dtype of the same size shares the buffer; another size does not
    del y4
    y5 = pool.empty((512, 256), np.float64)
    assert _address(y5) == first
    del y5
    assert _address(pool.empty((MIB // 2,), np.float32)) != first


@pytest.mark.parametrize("make", [np.asarray, lambda y: y.reshape(64, -1)[::2], lambda y: y.view(np.int32),
                                  memoryview, lambda y: y[None]])
def test_arrays_made_from_an_output_keep_it(make):
    pool = OutputPool()
    y = pool.empty((MIB // 4,), np.float32)
    first = _address(y)
    keeper = make(y)
    del y
    other = pool.empty((MIB // 4,), np.float32)  # held below, so that only the first buffer can be reused
    assert _address(other) != first
    del keeper
    assert _address(pool.empty((MIB // 4,), np.float32)) == first


def test_the_pool_keeps_at_most_its_limit_even_when_held_outputs_are_dropped(monkeypatch):
    monkeypatch.setenv("SYMDECONV_OUTPUT_POOL_MB", "3")
    pool = OutputPool()
    held = [pool.empty((MIB // 4,), np.float32) for _ in range(8)]  # 8 × 1 MiB, all in use
    del held  # no allocation after this: the pool must already be within its limit
    assert 0 < pool.idle_bytes() <= 3 * MIB
    assert pool.clear() > 0 and pool.idle_bytes() == 0


def test_the_oldest_buffers_go_first(monkeypatch):
    monkeypatch.setenv("SYMDECONV_OUTPUT_POOL_MB", "3")
    pool = OutputPool()
    older, newer = pool.empty((MIB // 4,), np.float32), pool.empty((MIB // 4,), np.float32)
    first, second = _address(older), _address(newer)
    del older, newer
    other = pool.empty((3 * MIB // 8,), np.float32)  # 1.5 MiB: 3.5 MiB tracked, so one buffer goes: the older
    again = pool.empty((MIB // 4,), np.float32)
    assert _address(again) == second
    assert pool.idle_bytes() == 0  # (the older one is released, not kept idle)
    del other, again


def test_the_pool_tracks_a_bounded_number_of_buffers():
    pool = OutputPool()
    held = [pool.empty((MIB // 4,), np.float32) for _ in range(_alloc.POOL_ENTRIES + 8)]
    del held
    assert pool.idle_bytes() <= _alloc.POOL_ENTRIES * (MIB + LINE_BYTES)


def test_the_pool_can_be_turned_off_and_its_setting_is_checked(monkeypatch):
    pool = OutputPool()
    kept = pool.empty((MIB // 4,), np.float32)
    del kept
    assert pool.idle_bytes() > 0
    monkeypatch.setenv("SYMDECONV_OUTPUT_POOL_MB", "0")
    y = pool.empty((MIB // 4,), np.float32)
    assert _address(y) % LINE_BYTES == 0
    del y
    assert pool.idle_bytes() == 0 and pool.clear() == 0  # (what was kept is released, the new one not kept)
    for bad in ("1.5", "-1", "lots", "²"):
        monkeypatch.setenv("SYMDECONV_OUTPUT_POOL_MB", bad)
        with pytest.raises(SymdeconvError, match="SYMDECONV_OUTPUT_POOL_MB"):
            pool.empty((MIB // 4,), np.float32)
    monkeypatch.setenv("SYMDECONV_OUTPUT_POOL_MB", "")  # empty: unset
    assert _alloc.pool_limit_bytes() == _alloc.POOL_MB * MIB


def test_outputs_larger_than_the_limit_are_not_kept(monkeypatch):
    monkeypatch.setenv("SYMDECONV_OUTPUT_POOL_MB", "1")
    pool = OutputPool()
    y = pool.empty((MIB // 2,), np.float32)  # 2 MiB
    del y
    assert pool.idle_bytes() == 0


def test_small_outputs_are_plain_numpy_arrays():
    y = _alloc.output_empty((SMALL_BYTES // 8 - 1,), np.float64)
    assert y.base is None


# --- through compiled kernels ---------------------------------------------------------------------------------


def _transposed_case(c_in, c_out, groups, size, seed):
    rng = np.random.default_rng(seed)
    layer = sd.ConvTranspose((4, 4), stride=2, padding=1, groups=groups, in_channels=c_in, out_channels=c_out)
    x = rng.standard_normal((1, c_in, size, size))
    w = rng.standard_normal((c_in, c_out // groups, 4, 4))
    b = rng.standard_normal(c_out)
    return layer, x, w, b


@pytest.mark.parametrize("c_in, c_out, groups, size", [
    (1, 1, 1, 384),  # the stencil path (one channel per group): 768² outputs, 4.7 MB in float64
    (4, 8, 1, 128),  # the runtime's register-tiled path: 8 × 256² outputs
])
def test_held_outputs_keep_their_values_and_dropped_ones_are_reused(c_in, c_out, groups, size, monkeypatch):
    pytest.importorskip("numba")
    monkeypatch.setenv("SYMDECONV_RUNTIME_CALLS", "0")  # (one channel: the stencil from the first call)
    layer, x, w, b = _transposed_case(c_in, c_out, groups, size, seed=size)
    f = sd.compile(layer, target="cpu")
    x2 = np.flip(x, -1).copy()
    want1 = naive_conv_transpose(x, w, b, 2, 1)
    want2 = naive_conv_transpose(x2, w, b, 2, 1)
    y1 = f(x, w, b)
    assert y1.nbytes >= SMALL_BYTES and y1.base is not None
    y2 = f(x2, w, b)
    assert _address(y2) != _address(y1)
    np.testing.assert_allclose(y1, want1, rtol=1e-12, atol=1e-10)  # not overwritten by the second call
    np.testing.assert_allclose(y2, want2, rtol=1e-12, atol=1e-10)
    first = _address(y1)
    del y1
    y3 = f(x2, w, b)
    assert _address(y3) == first  # the dropped output's memory, written anew
    np.testing.assert_allclose(y3, want2, rtol=1e-12, atol=1e-10)
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(y3)  # a tensor made from an output keeps it
    del y3
    y4 = f(x, w, b)
    assert _address(y4) != first
    np.testing.assert_allclose(t.numpy(), want2, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(y4, want1, rtol=1e-12, atol=1e-10)


def test_channels_last_outputs_come_from_the_pool():
    """A channels-last layer runs on a channels-first copy and returns the layout's copy: a new output too."""
    pytest.importorskip("numba")
    layer = sd.ConvTranspose((4, 4), stride=2, padding="SAME", in_channels=4, out_channels=8, convention="tf")
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 64, 64, 4))
    w = rng.standard_normal(layer.weight_shape)  # (kh, kw, out, in)
    b = rng.standard_normal(8)
    want = np.moveaxis(naive_conv_transpose(np.moveaxis(x, -1, 1), w.transpose(3, 2, 0, 1), b, 2, 1), 1, -1)
    f = sd.compile(layer, target="cpu")
    y1 = f(x, w, b)
    assert y1.shape == want.shape and y1.flags.c_contiguous and y1.nbytes >= SMALL_BYTES
    y2 = f(x[:, ::-1].copy(), w, b)
    np.testing.assert_allclose(y1, want, rtol=1e-12, atol=1e-10)  # not overwritten by the second call
    del y1, y2
    y3 = f(x, w, b)
    assert _address(y3) in _pool_addresses()
    np.testing.assert_allclose(y3, want, rtol=1e-12, atol=1e-10)


def _pool_addresses() -> set:
    """Where the pool's buffers' outputs start (each buffer's first 64-byte line)."""
    return {_address(e) + (-_address(e)) % LINE_BYTES for e in _alloc.OUTPUT_POOL._entries}


def test_chain_outputs_come_from_the_pool():
    pytest.importorskip("numba")
    h = np.random.default_rng(7).standard_normal(8)
    f = sd.compile(sd.upfirdn(sd.as_taps(h), 3, 2), target="cpu")
    x = np.random.default_rng(8).standard_normal(200_000)
    want = np.convolve(np.kron(x, [1.0, 0.0, 0.0])[:3 * x.size], h)[::2]
    y1 = f(x)
    n = min(y1.size, want.size)
    np.testing.assert_allclose(y1[:n], want[:n], rtol=1e-12, atol=1e-12)
    first = _address(y1)
    del y1
    y2 = f(x)
    assert _address(y2) == first
    np.testing.assert_allclose(y2[:n], want[:n], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("calls", ["0", "1000"], ids=["chain kernel", "runtime"])
def test_signal_outputs_come_from_the_pool(calls, monkeypatch):
    """``sd.signal.upfirdn``'s kernel output is a new output too (SciPy is the oracle), from a structure's
    chain kernel and from the runtime its first calls take."""
    pytest.importorskip("numba")
    monkeypatch.setenv("SYMDECONV_RUNTIME_CALLS", calls)
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(9)
    h, x = rng.standard_normal(33), rng.standard_normal(300_000)
    want = signal.upfirdn(h, x, 3, 2)
    y1 = sd.signal.upfirdn(h, x, 3, 2)
    assert y1.nbytes >= SMALL_BYTES
    np.testing.assert_allclose(y1, want, rtol=1e-12, atol=1e-12)
    before = _pool_addresses()
    del y1
    y2 = sd.signal.upfirdn(h, x, 3, 2)
    assert _address(y2) in before  # the dropped result's memory
    np.testing.assert_allclose(y2, want, rtol=1e-12, atol=1e-12)


def test_threads_calling_one_layer_get_their_own_outputs():
    pytest.importorskip("numba")
    layer, x, w, b = _transposed_case(1, 1, 1, 384, seed=3)
    f = sd.compile(layer, target="cpu")
    inputs = [x * (k + 1) for k in range(4)]
    wants = [naive_conv_transpose(xi, w, b, 2, 1) for xi in inputs]
    errors = []

    def worker(k):
        try:
            kept = []
            for i in range(6):
                y = f(inputs[k], w, b)
                if i % 2:
                    kept.append(y)  # half are held while the other threads run
            for y in kept + [y]:
                np.testing.assert_allclose(y, wants[k], rtol=1e-12, atol=1e-9)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_empty_output_pool_releases_dropped_outputs():
    pytest.importorskip("numba")
    layer, x, w, b = _transposed_case(1, 1, 1, 384, seed=4)
    f = sd.compile(layer, target="cpu")
    held = f(x, w, b)
    f(x, w, b)  # dropped at once
    assert sd.empty_output_pool() >= held.nbytes
    assert _alloc.OUTPUT_POOL.idle_bytes() == 0
    np.testing.assert_allclose(held, naive_conv_transpose(x, w, b, 2, 1), rtol=1e-12, atol=1e-9)
