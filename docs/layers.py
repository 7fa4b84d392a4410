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
# # Layers: PyTorch, TensorFlow and JAX convolutions as exact operator chains
#
# Deep-learning users think in layers — `ConvTranspose2d(4, 2, 1)`, `conv2d_transpose(..., "SAME")`,
# `lax.conv_transpose(...)` — and lose days to padding and output-shape conventions that differ between
# frameworks. `symdeconv` makes every such layer an exact composition of the multirate primitives:
#
# * a convolution (what frameworks call conv — a cross-correlation) is $\downarrow_s \circ \mathrm{xcorr}$;
# * a transposed convolution is $\mathrm{conv}(w) \circ \uparrow_s$, cropped by its padding;
#
# with dilation as spread-out taps, channels and groups as a block-structured weight, and the low-side padding
# as the origin of the convolution. The high side (padding, `output_padding`, TensorFlow's `output_shape`) only
# decides how many outputs there are. So the polyphase normal form, the checkerboard analysis and equivalence
# proofs all work on layers, and the three frameworks' parameters can be compared exactly.
#
# Every claim below is an `assert`; the test suite executes this notebook.

# %%
import numpy as np
import sympy as sp
from IPython.display import Markdown, display

import symdeconv as sd


def show_markdown(source: str) -> None:
    """A Markdown table: rendered in a notebook (a Jupyter kernel), printed as it is when run as a script."""
    try:
        from IPython import get_ipython
        shell = get_ipython()
    except ImportError:
        shell = None
    display(Markdown(source)) if shell is not None and "IPKernelApp" in shell.config else print(source)


def show_form(title: str, layer) -> None:
    print(f"{title}:  {layer!r}")
    print("  operator:", layer.operator)
    for line in str(sd.canonical(layer)).splitlines():
        print("   ", line)


# %% [markdown]
# ## Writing a layer
#
# `sd.Conv` / `sd.ConvTranspose` take the kernel size and then keywords only (`stride=`, `padding=`,
# `in_channels=`, ...). PyTorch's positional order — `ConvTranspose2d(64, 32, 3)` is 64 input channels, 32 output
# channels, kernel 3 — is refused with the spelling to use; `sd.torch.ConvTranspose2d` takes it as written
# (and `sd.keras.Conv2DTranspose` Keras's `(filters, kernel_size, strides, padding, ...)`).

# %%
try:
    sd.ConvTranspose(64, 32, 3)
except sd.SymdeconvError as err:
    print(err)
small = sd.torch.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
assert small.matrix((2, 2)) == sd.ConvTranspose(3, stride=2, padding=1, output_padding=1, in_channels=4,
                                                out_channels=2, ndim=2).matrix((2, 2))
small

# %% [markdown]
# ## The common layers and their polyphase forms
#
# The four upsampling layers of everyday architectures (1-D here; 2-D layers are their separable products):
#
# | layer | where it is used |
# |---|---|
# | `ConvTranspose(4, stride=2, padding=1)` | DCGAN / pix2pix generators: exact ×2 |
# | `ConvTranspose(3, stride=2, padding=1, output_padding=1)` | ResNet-style decoders: exact ×2 with an odd kernel |
# | `ConvTranspose(2, stride=2, padding=0)` | U-Net up-convolutions |
# | `ConvTranspose(4, stride=2, padding=1)` with the FCN bilinear weights | FCN's learnable bilinear ×2 (Long, Shelhamer & Darrell 2015) |
#
# The normal form is derived by the algebra from the layer's operator: output phase $p$ of block $m$ reads
# the listed inputs with the listed weights — one weight symbol per tap, taken from the layer's own weight
# array (`weight_symbols()`, PyTorch layout `(C_in, C_out/groups, k)`).

# %%
common = {
    "ConvTranspose 4/2/1": sd.ConvTranspose(4, stride=2, padding=1),
    "ConvTranspose 3/2/1, output_padding 1": sd.ConvTranspose(3, stride=2, padding=1, output_padding=1),
    "ConvTranspose 2/2/0": sd.ConvTranspose(2, stride=2, padding=0),
}
for title, layer in common.items():
    show_form(title, layer)
    print()

w4 = common["ConvTranspose 4/2/1"].weight_symbols()[0, 0]
form = sd.canonical(common["ConvTranspose 4/2/1"])
assert form.P == (2,) and form.Q == (1,)
assert form.phase_taps(0) == {0: w4[1], -1: w4[3]}
assert form.phase_taps(1) == {1: w4[0], 0: w4[2]}
w3 = common["ConvTranspose 3/2/1, output_padding 1"].weight_symbols()[0, 0]
assert sd.canonical(common["ConvTranspose 3/2/1, output_padding 1"]).phase_taps(0) == {0: w3[1]}
w2 = common["ConvTranspose 2/2/0"].weight_symbols()[0, 0]
assert sd.canonical(common["ConvTranspose 2/2/0"]).phase_taps(1) == {0: w2[1]}

# %% [markdown]
# `output_padding` does not change the operator — only how many of its outputs the layer keeps — so
# 3/2/1 with and without it have one normal form and differ only in their windows:

# %%
a, b = sd.ConvTranspose(3, stride=2, padding=1, output_padding=1), sd.ConvTranspose(3, stride=2, padding=1)
assert sd.equivalent(a, b)
print("windows for an input of 4:", a.window(4), "vs", b.window(4))
assert a.window(4) == ((0, 8),) and b.window(4) == ((0, 7),)

# %% [markdown]
# ### The FCN bilinear ×2 is linear interpolation
#
# With the FCN bilinear kernel $(\tfrac14, \tfrac34, \tfrac34, \tfrac14)$ (its `upsample_filt`), the
# 4/2/1 layer *is* half-pixel linear interpolation (`align_corners=False`) away from the borders: equal
# normal forms prove it for every input length. `sd.linear_interp` is defined sample by sample from the
# interpolation formula, not from a filter, so this is a real check. In 2-D the weight is the outer product
# and the layer matrix is the Kronecker product of the 1-D ones.

# %%
bilinear = sd.bilinear_kernel(4)
fcn = sd.ConvTranspose(4, stride=2, padding=1)
fcn_op = fcn.operator_with([[bilinear]])
print(sd.canonical(fcn_op))
assert sd.equivalent(fcn_op, sd.linear_interp(2))

fcn2 = sd.ConvTranspose(4, stride=2, padding=1, ndim=2)
w2d = np.array([[[[bi * bj for bj in bilinear] for bi in bilinear]]], dtype=object)
m2 = fcn2.matrix((3, 3), weight=w2d)
m1 = fcn.matrix(3, weight=[[bilinear]])
assert m2 == sp.Matrix(sp.kronecker_product(m1, m1))

# %% [markdown]
# ## Checkerboard analysis
#
# `sd.checkerboard` reports two separate facts (Odena, Dumoulin & Olah, *Deconvolution and Checkerboard
# Artifacts*, Distill 2016):
#
# * **structural** — kernel size and stride only: how many kernel taps reach each output phase. Kernel 3 at
#   stride 2 overlaps unevenly (2 and 1 taps per phase); kernels 4 and 2 overlap evenly.
# * **weights** — a constant input gives a constant output (away from the borders) iff every output phase
#   has the same gain, the sum of its taps. The report gives this condition as equations in the layer's
#   weight symbols and, for given values (`weight=`), says whether they satisfy it.
#
# Even overlap does not make a learned kernel checkerboard-free — 4/2/1 still needs $w_0 + w_2 = w_1 + w_3$ —
# but it is what lets simple kernels (all ones, the bilinear kernel) satisfy the condition; uneven overlap
# makes the all-ones kernel fail it.

# %%
reports = {}
for title, layer in common.items():
    k = layer.kernel_size[0]
    reports[title] = sd.checkerboard(layer, weight=[[[1] * k]])
    print(title, "(all-ones weights)")
    print(reports[title])
    print("  symbolic weights:", sd.checkerboard(layer).verdict)
    print()
reports["FCN bilinear ×2"] = sd.checkerboard(fcn, weight=[[bilinear]])
print("FCN bilinear ×2:\n", reports["FCN bilinear ×2"], sep="")

assert reports["ConvTranspose 4/2/1"].even_overlap and reports["ConvTranspose 4/2/1"].constant_preserving
assert not reports["ConvTranspose 3/2/1, output_padding 1"].even_overlap
assert reports["ConvTranspose 3/2/1, output_padding 1"].has_checkerboard
assert reports["ConvTranspose 2/2/0"].constant_preserving
assert reports["FCN bilinear ×2"].constant_preserving and reports["FCN bilinear ×2"].gains == (1, 1)
assert reports["FCN bilinear ×2"].satisfied is True
# a learned 4/2/1 kernel: even overlap, and checkerboard-free iff w1 + w3 == w0 + w2
learned = sd.checkerboard(common["ConvTranspose 4/2/1"])
assert learned.even_overlap and learned.satisfied is None and learned.has_checkerboard
assert learned.conditions == (sp.Eq(w4[1] + w4[3], w4[0] + w4[2]),)
g0, g1 = learned.gains
assert sp.expand(g0 - (w4[1] + w4[3])) == 0 and sp.expand(g1 - (w4[0] + w4[2])) == 0

# %% [markdown]
# ## Transposition and the output-shape ambiguity
#
# A stride-$s$ convolution maps $s$ input sizes to the same output size; its transpose needs
# `output_padding` $a = (i + 2p - d(k-1) - 1) \bmod s$ to return to the right one (Dumoulin & Visin,
# relationship 14). Because the padding lives in the operator, `Conv(k, stride=s, padding=p).operator.T`
# *is* `ConvTranspose(k, stride=s, padding=p).operator` — the same weight array, the same symbols — and on finite
# signals the matrices are transposes once `sd.output_padding_for` has solved the ambiguity.

# %%
conv = sd.Conv(3, stride=2, padding=1)
assert sd.equivalent(conv.operator.T, sd.ConvTranspose(3, stride=2, padding=1).operator)
for i in (5, 6):
    o = conv.output_shape(i)
    a = sd.output_padding_for(conv, i)
    t = sd.ConvTranspose(3, stride=2, padding=1, output_padding=a)
    print(f"i = {i}: conv gives {o}, transpose with output_padding={a} gives {t.output_shape(o)}")
    assert t.output_shape(o) == (i,) and conv.matrix(i).T == t.matrix(o)
    assert a == (sd.shapes.transpose_ambiguity(i, 3, 2, 1),)
conv.matrix(6)

# %% [markdown]
# ## Sub-pixel form: 4/2/1 is a pixel shuffle of a 3×3 convolution
#
# Each of the four output phases of the 2-D 4/2/1 layer reads a 2×2 sub-kernel at offsets $\{-1, 0, 1\}^2$:
# so the layer equals a 3×3 convolution with 4 output channels (zeros where a phase does not read) followed
# by a pixel shuffle (Shi et al. 2016). The equivalence is proved on normal forms.

# %%
layer = sd.ConvTranspose(4, stride=2, padding=1, ndim=2)
w = layer.weight_symbols()[0, 0]
sub = {0: {1: 1, 2: 3}, 1: {0: 0, 1: 2}}  # phase -> {index in the 3-tap window: index in the 4-tap kernel}
phases = np.zeros((4, 1, 3, 3), dtype=object)
for r1 in range(2):
    for r2 in range(2):
        for a1, j1 in sub[r1].items():
            for a2, j2 in sub[r2].items():
                phases[2 * r1 + r2, 0, a1, a2] = w[j1, j2]
subpixel = sd.pixel_shuffle((2, 2)) @ sd.channel_conv(phases.tolist(), origin=1)
assert sd.equivalent(layer, subpixel)
print(sd.canonical(layer))

# %% [markdown]
# ## The three frameworks side by side
#
# `sd.convert(layer, to=...)` writes a layer in another framework's parameters and gives the weight
# transform (axis permutation, kernel flip); it raises when no exact equivalent exists. TensorFlow's
# `conv2d_transpose` is the gradient of `conv2d` from `output_shape`, and its `SAME` puts the odd padding
# sample on the *high* side — so for 3/2/1 with `output_padding=1` (which crops one sample from the *low*
# side) there is no TensorFlow equivalent at all, while JAX takes explicit pairs. Every conversion shown is
# checked on matrices with random weights.

# %%
rows = []
rng = np.random.default_rng(0)
for title, layer1 in list(common.items()) + [("FCN bilinear ×2 (4/2/1 + bilinear weights)", fcn)]:
    layer2 = sd.ConvTranspose(layer1.kernel_size * 2, stride=layer1.stride * 2, padding=layer1.padding * 2,
                              output_padding=layer1.output_padding * 2, ndim=2)
    cells = [f"`{layer2.framework_call()}`"]
    for to in ("tf", "jax"):
        try:
            result = sd.convert(layer2, to=to, input_shape=(4, 4))
        except sd.SymdeconvError as err:
            cells.append("no exact equivalent: " + str(err).split("tried ")[-1].split("), ")[0] + ")")
            continue
        weight = rng.integers(-3, 4, size=layer2.weight_shape)
        assert result.layer.matrix((4, 4), weight=result.weight(weight)) == layer2.matrix((4, 4), weight=weight)
        scope = "" if result.input_shape is None else f" (input {result.input_shape})"
        cells.append(f"`{result.layer.framework_call((4, 4))}`{scope}<br>weights: `{result.weight}`")
    rows.append(f"| {title} | " + " | ".join(cells) + " |")
show_markdown("| layer | PyTorch | TensorFlow | JAX |\n|---|---|---|---|\n" + "\n".join(rows))

# %% [markdown]
# TensorFlow's own example (datascience.stackexchange 6107): a 2×2 input, 3×3 ones, stride 2, `SAME`.
# With `output_shape` 4×4 it keeps the first four samples of the full 5×5 output (crop (0, 1)), with 3×3 the
# middle three (crop (1, 1)) — and only the second has a PyTorch equivalent, `padding=1`:

# %%
x = sp.Matrix([1, 2, 3, 4])
ones = np.ones((3, 3, 1, 1), dtype=int)
for out in ((4, 4), (3, 3)):
    tf_layer = sd.ConvTranspose(3, stride=2, padding="SAME", convention="tf", output_shape=out)
    y = (tf_layer.matrix((2, 2), weight=ones) * x).reshape(*out)
    print(f"output_shape {out}:", y.tolist())
    try:
        print("   PyTorch:", sd.convert(tf_layer, to="torch").layer.framework_call())
    except sd.SymdeconvError as err:
        print("   PyTorch: none —", str(err).split(": ", 2)[-1])
tf_4x4 = sd.ConvTranspose(3, stride=2, padding="SAME", convention="tf", output_shape=(4, 4))
assert (tf_4x4.matrix((2, 2), weight=ones) * x
        ).reshape(4, 4).tolist() == [[1, 1, 3, 2], [1, 1, 3, 2], [4, 4, 10, 6], [3, 3, 7, 4]]

# %% [markdown]
# ## Optional: the same matrices against PyTorch
#
# When PyTorch is installed, the layers' matrices reproduce `torch.nn.functional.conv_transpose2d` (the test
# suite checks hundreds of random configurations; here the four layers of this notebook).

# %%
try:
    import torch
except ImportError:
    torch = None
    print("PyTorch not installed: skipped")
if torch is not None:
    for title, layer1 in list(common.items()) + [("FCN bilinear ×2", fcn)]:
        layer2 = sd.ConvTranspose(layer1.kernel_size * 2, stride=layer1.stride * 2, padding=layer1.padding * 2,
                                  output_padding=layer1.output_padding * 2, ndim=2)
        weight = (w2d.astype(float) if title.startswith("FCN") else
                  rng.integers(-3, 4, size=layer2.weight_shape).astype(float))
        xin = rng.integers(-3, 4, size=(1, 4, 4)).astype(float)
        ref = torch.nn.functional.conv_transpose2d(torch.from_numpy(xin)[None], torch.from_numpy(weight),
                                                   stride=layer2.stride, padding=layer2.padding,
                                                   output_padding=layer2.output_padding)[0].numpy()
        ours = np.array(layer2.matrix((4, 4), weight=weight).tolist(), dtype=float) @ xin.reshape(-1)
        assert np.allclose(ours, ref.reshape(-1))
        print(f"{title}: matches torch, output {ref.shape[1:]}")

# %% [markdown]
# A real module becomes a layer and its weights with `sd.from_torch` (NumPy arrays in the layer's own layout;
# `sd.from_keras` does the same for a built Keras layer); the compiled layer computes the module's output:

# %%
if torch is not None:
    module = torch.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
    layer, w, b = sd.from_torch(module)
    x = rng.standard_normal((1, 4, 5, 5)).astype(np.float32)
    y = sd.compile(layer)(x, w, b)
    with torch.no_grad():
        assert np.allclose(y, module(torch.from_numpy(x)).numpy(), atol=1e-5)
    print(f"sd.from_torch: {layer!r}, output {y.shape}")

# %% [markdown]
# ## Optional: a conversion run in TensorFlow and JAX
#
# The everyday ×2 upsampler `ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1)` has no
# `"SAME"` / `"VALID"` form in TensorFlow (TF's `"SAME"` puts the odd sample on the other side), but
# `tf.nn.conv2d_transpose` with explicit padding reproduces it for every input size. Where TensorFlow
# and JAX are installed, the printed calls run here as written, with the printed weight transforms,
# and give the layer's own numbers (its matrix).

# %%
upsampler = sd.ConvTranspose((3, 3), stride=2, padding=1, output_padding=1, in_channels=1, out_channels=1)
w_up = rng.integers(-3, 4, size=upsampler.weight_shape).astype(np.float32)
x_up = rng.integers(-3, 4, size=(1, 1, 3, 4)).astype(np.float32)
M_up = np.array(upsampler.matrix((3, 4), weight=w_up).tolist(), dtype=np.float32)
expected_up = (M_up @ x_up.reshape(-1)).reshape(1, 1, 6, 8)
for to, module in (("tf", "tensorflow"), ("jax", "jax")):
    conversion = sd.convert(upsampler, to=to)
    print(conversion)
    try:
        framework = __import__(module)
    except ImportError:
        print(f"   {module} not installed: not run")
        continue
    if to == "tf":
        scope = dict(tf=framework, x=np.moveaxis(x_up, 1, -1), filters=conversion.weight(w_up), N=1)
        layout = (0, 3, 1, 2)  # NHWC -> NCHW
    else:
        import jax

        lhs = conversion.layer.dimension_numbers[0]
        scope = dict(jax=jax, x=x_up if lhs.startswith("NC") else np.moveaxis(x_up, 1, -1), w=conversion.weight(w_up))
        layout = (0, 1, 2, 3) if lhs.startswith("NC") else (0, 3, 1, 2)
    exec("y_run = " + conversion.layer.framework_call((3, 4)), scope)  # the printed call, as a user pastes it
    y_run = np.transpose(np.asarray(scope["y_run"]), layout)
    assert np.allclose(y_run, expected_up), to
    print(f"   ran in {module}: equals the layer's matrix, output {y_run.shape[2:]}")
