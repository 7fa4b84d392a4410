# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Code generation: from a derived chain to a verified Numba kernel
#
# The polyphase normal form of an operator says, for each output phase $p$,
#
# $$y[P j + p] = \sum_{(c,\,\mathrm{off})} a_{p}[c, \mathrm{off}]\; x[c, Q j + \mathrm{off}],$$
#
# listing only the non-zero coefficients. That is exactly the work of a *gather* kernel: for each output,
# find its phase and block, sum that phase's taps — no multiplication by an inserted zero, each output
# written by exactly one loop iteration (or GPU thread), so results are deterministic. `symdeconv` prints
# such kernels as readable Python for `numba.njit` (CPU) and `numba.cuda.jit` (GPU), caches them as real
# files keyed by a hash of the plan, and checks each against the SymPy matrix of the operator it came from.
#
# This notebook follows one chain through the three steps; every claim is an `assert`, and the test suite
# executes it. (CUDA kernels run in Numba's CUDA simulator when there is no GPU.)

# %%
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")  # before Numba is imported: no GPU needed

import numpy as np
import sympy as sp

import symdeconv as sd
from symdeconv.chainlang import parse_chain
from symdeconv.verify.check import check_chain, check_layer

# %% [markdown]
# ## 1. Derive
#
# A nearest-neighbour ×2 upsampling followed by a 3-tap filter $q$ — written in the operator language of
# the `symdeconv` command line (`symdeconv derive "conv(q0,q1,q2) @ hold(2)"` prints the same).

# %%
chain = parse_chain("conv(q0, q1, q2) @ hold(2)")
form = sd.canonical(chain)
print(form)
q0, q1, q2 = sp.symbols("q0 q1 q2")
assert form.phase_taps(0) == {-1: q1 + q2, 0: q0}
assert form.phase_taps(1) == {-1: q2, 0: q0 + q1}
assert form.n_taps() == 4  # 4 multiplications per 2 outputs; ↑2 then a 4-tap filter would spend 8

# %% [markdown]
# The form proves, for every input length, that this chain *is* a transposed convolution with the kernel
# $(1, 1) * q$ — the DSP reading of "deconvolution":

# %%
assert sd.equivalent(chain, sd.transposed_conv(sd.convolve((1, 1), (q0, q1, q2)), 2))

# %% [markdown]
# ## 2. Emit
#
# The CPU kernel: one `prange` loop over (batch, block $j$); inside a block, each phase writes its output
# with its taps as constant offsets. Symbolic taps become runtime coefficients `c[k]`, computed from the
# symbol values by the generated `coefficients(w)`; numeric taps would be float literals in the source.

# %%
source = sd.emit(chain, "cpu")
print(source)
assert "DO NOT EDIT" in source and "y[2m] = q0·x[m] + (q1 + q2)·x[m − 1]" in source
assert source.count("acc += ") == form.n_taps()

# %% [markdown]
# The CUDA kernel is *tiled*: a thread block stages the inputs its tile of blocks `j` needs (with the halo
# given by the smallest and largest tap offsets, zero outside the input) in shared memory, each thread
# computes every phase of one block from there with the taps as constants, and the outputs are stored
# coalesced. Planes smaller than half a tile go to `kernel_simple` (one thread per output element, a
# bounds guard first); `launch` picks the kernel and the grid. No atomics: every output has one writer.

# %%
cuda_source = sd.emit(chain, "cuda")
print(cuda_source[cuda_source.index("@cuda.jit"):])
assert 'STRATEGY = "tiled"' in cuda_source and "cuda.syncthreads()" in cuda_source
assert "def kernel_simple(" in cuda_source and "cuda.grid(2)" in cuda_source and "def launch(" in cuda_source

# %% [markdown]
# ## 3. Compile and verify
#
# `sd.compile` writes the module into the kernel cache (`$SYMDECONV_CACHE_DIR`, else `~/.cache/symdeconv`)
# under a hash of its plan and imports it; Numba's `cache=True` then keeps the machine code for the next
# process. The verification runs the kernel on **every basis vector** of the input space (the batch axis
# enumerates them) and on random inputs, and compares with the operator's SymPy matrix — built from sparse
# products of the primitives, a route independent of the normal form.

# %%
f = sd.compile(chain, "cpu")
print(f)
y = f(np.array([1.0, 2.0, 3.0, 5.0]), [2.0, -1.0, 4.0])
print(y)
assert np.array_equal(y, np.convolve(np.repeat([1.0, 2.0, 3.0, 5.0], 2), [2.0, -1.0, 4.0]))

# %%
for target in ("cpu", "cuda"):
    for dtype in (np.float64, np.float32):
        result = check_chain(sd.compile(chain, target), chain, sizes=(1, 4, 7), dtype=dtype)
        print(result.row())
        assert result.ok and result.basis_vectors == 12

# %% [markdown]
# ## Layers
#
# A deep-learning layer is one operator per channel pair, with the same spatial tap pattern for every pair
# of a group. Its kernel is planned once per *structure* (kernel size, stride, dilation, padding): channel
# counts, groups, `output_padding` and sizes are runtime arguments, and the framework's weight is gathered
# into the kernel's slot layout at call time. `ConvTranspose2d(4, 2, 1)` has 4 taps per output phase —
# 16 multiplications per 4 outputs instead of 64 on the zero-stuffed input:

# %%
layer = sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=2, out_channels=4, groups=2)
g = sd.compile(layer, "cpu")
print("\n".join(g.plan.description))
assert g.plan.n_slots == 16 and all(len(ph.slots) == 4 for ph in g.plan.phases)

rng = np.random.default_rng(0)
x = rng.standard_normal((3, 2, 5, 6)).astype(np.float32)
w = rng.standard_normal(layer.weight_shape).astype(np.float32)
b = rng.standard_normal(4).astype(np.float32)
out = g(x, w, b)
assert out.shape == (3, 4, 10, 12) and out.dtype == np.float32

result = check_layer(g, layer, [(2, 3)], np.float64)
print(result.row())
assert result.ok

# %% [markdown]
# When PyTorch is installed, the same call agrees with `torch.nn.functional.conv_transpose2d`:

# %%
try:
    import torch
except ImportError:
    torch = None
if torch is not None:
    ref = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride=2, padding=1, groups=2
    ).numpy()
    print("max |symdeconv − torch| =", float(np.abs(out - ref).max()))
    assert np.allclose(out, ref, rtol=1e-5, atol=1e-5)

# %% [markdown]
# The committed catalogue `generated/` holds such kernels for the textbook chains and common layers;
# `symdeconv generate --check` fails when it is stale and `symdeconv verify` runs every file against its
# symbolic form.

# %% [markdown]
# ## SciPy's `upfirdn` on these kernels
#
# `sd.signal.upfirdn(h, x, up, down)` (and `sd.signal.resample_poly`) take SciPy's arguments and run the kernel
# of the chain $\downarrow_{down} (h \ast \uparrow_{up} x)$, its taps passed at run time. They return SciPy's
# output window, which is *shorter* than the chain's natural one: the natural window of $\uparrow_L$ ends with
# the $L - 1$ zeros inserted after the last sample, and the outputs that read only those zeros (at most
# $\lceil (L - 1) / M \rceil$ of them) are not in SciPy's result. The example is SciPy's own docstring example.

# %%
h3, x10 = np.array([0.5, 1.0, 0.5]), np.arange(10.0)
chain3 = sd.compile(sd.upfirdn(sd.taps("h", 3), 2, 3), "cpu")
natural = chain3(x10, h3)
y = sd.signal.upfirdn(h3, x10, 2, 3)
print(natural, y)
assert chain3.window((10,)) == ((0, 8),) and y.shape == (7,)  # ⌈(10·2 + 2) / 3⌉ = 8, (9·2 + 2) // 3 + 1 = 7
assert np.array_equal(natural[:7], y) and natural[7] == 0
assert np.allclose(y, [0.0, 1.0, 2.5, 4.0, 5.5, 7.0, 8.5])
try:
    from scipy import signal as scipy_signal
except ImportError:  # SciPy is not a dependency of symdeconv
    scipy_signal = None
if scipy_signal is not None:
    assert np.allclose(y, scipy_signal.upfirdn(h3, x10, 2, 3))
    print("equal to scipy.signal.upfirdn")
