"""TensorFlow and JAX dialects against the real frameworks (optional extras: skipped where not installed).

For seeded random configurations of each family — ``tf.nn.conv{1,2,3}d``, ``tf.nn.conv{1,2,3}d_transpose``,
``jax.lax.conv_general_dilated``, ``jax.lax.conv_transpose`` — over strides, dilations, groups and padding
strings or pairs, with the frameworks' default layouts:

1. acceptance: the framework call (written here, independently of symdeconv's printing) and the symdeconv
   layer either both accept the configuration or both refuse it (symdeconv with a ``SymdeconvError``);
2. values: where both accept, the compiled symdeconv layer equals the framework's output;
3. the printed call: ``layer.framework_call(...)``, executed as a user would paste it, gives the same output.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import symdeconv as sd

pytest.importorskip("numba")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

N_CONFIGS = 60  # per family


def _tf():
    return pytest.importorskip("tensorflow", reason="tensorflow-cpu is an optional test extra (not installed)")


def _jax():
    pytest.importorskip("jax", reason="jax is an optional test extra (not installed)")
    import jax

    jax.config.update("jax_enable_x64", False)
    return jax


def _run(fn):
    """``(result, None)`` or ``(None, exception)``."""
    try:
        return np.asarray(fn()), None
    except Exception as err:  # noqa: BLE001 - any refusal by the framework is a refusal
        return None, err


def _sd(build):
    try:
        return build(), None
    except sd.SymdeconvError as err:
        return None, err


def _close(a, b, scale_terms):
    tol = 1e-4 * np.sqrt(scale_terms)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * (1 + np.abs(b).max()))


def _exec(call: str, **names) -> np.ndarray:
    scope = dict(names)
    exec(f"result = {call.split('  #')[0]}", scope)  # noqa: S102 - the library's own printed call, in a test
    return np.asarray(scope["result"])


def _check(ref, ref_err, build, x, w, size, terms, names, counts, what):
    """One configuration: acceptance agrees; where both accept, the compiled layer and its printed call
    equal the framework's output ``ref``.  ``counts`` tallies "both" and "refused"."""
    layer, err = _sd(build)
    if layer is not None:
        try:
            got = sd.compile(layer)(x, w)
        except sd.SymdeconvError as e:  # refused at this input size (too small)
            layer, err = None, e
    assert (ref is None) == (layer is None), (what, ref_err, err)
    if ref is None:
        counts["refused"] += 1
        return
    counts["both"] += 1
    _close(got, ref, terms)
    _close(_exec(layer.framework_call(size), x=x, **names), ref, terms)


def _tf_pad(n, rng):
    kind = rng.choice(["SAME", "VALID", "explicit", "lower"])
    if kind == "explicit":
        return [(int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(n)]
    return "same" if kind == "lower" else str(kind)


@pytest.mark.tf
@pytest.mark.parametrize("n", [1, 2, 3])
def test_tf_conv_against_tensorflow(n):
    tf = _tf()
    rng = np.random.default_rng(100 + n)
    fn = {1: tf.nn.conv1d, 2: tf.nn.conv2d, 3: tf.nn.conv3d}[n]
    counts = {"both": 0, "refused": 0}
    for _ in range(N_CONFIGS):
        k = int(rng.integers(1, 4))
        s = int(rng.integers(1, 4))
        d = int(rng.integers(1, 3))
        cin, cout = int(rng.integers(1, 4)), int(rng.integers(2, 5))  # (not 1 → 1: a plan met a third time would compile its stencil)
        pad = _tf_pad(n, rng)
        size = tuple(int(v) for v in rng.integers(1, 9, n))
        x = rng.standard_normal((2,) + size + (cin,)).astype(np.float32)
        w = rng.standard_normal((k,) * n + (cin, cout)).astype(np.float32)
        tf_pad = pad if isinstance(pad, str) else [[0, 0]] + [list(p) for p in pad] + [[0, 0]]
        if n == 1 and not isinstance(pad, str):  # tf.nn.conv1d refuses padding lists: conv2d on a unit axis
            ref, ref_err = _run(lambda: tf.nn.conv2d(x[:, None], w[None], strides=(1, s), dilations=(1, d),
                                                     padding=[[0, 0], [0, 0], list(pad[0]), [0, 0]])[:, 0])
        elif n == 1:
            ref, ref_err = _run(lambda: fn(x, w, stride=s, padding=tf_pad, dilations=d))
        else:
            strides = s if n == 2 else [1] + [s] * n + [1]
            dil = d if n == 2 else [1] + [d] * n + [1]
            ref, ref_err = _run(lambda: fn(x, w, strides=strides, padding=tf_pad, dilations=dil))
        ke = d * (k - 1) + 1
        reach = [i + (0 if isinstance(pad, str) else sum(pad[j])) - ke for j, i in enumerate(size)]
        if ref is not None and min(reach) < 0 and (pad == "VALID" or not isinstance(pad, str)):
            # no output sample: TensorFlow returns uninitialised memory rather than refusing
            ref, ref_err = None, ValueError("the kernel is longer than the padded input")
        build = lambda: sd.Conv((k,) * n, stride=s, padding=tuple(pad) if not isinstance(pad, str) else pad, dilation=d,
                                in_channels=cin,
                 out_channels=cout, convention="tf")  # noqa: E731
        _check(ref, ref_err, build, x, w, size, cin * k**n, dict(tf=tf, filters=w), counts, (k, s, d, pad, size))
    assert counts["both"] >= N_CONFIGS // 4 and counts["refused"] >= 1, counts  # the sweep covers both outcomes


@pytest.mark.tf
@pytest.mark.parametrize("n", [1, 2, 3])
def test_tf_conv_transpose_against_tensorflow(n):
    tf = _tf()
    rng = np.random.default_rng(200 + n)
    fn = {1: tf.nn.conv1d_transpose, 2: tf.nn.conv2d_transpose, 3: tf.nn.conv3d_transpose}[n]
    counts = {"both": 0, "refused": 0}
    for _ in range(N_CONFIGS):
        k = int(rng.integers(1, 5))
        s = int(rng.integers(1, 4))
        d = int(rng.integers(1, 3))
        cin, cout = int(rng.integers(1, 4)), int(rng.integers(2, 4))  # (not 1 → 1: a plan met a third time would compile its stencil)
        pad = str(rng.choice(["SAME", "VALID", "explicit"]))
        if pad == "explicit":
            pad = tuple((int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(n))
        size = tuple(int(v) for v in rng.integers(1, 6, n))
        ke = d * (k - 1) + 1
        # an output size TF accepts for this input: the gradient of a conv from `out` samples has `size` outputs
        if isinstance(pad, tuple):
            out = tuple(max(1, s * (i - 1) + ke - lo - hi) for i, (lo, hi) in zip(size, pad))
        else:
            out = tuple(s * i if pad == "SAME" else s * (i - 1) + max(ke, s) for i in size)
        out = tuple(o + int(rng.integers(0, 2)) * (rng.random() < 0.3) for o in out)  # sometimes one more
        x = rng.standard_normal((2,) + size + (cin,)).astype(np.float32)
        w = rng.standard_normal((k,) * n + (cout, cin)).astype(np.float32)
        strides = s if n != 3 else [1, s, s, s, 1]
        dil = d if n != 3 else [1, d, d, d, 1]
        tf_pad = pad if isinstance(pad, str) else [[0, 0]] + [list(p) for p in pad] + [[0, 0]]
        if n == 1 and not isinstance(pad, str):  # conv1d_transpose refuses padding lists: conv2d_transpose
            ref, ref_err = _run(lambda: tf.nn.conv2d_transpose(  # on a unit axis
                x[:, None], w[None], (2, 1) + out + (cout,), (1, s), [[0, 0], [0, 0], list(pad[0]), [0, 0]],
                dilations=(1, d))[:, 0])
        else:
            ref, ref_err = _run(lambda: fn(x, w, (2,) + out + (cout,), strides, tf_pad, dilations=dil))
        build = lambda: sd.ConvTranspose((k,) * n, stride=s, padding=pad, dilation=d, in_channels=cin,
                                         out_channels=cout,
                 convention="tf", output_shape=out)  # noqa: E731
        _check(ref, ref_err, build, x, w, size, cin * k**n, dict(tf=tf, filters=w, N=2), counts,
               (k, s, d, pad, size, out))
    assert counts["both"] >= N_CONFIGS // 4, counts


@pytest.mark.tf
def test_tf_valid_transposed_default_output_size_rule_is_keras_rule():
    """The printed output-size rule of a VALID transposed layer with d(k−1)+1 < stride is s·W (Keras), and
    the printed call computes the layer's samples (it once printed s(W−1)+k_eff and lost the last ones)."""
    tf = _tf()
    layer = sd.ConvTranspose(1, stride=2, padding="VALID", convention="tf")
    assert "2*W" in layer.framework_call() and layer.output_shape(3) == (6,)
    x = np.arange(1, 4, dtype=np.float32).reshape(1, 3, 1)
    w = np.array([[[2.0]]], dtype=np.float32)
    got = _exec(layer.framework_call((3,)), tf=tf, x=x, filters=w, N=1)
    np.testing.assert_array_equal(got, sd.compile(layer)(x, w))


def _jax_pad(n, rng, transposed):
    choices = ["SAME", "VALID", "pairs", "lower"] + ([] if transposed else ["SAME_LOWER"])
    kind = rng.choice(choices)
    if kind == "pairs":
        return [(int(rng.integers(-1, 3)), int(rng.integers(-1, 3))) for _ in range(n)]
    return str(rng.choice(["same", "valid"])) if kind == "lower" else str(kind)


@pytest.mark.jax
@pytest.mark.parametrize("n", [1, 2, 3])
def test_jax_conv_general_dilated_against_jax(n):
    jax = _jax()
    lax = jax.lax
    rng = np.random.default_rng(300 + n)
    letters = "HWD"[:n] if n > 1 else "H"
    # data and kernel layouts: channels first or last, kernel OI…, …IO or IO… (out = lhs: one data layout)
    layouts = [(a, b) for a in ("NC" + letters, "N" + letters + "C") for b in ("OI" + letters, letters + "IO",
                                                                              "IO" + letters)]
    counts = {"both": 0, "refused": 0}
    for _ in range(N_CONFIGS):
        lhs_spec, rhs_spec = layouts[int(rng.integers(len(layouts)))]
        dn = (lhs_spec, rhs_spec, lhs_spec)
        k = int(rng.integers(1, 4))
        s = int(rng.integers(1, 3))
        d = int(rng.integers(1, 3))
        lhs = int(rng.integers(1, 3)) if rng.random() < 0.4 else 1
        groups = int(rng.choice([1, 2]))
        cin, cout = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        if cin == groups and cout == groups and groups > 1:
            cout *= 2  # fewer one-channel-per-group layers (a plan met a third time compiles its stencil)
        pad = _jax_pad(n, rng, False)
        size = tuple(int(v) for v in rng.integers(2, 7, n))
        x = rng.standard_normal((2, cin) + size).astype(np.float32)  # (N, C, spatial): moved to lhs_spec
        x = np.ascontiguousarray(np.transpose(x, ["NC".index(c) if c in "NC" else 2 + letters.index(c)
                                                  for c in lhs_spec]))
        w = rng.standard_normal((cout, cin // groups) + (k,) * n).astype(np.float32)
        w = np.ascontiguousarray(np.transpose(w, ["OI".index(c) if c in "OI" else 2 + letters.index(c)
                                                  for c in rhs_spec]))
        jpad = pad if isinstance(pad, str) else [tuple(p) for p in pad]
        ref, ref_err = _run(lambda: lax.conv_general_dilated(
            x, w, (s,) * n, jpad, lhs_dilation=(lhs,) * n, rhs_dilation=(d,) * n, dimension_numbers=dn,
            feature_group_count=groups))
        if ref is not None and 0 in ref.shape:
            ref, ref_err = None, ValueError("empty output")
        build = lambda: sd.Conv((k,) * n, stride=s, padding=tuple(pad) if not isinstance(pad, str) else pad, dilation=d,
                                groups=groups,
                 in_channels=cin, out_channels=cout, convention="jax", lhs_dilation=lhs,
                 dimension_numbers=dn)  # noqa: E731
        _check(ref, ref_err, build, x, w, size, cin * k**n, dict(jax=jax, w=w), counts,
               (k, s, d, lhs, groups, pad, size, dn))
    assert counts["both"] >= N_CONFIGS // 4 and counts["refused"] >= 1, counts


@pytest.mark.jax
@pytest.mark.parametrize("n", [1, 2])
def test_jax_conv_transpose_against_jax(n):
    jax = _jax()
    lax = jax.lax
    rng = np.random.default_rng(400 + n)
    letters = "HW"[:n] if n > 1 else "H"
    dn = ("N" + letters + "C", letters + "IO", "N" + letters + "C")
    counts = {"both": 0, "refused": 0}
    for _ in range(N_CONFIGS):
        k = int(rng.integers(1, 5))
        s = int(rng.integers(1, 3))
        d = int(rng.integers(1, 3)) if rng.random() < 0.3 else 1
        cin, cout = int(rng.integers(1, 3)), int(rng.integers(2, 4))
        pad = _jax_pad(n, rng, True)
        tk = bool(rng.random() < 0.5)
        size = tuple(int(v) for v in rng.integers(2, 6, n))
        x = rng.standard_normal((2,) + size + (cin,)).astype(np.float32)
        w = rng.standard_normal((k,) * n + ((cout, cin) if tk else (cin, cout))).astype(np.float32)
        jpad = pad if isinstance(pad, str) else [tuple(p) for p in pad]
        ref, ref_err = _run(lambda: lax.conv_transpose(x, w, (s,) * n, jpad, rhs_dilation=(d,) * n,
                                                       dimension_numbers=dn, transpose_kernel=tk))
        if ref is not None and 0 in ref.shape:
            ref, ref_err = None, ValueError("empty output")
        build = lambda: sd.ConvTranspose((k,) * n, stride=s, padding=tuple(pad) if not isinstance(pad, str) else pad,
                                         dilation=d,
                 in_channels=cin, out_channels=cout, convention="jax", dimension_numbers=dn,
                 transpose_kernel=tk)  # noqa: E731
        _check(ref, ref_err, build, x, w, size, cin * k**n, dict(jax=jax, w=w), counts, (k, s, d, tk, pad, size))
    assert counts["both"] >= N_CONFIGS // 4 and counts["refused"] >= 1, counts


@pytest.mark.jax
def test_jax_lower_case_same_is_the_forward_padding():
    """The issue's example: k = 4, stride 1, 'same', x = 1…5, w = (1, 10, 100, 1000)."""
    jax = _jax()
    x = np.arange(1.0, 6.0, dtype=np.float32).reshape(1, 5, 1)
    w = np.array([1.0, 10.0, 100.0, 1000.0], dtype=np.float32).reshape(4, 1, 1)
    layer = sd.ConvTranspose(4, stride=1, padding="same", convention="jax")
    expected = np.array([3210, 4321, 5432, 543, 54], dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(jax.lax.conv_transpose(x, w, (1,), "same", dimension_numbers=(
        "NHC", "HIO", "NHC"))).reshape(-1), expected)
    np.testing.assert_array_equal(sd.compile(layer)(x, w).reshape(-1), expected)
    upper = sd.ConvTranspose(4, stride=1, padding="SAME", convention="jax")
    np.testing.assert_array_equal(sd.compile(upper)(x, w).reshape(-1), [2100, 3210, 4321, 5432, 543])


@pytest.mark.tf
@pytest.mark.torch
def test_torch_layers_convert_to_tf_and_the_printed_call_runs():
    """PyTorch layers → ``sd.convert(..., to="tf")``: the issue's examples and a seeded sweep of 1-D and 2-D
    layers.  Every conversion returned is run in TensorFlow as printed (weights moved by the printed
    transform) and compared with the PyTorch layer itself; the rest must raise ``SymdeconvError``."""
    tf = _tf()
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(500)
    configs = [  # (ndim, transposed, k, s, p, output_padding, d)
        (2, True, 3, 2, 1, 1, 1),   # the everyday ×2 upsampler: conv2d_transpose with explicit padding
        (2, True, 5, 1, 1, 0, 1),
        (2, False, 3, 2, 1, 0, 2),  # strided and dilated: conv2d with explicit padding and dilations
        (1, True, 3, 2, 0, 1, 1),   # Keras's output_padding size rule
    ]
    for _ in range(60):
        n = int(rng.integers(1, 3))
        transposed = bool(rng.random() < 0.5)
        k, s, d = int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
        p = int(rng.integers(0, k))
        a = int(rng.integers(0, max(s, d))) if transposed else 0
        configs.append((n, transposed, k, s, p, a, d))
    converted = refused = 0
    for n, transposed, k, s, p, a, d in configs:
        if transposed:
            layer = sd.ConvTranspose((k,) * n, stride=s, padding=p, output_padding=a, dilation=d, in_channels=2,
                                     out_channels=3)
        else:
            layer = sd.Conv((k,) * n, stride=s, padding=p, dilation=d, in_channels=2, out_channels=3)
        size = tuple(int(v) for v in rng.integers(3, 7, n))
        try:
            layer.output_shape(size)
        except sd.SymdeconvError:
            continue
        try:
            conv = sd.convert(layer, to="tf")
        except sd.SymdeconvError as err:
            assert "no exact equivalent" in str(err)
            refused += 1
            continue
        converted += 1
        x = rng.standard_normal((2, 2) + size).astype(np.float32)
        w = rng.standard_normal(layer.weight_shape).astype(np.float32)
        fn = getattr(F, f"conv_transpose{n}d" if transposed else f"conv{n}d")
        extra = dict(output_padding=a) if transposed else {}
        ref = fn(torch.from_numpy(x), torch.from_numpy(w), stride=s, padding=p, dilation=d, **extra).numpy()
        xt = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        names = dict(zip("HW" if n == 2 else "W", size))
        got = _exec(conv.layer.framework_call(), tf=tf, x=xt, filters=conv.weight(w), N=2, **names)
        _close(np.moveaxis(got, -1, 1), ref, 2 * k**n)
    assert converted >= 30 and converted >= refused, (converted, refused)


def _torch_run(call: str, torch, x, w):
    """Build the printed torch module (``torch.nn.Conv2d(...)``), give it the weight, apply it (no bias)."""
    scope = {"torch": torch}
    exec(f"m = {call.split('  #')[0]}", scope)  # noqa: S102 - the library's own printed call, in a test
    m = scope["m"]
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
        if m.bias is not None:
            m.bias.zero_()
        return m(torch.from_numpy(x)).numpy()


@pytest.mark.tf
@pytest.mark.jax
@pytest.mark.torch
def test_tf_and_jax_layers_convert_to_the_other_frameworks():
    """TF → torch, TF → JAX, JAX → torch, JAX → TF: a seeded sweep of 2-D layers of each dialect; every
    conversion returned runs in the target framework as printed (torch: the printed module with the moved
    weight) and equals the source framework's own output; the others raise with a reason."""
    tf = _tf()
    jax = _jax()
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(600)
    done = {"converted": 0, "refused": 0}
    for _ in range(40):
        k, s = int(rng.integers(1, 5)), int(rng.integers(1, 3))
        transposed = bool(rng.random() < 0.5)
        pad = str(rng.choice(["SAME", "VALID"])) if rng.random() < 0.7 else tuple(
            (int(rng.integers(0, 2)), int(rng.integers(0, 2))) for _ in range(2))
        size = (int(rng.integers(2, 6)), int(rng.integers(2, 6)))
        cin, cout = 2, 3
        src = str(rng.choice(["tf", "jax"]))
        x_cl = rng.standard_normal((2,) + size + (cin,)).astype(np.float32)  # channels last (both defaults)
        if src == "tf":
            if transposed:
                layer = sd.ConvTranspose((k, k), stride=s, padding=pad, in_channels=cin, out_channels=cout,
                                         convention="tf")
                out = layer.output_shape(size)
                w = rng.standard_normal(layer.weight_shape).astype(np.float32)
                tf_pad = pad if isinstance(pad, str) else [[0, 0]] + [list(p) for p in pad] + [[0, 0]]
                ref = tf.nn.conv2d_transpose(x_cl, w, (2,) + out + (cout,), s, tf_pad).numpy()
            else:
                layer = sd.Conv((k, k), stride=s, padding=pad, in_channels=cin, out_channels=cout, convention="tf")
                w = rng.standard_normal(layer.weight_shape).astype(np.float32)
                tf_pad = pad if isinstance(pad, str) else [[0, 0]] + [list(p) for p in pad] + [[0, 0]]
                ref = tf.nn.conv2d(x_cl, w, s, tf_pad).numpy()
        else:
            dn = ("NHWC", "HWIO", "NHWC")
            jpad = pad if isinstance(pad, str) else [tuple(p) for p in pad]
            if transposed:
                layer = sd.ConvTranspose((k, k), stride=s, padding=pad, in_channels=cin, out_channels=cout,
                                         convention="jax")
                w = rng.standard_normal(layer.weight_shape).astype(np.float32)
                ref = np.asarray(jax.lax.conv_transpose(x_cl, w, (s, s), jpad, dimension_numbers=dn,
                                                        transpose_kernel=layer.transpose_kernel))
            else:
                layer = sd.Conv((k, k), stride=s, padding=pad, in_channels=cin, out_channels=cout, convention="jax",
                                dimension_numbers=dn)
                w = rng.standard_normal(layer.weight_shape).astype(np.float32)
                ref = np.asarray(jax.lax.conv_general_dilated(x_cl, w, (s, s), jpad, dimension_numbers=dn))
        try:
            layer.output_shape(size)  # (acceptance against the frameworks is the families' tests' business)
        except sd.SymdeconvError:
            continue
        for to in ("torch", "tf", "jax"):
            if to == src:
                continue
            try:
                conv = sd.convert(layer, to=to, input_shape=size)
            except sd.SymdeconvError as err:
                assert "no exact equivalent" in str(err)
                done["refused"] += 1
                continue
            done["converted"] += 1
            w2 = conv.weight(w)
            call = conv.layer.framework_call(size)
            if to == "torch":
                got = np.moveaxis(_torch_run(call, torch, np.ascontiguousarray(np.moveaxis(x_cl, -1, 1)), w2), 1, -1)
            elif to == "tf":
                got = _exec(call, tf=tf, x=x_cl, filters=w2, N=2)
            else:
                lhs = conv.layer.dimension_numbers[0]
                xin = x_cl if not lhs.startswith("NC") else np.ascontiguousarray(np.moveaxis(x_cl, -1, 1))
                got = _exec(call, jax=jax, x=xin, w=w2)
                got = got if not lhs.startswith("NC") else np.moveaxis(got, 1, -1)
            _close(got, ref, cin * k * k)
    assert done["converted"] >= 40, done


@pytest.mark.tf
@pytest.mark.parametrize("n", [1, 2, 3])
def test_keras_conv_transpose_with_output_padding_against_keras(n):
    """Keras ``Conv{1,2,3}DTranspose(filters, kernel_size, strides, padding, output_padding)``: its output-size
    rule with and without ``output_padding`` (``None`` and ``0`` differ), against
    ``sd.ConvTranspose(..., convention="tf", output_padding=…)``; acceptance, values and the printed call."""
    tf = _tf()
    keras = tf.keras
    rng = np.random.default_rng(700 + n)
    cls = {1: keras.layers.Conv1DTranspose, 2: keras.layers.Conv2DTranspose, 3: keras.layers.Conv3DTranspose}[n]
    counts = {"both": 0, "refused": 0}
    for _ in range(25 if n < 3 else 12):
        k, s = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        pad = str(rng.choice(["same", "valid"]))
        a = None if rng.random() < 0.3 else int(rng.integers(0, s + 1))  # sometimes = s: Keras refuses
        cin, cout = int(rng.integers(1, 3)), int(rng.integers(2, 4))
        size = tuple(int(v) for v in rng.integers(1, 5, n))
        x = rng.standard_normal((2,) + size + (cin,)).astype(np.float32)
        w = rng.standard_normal((k,) * n + (cout, cin)).astype(np.float32)

        def keras_run():
            layer = cls(cout, k, strides=s, padding=pad, output_padding=a, use_bias=False)
            layer.build((2,) + size + (cin,))
            layer.set_weights([w])
            return layer(x).numpy()

        ref, ref_err = _run(keras_run)
        if ref is not None and 0 in ref.shape:
            ref, ref_err = None, ValueError("empty output")
        build = lambda: sd.ConvTranspose((k,) * n, stride=s, padding=pad.upper(), output_padding=a, in_channels=cin,
                                          # noqa: E731
                                         out_channels=cout, convention="tf")
        _check(ref, ref_err, build, x, w, size, cin * k**n, dict(tf=tf, filters=w, N=2), counts,
               (k, s, pad, a, size))
    assert counts["both"] >= 5 and counts["refused"] >= 1, counts


@pytest.mark.tf
def test_tf_channels_first_explicit_padding_pads_the_spatial_axes():
    """TF's explicit padding list follows data_format: for NCHW the two zero pairs come first.  (With
    padding=((0, 0), (2, 2)) the NHWC order would pad H instead of W in an NCHW call: a silent error.)
    TensorFlow's CPU conv2d takes NHWC only, so the printed list is checked, and the NHWC call run."""
    tf = _tf()
    first = sd.Conv((3, 3), stride=1, padding=((0, 0), (2, 2)), in_channels=2, out_channels=2, convention="tf",
                    data_format="channels_first")
    assert "padding=[[0, 0], [0, 0], [0, 0], [2, 2]]" in first.framework_call()
    last = sd.Conv((3, 3), stride=1, padding=((0, 0), (2, 2)), in_channels=2, out_channels=2, convention="tf")
    assert "padding=[[0, 0], [0, 0], [2, 2], [0, 0]]" in last.framework_call()
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 5, 4, 2)).astype(np.float32)
    w = rng.standard_normal(last.weight_shape).astype(np.float32)
    np.testing.assert_allclose(_exec(last.framework_call(), tf=tf, x=x, filters=w), sd.compile(last)(x, w),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(sd.SymdeconvError, match="goes with padding 'SAME' or 'VALID'"):
        sd.ConvTranspose((3, 3), stride=2, padding=((1, 1), (1, 1)), output_padding=1, convention="tf")
