# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The seed identities of transposed convolution, derived step by step
#
# Transposed, strided and dilated convolutions are compositions of three primitives from
# multirate signal processing (Vaidyanathan, *Multirate Systems and Filter Banks*, 1993):
#
# * the **upsampler** $\uparrow_k$: $y[n] = x[n/k]$ if $k \mid n$, else $0$ (insert $k-1$ zeros);
# * the **downsampler** $\downarrow_k$: $y[n] = x[kn]$ (keep every $k$-th sample);
# * **convolution** $q\ast$: $y[n] = \sum_j q_j\, x[n - j]$.
#
# This notebook derives the identities that relate them, using `symdeconv`. Each claim is
# checked twice: by the **polyphase normal form**, which decides equality for *every* input length at
# once, and by an independent route — explicit SymPy matrices for a few lengths, a naive NumPy
# computation, or reference numbers from outside the project. Every step is an `assert`, so the
# notebook fails (and the test suite with it) if the library is wrong.
#
# The notebook is a [jupytext](https://jupytext.readthedocs.io) percent-format file; the test suite
# executes it (`tests/test_notebooks.py`).

# %%
import json
import math
import re
from pathlib import Path

import numpy as np
import sympy as sp
from IPython.display import Markdown, Math, display

import symdeconv as sd


def tex(obj) -> str:
    """LaTeX of a SymPy object, or of anything with ``_repr_latex_`` (its ``$…$`` delimiters dropped)."""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, (sp.Basic, sp.MatrixBase, tuple, list)):
        return sp.latex(obj)
    return obj._repr_latex_().strip().strip("$")


def in_notebook() -> bool:
    """Running in a Jupyter kernel (formulas render), rather than as ``python docs/algebra.py``?"""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in shell.config


# LaTeX of the captions below, as plain text for a terminal
_TEXT = [(r"\uparrow", "↑"), (r"\downarrow", "↓"), (r"\ast", "∗"), (r"^{\mathsf T}", "ᵀ"), (r"\qquad", "    "),
         (r"\quad", "  "), (r"\,", ""), (r"\ ", " "), (r"\mathbf 1", "1"), (r"\mathrm{hold}", "hold")]


def text(obj) -> str:
    """A part of a formula as terminal text: SymPy's pretty printing, captions without LaTeX markup."""
    if isinstance(obj, str):
        for tex_, plain in _TEXT:
            obj = obj.replace(tex_, plain)
        obj = re.sub(r"\\text\{([^}]*)\}", r"\1", obj)
        obj = re.sub(r"_\{?(\w+)\}?", r"_\1", obj).replace("{", "").replace("}", "")
        return obj
    if isinstance(obj, (sp.Basic, sp.MatrixBase, tuple, list)):
        return sp.pretty(obj, use_unicode=True)
    return str(obj)


def show(*parts) -> None:
    """Display the parts side by side as one formula (strings are taken as LaTeX); as a script, print them."""
    if in_notebook():
        display(Math(r"\quad ".join(tex(p) for p in parts)))
        return
    out = [text(p) for p in parts]
    print("\n".join(out) if any("\n" in t for t in out) else " ".join(out))


def show_markdown(source: str) -> None:
    """A Markdown table or paragraph: rendered in a notebook, printed as it is in a script."""
    display(Markdown(source)) if in_notebook() else print(source)


def as_numeric(matrix: sp.Matrix) -> np.ndarray:
    return np.array(matrix.tolist(), dtype=float)


# %% [markdown]
# The reference vectors come from outside the project (each names its source); the repository keeps a copy
# in `tests/data/public.json`. We walk up from the working directory to the repository root.

# %%
def find_public_vectors(start: Path) -> Path | None:
    for base in [start, *start.parents]:
        candidate = base / "tests" / "data" / "public.json"
        if candidate.is_file():
            return candidate
    return None


VECTORS_PATH = find_public_vectors(Path.cwd().resolve())
VECTORS = json.loads(VECTORS_PATH.read_text()) if VECTORS_PATH else None
print("reference vectors:", VECTORS_PATH or "not found (the external numeric checks below are skipped)")

# %% [markdown]
# ## 1. Operators as matrices
#
# On a finite input $x[0], \dots, x[n-1]$ (zero elsewhere) every operator is a matrix, whose rows are
# the output times where the result can be non-zero. The textbook examples: $\uparrow_2$ on two
# samples and $\downarrow_2$ on four.

# %%
U = sd.up(2).matrix(2)
D = sd.down(2).matrix(4)
show(r"\uparrow_2 \text{ on } n=2:", U)
show(r"\downarrow_2 \text{ on } n=4:", D)
assert U == sp.Matrix([[1, 0], [0, 0], [0, 1], [0, 0]])
assert D == sp.Matrix([[1, 0, 0, 0], [0, 0, 1, 0]])

# %% [markdown]
# The two matrices are transposes of each other: $\uparrow_k = \downarrow_k^{\mathsf T}$. As matrices
# this holds for every size we try; as operators the normal form proves it for every length.

# %%
assert U.T == D
for k in (2, 3):
    for n in range(1, 6):
        assert sd.up(k).matrix(n).T == sd.down(k).matrix(n * k)
    assert sd.equivalent(sd.up(k), sd.down(k).T)
show(r"(\downarrow_2)^{\mathsf T} = \uparrow_2 \quad \text{for every input length; normal form of } \uparrow_2:")
display(sd.canonical(sd.up(2)))

# %% [markdown]
# A convolution is a banded Toeplitz matrix. With `origin=1` the middle tap sits on the diagonal
# ($y[n] = q_0 x[n+1] + q_1 x[n] + q_2 x[n-1]$); restricted to the output window $0..3$:

# %%
q = sd.taps("q", 3)
Cq = sd.conv(q, origin=1).matrix(4, window=(0, 4))
q0, q1, q2 = q
show(r"q \ast \text{ (origin 1)}:", Cq)
assert Cq == sp.Matrix([[q1, q0, 0, 0], [q2, q1, q0, 0], [0, q2, q1, q0], [0, 0, q2, q1]])

# %% [markdown]
# ## 2. Repeat-upsampling then a 3-tap convolution is a 4-tap transposed convolution
#
# The nearest-neighbour ("hold") upsampler repeats every sample: $\mathrm{hold}_2\,x = (x_0, x_0, x_1,
# x_1, \dots)$. It is itself a transposed convolution: $\mathrm{hold}_2 = (1\ 1) \ast \uparrow_2$.
# Convolutions commute and compose by convolving their kernels, so
#
# $$ q \ast \mathrm{hold}_2\, x \;=\; q \ast (1\ 1) \ast \uparrow_2 x \;=\; \big((1\ 1) \ast q\big) \ast \uparrow_2 x ,$$
#
# a transposed convolution with stride 2 and the 4-tap kernel $(1\ 1) \ast q$.

# %%
H = sd.hold(2).matrix(3)
show(r"\mathrm{hold}_2 \text{ on } n=3:", H)
assert H == sp.Matrix([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]])
assert sd.equivalent(sd.hold(2), sd.transposed_conv((1, 1), 2))

h4 = sd.convolve((1, 1), q)
show(r"(1\ 1) \ast q =", h4)
assert h4 == (q0, q0 + q1, q1 + q2, q2)

# %% [markdown]
# Both sides, and their polyphase normal forms. Output phase $p$ of $y[2m + p]$ lists the input
# samples it reads: the even outputs read $q_0$ and $q_1 + q_2$, the odd ones $q_0 + q_1$ and $q_2$.

# %%
A = sd.conv(q) @ sd.hold(2)
B = sd.transposed_conv(h4, 2)
show(r"A =", A)
display(sd.canonical(A))
show(r"B =", B)
display(sd.canonical(B))
assert sd.canonical(A) == sd.canonical(B)
assert sd.canonical(B).phase_taps(0) == {0: q0, -1: q1 + q2}
assert sd.canonical(B).phase_taps(1) == {0: q0 + q1, -1: q2}

result = sd.equivalent(A, B)
assert result
print(result)

# %% [markdown]
# The independent route: the explicit matrices agree for several lengths. The natural output windows
# differ by one structural zero ($\uparrow_2$ of $n$ samples has $2n$ outputs, the last one an inserted
# zero, so $B$'s full window is one longer); `sd.matrices_agree` compares over the hull of both windows.

# %%
for n in (1, 2, 3, 4, 7):
    assert sd.matrices_agree(A, B, n)
MA, MB = A.matrix(4), B.matrix(4)
assert MA.shape == (10, 4) and MB.shape == (11, 4)
assert MB[:10, :] == MA and MB[10, :] == sp.zeros(1, 4)
show(r"A \text{ on } n=4:", MA)

# %% [markdown]
# A numeric check against numbers computed outside the project (checked there with NumPy,
# `scipy.signal.upfirdn` and PyTorch's `conv_transpose1d`): $x = (1, 2, 3, 5)$, $q = (2, -1, 4)$.
# We also compute it naively with NumPy, straight from the definition: repeat, then convolve.

# %%
x_ref, q_ref = [1, 2, 3, 5], [2, -1, 4]
numbers = dict(zip(q, q_ref))
y_A = list(A.subs(numbers).matrix(4) * sp.Matrix(x_ref))
y_B = list(B.subs(numbers).matrix(4, window=(0, 10)) * sp.Matrix(x_ref))
y_numpy = np.convolve(np.repeat(x_ref, 2), q_ref)
show(r"y =", sp.Matrix([y_A]))
assert y_A == y_B == [int(v) for v in y_numpy]
assert sd.convolve((1, 1), q_ref) == (2, 1, 3, 4)

if VECTORS is not None:
    ref = VECTORS["hold_then_conv_equals_transposed_conv"]
    assert (ref["x"], ref["q"], ref["up"]) == (x_ref, q_ref, 2)
    assert list(sd.convolve((1, 1), ref["q"])) == ref["h_equals_convolve_11_q"]
    assert y_A == ref["y_full"], (y_A, ref["y_full"])
    print("matches the external reference y_full =", ref["y_full"])

# %% [markdown]
# ## 3. The transpose of a strided convolution is a transposed convolution
#
# A strided convolution is $S = \downarrow_2 (q \ast)$. Transposing reverses the order and transposes
# each factor: $S^{\mathsf T} = (q\ast)^{\mathsf T} \uparrow_2$, and the transpose of a convolution is
# the convolution with the reversed kernel $\tilde q = (q_{K-1}, \dots, q_0)$, advanced by $K - 1$
# samples (time runs backwards, so the support moves): $(q\ast)^{\mathsf T} = z^{K-1}\, \tilde q \ast$.
# Hence the name "transposed convolution":
#
# $$ \big(\downarrow_2 (q\ast)\big)^{\mathsf T} = z^{K-1}\,\big(\tilde q \ast \uparrow_2\big). $$

# %%
K = len(q)
S = sd.strided_conv(q, 2)
R = sd.shift(-(K - 1)) @ sd.transposed_conv(sd.reverse(q), 2)
show(r"S =", S, r"\qquad S \text{ on } n=6:", S.matrix(6))
show(r"R =", R)
display(sd.canonical(R))
assert sd.reverse(q) == (q2, q1, q0)
assert sd.equivalent(S.T, R)

# %% [markdown]
# Independently: the matrix of $S$ on $n$ inputs, transposed, is the matrix of $R$ on the
# $\lceil n/2 \rceil$ outputs of $S$, read on the output times $0..n-1$.

# %%
for n in (5, 6, 7):
    rows = S.out_shape(n)[0]
    assert S.matrix(n).T == R.matrix(rows, window=(0, n))
show(r"S_{n=6}^{\mathsf T} = R_{n=3} =", S.matrix(6).T)

# %% [markdown]
# Deep-learning frameworks call cross-correlation "convolution": $\mathrm{xcorr}(w)\,x\,[n] = \sum_j
# w_j x[n + j]$. The gradient of $\langle g, \downarrow_2 \mathrm{xcorr}(w)\, x\rangle$ with respect to
# $x$ is the transpose applied to $g$, and that is exactly the transposed convolution *with the same
# kernel* $w$ — which is why frameworks implement `ConvTranspose` as the input-gradient of `Conv`.

# %%
w = sd.taps("w", 3)
assert sd.equivalent((sd.down(2) @ sd.xcorr(w)).T, sd.transposed_conv(w, 2))
display(sd.canonical(sd.transposed_conv(w, 2)))

# %% [markdown]
# ## 4. Dilated convolution is convolution with an upsampled kernel
#
# A dilated ("à trous") convolution spreads the taps $d$ apart: its kernel is $\uparrow_d q$.

# %%
for d in (2, 3):
    q_up = tuple(sd.up(d).matrix(K) * sp.Matrix(q))[: (K - 1) * d + 1]  # ↑d applied to q as a signal
    assert sd.dilate(q, d) == q_up
    assert sd.equivalent(sd.dilated_conv(q, d), sd.conv(q_up))
show(r"\uparrow_2 q =", sd.dilate(q, 2))

# %% [markdown]
# ## 5. The noble identities
#
# Filtering at the low rate equals filtering at the high rate with the filter spread out:
#
# $$ H(z) \downarrow_M = \downarrow_M H(z^M), \qquad \uparrow_L H(z) = H(z^L) \uparrow_L .$$
#
# $H(z^M)$ is the dilated kernel $\uparrow_M h$. With symbolic taps $h$ these are proved for every
# filter and every input length at once.

# %%
h = sd.taps("h", 3)
h_dil = sd.dilate(h, 3)
h0, h1, h2 = h
assert h_dil == (h0, 0, 0, h1, 0, 0, h2)

dec_lhs, dec_rhs = sd.conv(h) @ sd.down(3), sd.down(3) @ sd.conv(h_dil)
int_lhs, int_rhs = sd.up(3) @ sd.conv(h), sd.conv(h_dil) @ sd.up(3)
for lhs, rhs in ((dec_lhs, dec_rhs), (int_lhs, int_rhs)):
    assert sd.equivalent(lhs, rhs)
    assert all(sd.matrices_agree(lhs, rhs, n) for n in (1, 2, 5, 8))
    show(lhs, "=", rhs)
    display(sd.canonical(lhs))

# %% [markdown]
# Without spreading the filter the decimation identity is false, and `sd.equivalent` says where:

# %%
wrong = sd.equivalent(sd.conv(h) @ sd.down(3), sd.down(3) @ sd.conv(h))
assert not wrong
print(wrong.counterexample)

# %% [markdown]
# ## 6. When do ↑L and ↓M commute?
#
# $\uparrow_L \downarrow_M = \downarrow_M \uparrow_L$ iff $\gcd(L, M) = 1$ (Vaidyanathan §4.2.2). We
# check the whole statement on a grid of factors, both directions of the "iff":

# %%
for L in range(1, 5):
    for M in range(1, 5):
        same = bool(sd.equivalent(sd.up(L) @ sd.down(M), sd.down(M) @ sd.up(L)))
        assert same == (math.gcd(L, M) == 1), (L, M)

display(sd.canonical(sd.up(2) @ sd.down(3)))

# %% [markdown]
# For $L = M = 2$ they differ: $\downarrow_2 \uparrow_2$ is the identity, while $\uparrow_2 \downarrow_2$
# keeps the even samples and zeroes the odd ones — it is not time-invariant (period 2). The
# counterexample names an input length and a matrix entry; we read that entry off both matrices.

# %%
lhs, rhs = sd.up(2) @ sd.down(2), sd.down(2) @ sd.up(2)
verdict = sd.equivalent(lhs, rhs)
assert not verdict
cx = verdict.counterexample
print(cx)
display(verdict.lhs, verdict.rhs)

(lo, hi), = cx.window
n, = cx.n
M_lhs, M_rhs = lhs.matrix(n, window=(lo, hi)), rhs.matrix(n, window=(lo, hi))
show(r"\uparrow_2\downarrow_2:", M_lhs, r"\qquad \downarrow_2\uparrow_2:", M_rhs)
assert (M_lhs[cx.row, cx.col], M_rhs[cx.row, cx.col]) == (cx.lhs, cx.rhs)
assert cx.lhs != cx.rhs
assert sd.equivalent(rhs, sd.identity())
assert sd.up(2).matrix(2) * sd.down(2).matrix(4) == sp.diag(1, 0, 1, 0)  # ↑2↓2 on n=4, as matrices

# %% [markdown]
# ## 7. Polyphase form: a transposed convolution is interleaved ordinary convolutions
#
# Write $y = q \ast \uparrow_2 x$ at even and odd times:
#
# $$ y[2m + p] = \sum_j q_{2j + p}\, x[m - j], \qquad p = 0, 1 ,$$
#
# so output phase $p$ is an ordinary convolution of $x$ with the sub-kernel $q[p::2]$, at the *low*
# rate, and the results are interleaved (Vaidyanathan §4.3). This is the sub-pixel convolution of
# Shi et al. (CVPR 2016): compute the $s$ phase kernels as $s$ output channels, then pixel-shuffle. It
# skips the multiplications by inserted zeros, and the normal form is exactly that plan.

# %%
q4 = sd.taps("q", 4)
T = sd.transposed_conv(q4, 2)
form = sd.canonical(T)
display(form)
assert form.phase_taps(0) == {0: q4[0], -1: q4[2]}
assert form.phase_taps(1) == {0: q4[1], -1: q4[3]}

interleaved = sum(sd.shift(p) @ sd.up(2) @ sd.conv(q4[p::2]) for p in range(2))
show(T, "=", interleaved)
assert sd.equivalent(T, interleaved)

phase_kernels = [[list(q4[0::2])], [list(q4[1::2])]]  # (2 output channels, 1 input channel, 2 taps)
shuffled = sd.pixel_shuffle(2) @ sd.channel_conv(phase_kernels)
show(T, "=", shuffled)
assert sd.equivalent(T, shuffled)

# %% [markdown]
# Numerically, against NumPy: two short convolutions, interleaved, equal the transposed convolution.

# %%
rng = np.random.default_rng(0)
x_num = rng.integers(-5, 6, size=7)
q_num = rng.integers(-5, 6, size=4)
even, odd = np.convolve(x_num, q_num[0::2]), np.convolve(x_num, q_num[1::2])
sub_pixel = np.empty(2 * len(even))
sub_pixel[0::2], sub_pixel[1::2] = even, odd
T_num = as_numeric(T.subs(dict(zip(q4, q_num.tolist()))).matrix(7, window=(0, len(sub_pixel))))
assert np.array_equal(T_num @ x_num, sub_pixel)

# %% [markdown]
# The same decomposition for an ordinary filter, $H(z) = \sum_p z^{-p} E_p(z^2)$ with $E_p$ the taps
# $h[p::2]$, and for a decimator, which can filter at the low rate: $\downarrow_2 H(z) = \sum_p
# E_p(z) \downarrow_2 z^{p}$.

# %%
h5 = sd.taps("h", 5)
assert sd.equivalent(sd.conv(h5), sum(sd.shift(p) @ sd.conv(sd.dilate(h5[p::2], 2)) for p in range(2)))
assert sd.equivalent(sd.down(2) @ sd.conv(h5), sum(sd.conv(h5[p::2]) @ sd.down(2) @ sd.shift(p) for p in range(2)))
display(sd.canonical(sd.down(2) @ sd.conv(h5)))

# %% [markdown]
# ## 8. The FCN bilinear kernel is linear interpolation
#
# Fully convolutional networks (Long, Shelhamer & Darrell, CVPR 2015) initialise ×2 upsampling layers
# with the "bilinear" kernel $(\tfrac14, \tfrac34, \tfrac34, \tfrac14)$: a transposed convolution
# with kernel 4, stride 2, padding 1. Its two phases read $\tfrac34 x[m] + \tfrac14 x[m-1]$ and
# $\tfrac34 x[m] + \tfrac14 x[m+1]$ — linear interpolation at the half-pixel positions
# $u = (n + \tfrac12)/2 - \tfrac12$ (`align_corners=False`).

# %%
bil = sd.bilinear_kernel(4)
R4 = sp.Rational(1, 4)
assert bil == (R4, 3 * R4, 3 * R4, R4)
fcn = sd.shift(-1) @ sd.transposed_conv(bil, 2)  # padding 1 crops one sample: an advance by 1
display(sd.canonical(fcn))
assert sd.equivalent(fcn, sd.linear_interp(2))

# %% [markdown]
# Against NumPy's `np.interp` at the half-pixel coordinates, away from the borders (there
# `np.interp` clamps while the transposed convolution pads with zeros):

# %%
N = 9
x_lin = rng.integers(-9, 10, size=N).astype(float)
times = np.arange(1, 2 * N - 1)  # interior output times: both neighbours inside the signal
expected = np.interp((times + 0.5) / 2 - 0.5, np.arange(N), x_lin)
got = as_numeric(fcn.matrix(N, window=(1, 2 * N - 1))) @ x_lin
assert np.allclose(got, expected)

# %% [markdown]
# ## 9. Checkerboard artifacts: kernel 3 vs kernel 4 at stride 2
#
# A stride-2 transposed convolution has two output phases, reading $q[0::2]$ and $q[1::2]$. `sd.checkerboard`
# keeps two facts apart (Odena, Dumoulin & Olah, *Deconvolution and Checkerboard Artifacts*, Distill 2016):
#
# * **structural overlap** — kernel size and stride only. With kernel 3 the phases read 2 and 1 taps
#   ("uneven overlap"); with kernel 4, 2 taps each ("even overlap").
# * **the weight condition** — a constant input gives a constant output away from the borders iff the phase
#   gains (sums of each phase's taps) are equal: $w_0 + w_2 = w_1$ for kernel 3, $w_0 + w_2 = w_1 + w_3$ for
#   kernel 4, as SymPy equations in the weight symbols.
#
# With all-ones weights kernel 3 fails its condition (gains 2 and 1: the checkerboard) and kernel 4 meets it.
# With *learned* weights both need their condition: even overlap makes it easy to meet, not automatic.

# %%
reports = {k: sd.checkerboard((1,) * k, stride=2, n=4) for k in (3, 4)}
for k, report in reports.items():
    print(f"kernel {k}, stride 2, all-ones weights:")
    print(report, end="\n\n")

r3, r4 = reports[3], reports[4]
assert r3.taps_per_phase == (2, 1) and not r3.even_overlap and r3.has_checkerboard
assert r3.overlap == (1, 1, 2, 1, 2, 1, 2, 1, 1)
assert r4.taps_per_phase == (2, 2) and r4.even_overlap and r4.constant_preserving
assert r4.overlap == (1, 1, 2, 2, 2, 2, 2, 2, 1, 1)
w = sp.symbols("w0:4")
assert r3.conditions == (sp.Eq(w[0] + w[2], w[1]),) and r3.satisfied is False
assert r4.conditions == (sp.Eq(w[0] + w[2], w[1] + w[3]),) and r4.satisfied is True
assert r4.verdict == ("structural: even overlap; "
                      "weights: constant-preserving iff w0 + w2 = w1 + w3; the given weights satisfy it")

# %% [markdown]
# Independently: with all-ones weights the response to a constant input of ones *is* the overlap
# count, so the explicit matrix times a vector of ones must reproduce the reports (the full output
# window ends with one structural zero: the inserted zero after the last sample).

# %%
for k, report in reports.items():
    ones_response = tuple(sd.transposed_conv((1,) * k, 2).matrix(4) * sp.ones(4, 1))
    assert report.output_start == 0
    assert ones_response == report.overlap + (0,) * (len(ones_response) - len(report.overlap)), (k, ones_response)
    show(rf"k={k}:\ (\mathbf 1_{k} \ast \uparrow_2)\,\mathbf 1 =", sp.Matrix([ones_response]))

# %% [markdown]
# What matters is the phase *gains* (the sum of each phase's taps): a constant input gives a constant
# output iff they are equal. The FCN bilinear kernel above has equal gains,
# $\tfrac14 + \tfrac34 = \tfrac34 + \tfrac14$:

# %%
assert sd.checkerboard(bil, stride=2).constant_preserving
print(sd.checkerboard(bil, stride=2))

# %% [markdown]
# Uneven overlap does not forbid a constant output: the binomial kernel $(1, 2, 1)$ at stride 2 has phases
# $1 + 1$ and $2$ — uneven overlap, equal gains. Divided by 2 it is linear interpolation that keeps the input
# samples (each inserted sample is the mean of its neighbours).

# %%
binomial = sd.checkerboard((1, 2, 1), stride=2)
assert not binomial.even_overlap and binomial.constant_preserving
print(binomial.verdict)

# %% [markdown]
# ### Pictures
#
# `report.plot()` draws the Distill picture: bars of how many kernel taps reach each output, coloured by
# output phase (the structural fact), and for numeric weights the response to a constant input (the weight
# fact). `sd.plot_taps` draws a normal form as a graph from inputs to outputs — for a transposed convolution
# each input fans out into a copy of the kernel — and `sd.plot_matrix` the operator's matrix. matplotlib is an
# optional extra (`pip install 'symdeconv[plot]'`); without it these cells say so and draw nothing. Each
# picture returns its data (`.data`), checked here against the numbers above.

# %%
try:
    import matplotlib.pyplot as plt
except ImportError:
    plt = None
    print("matplotlib is not installed (pip install 'symdeconv[plot]'): the pictures below are skipped")

if plt is not None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.4), layout="constrained")
    for k, ax in zip((3, 4), axes):
        picture = reports[k].plot(ax=ax)
        ax.set_title(f"kernel {k}, stride 2, all-ones weights\n" + ax.get_title(), fontsize="small")
        assert tuple(picture.data["overlap"]) == reports[k].overlap
        assert tuple(picture.data["response"]) == reports[k].overlap  # all-ones weights: response = overlap

# %%
if plt is not None:
    q3 = sd.taps("q", 3)
    picture = sd.plot_taps(sd.transposed_conv(q3, 2), n=4)
    # input x[m] feeds output y[2m + j] with weight q_j: the kernel, pasted at every input
    assert {(m, t, c) for m, t, _, c in picture.data["edges"]} == {
        (m, 2 * m + j, q3[j]) for m in range(4) for j in range(3)}

# %%
if plt is not None:
    picture = sd.plot_matrix(sd.transposed_conv(q3, 2), 4)
    assert picture.data["matrix"] == sd.transposed_conv(q3, 2).matrix(4) and picture.data["mask"].sum() == 12

# %% [markdown]
# In 2-D the overlap is the product of the 1-D patterns. Kernel $3 \times 3$ at stride 2 overlaps unevenly
# (4, 2, 2 and 1 taps per phase), yet the binomial kernel $(1, 2, 1) \otimes (1, 2, 1)$ gives a constant output:

# %%
binomial2 = [[[[a * b for b in (1, 2, 1)] for a in (1, 2, 1)]]]
report2 = sd.checkerboard(sd.ConvTranspose(3, stride=2, ndim=2), n=3, weight=binomial2)
assert report2.taps_per_phase == ((4, 2), (2, 1)) and report2.satisfied is True
print(report2.verdict.split(";")[0])
if plt is not None:
    picture = report2.plot()
    ones2 = np.zeros((7, 7), int)
    for i in range(3):
        for j in range(3):
            ones2[2 * i: 2 * i + 3, 2 * j: 2 * j + 3] += 1  # scatter a ones kernel: the overlap counts
    assert (picture.data["overlap"] == ones2).all()

# %% [markdown]
# ## 10. The whole catalogue
#
# `sd.identities` holds these identities (and a few documented non-identities) as data, each with
# a citation. Each is proved by both routes.

# %%
proofs = sd.identities.prove_all()
rows = ["| identity | statement | result |", "|---|---|---|"]
for proof in proofs:
    status = "proved" if proof.holds else "refuted (as catalogued)"
    statement = proof.identity.statement.replace("|", r"\|")
    rows.append(f"| `{proof.identity.name}` | {statement} | {status} |")
show_markdown("\n".join(rows))
assert all(proof.ok for proof in proofs), [str(p) for p in proofs if not p.ok]
