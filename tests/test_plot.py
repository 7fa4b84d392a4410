"""symdeconv.plot: the figures' data against independent oracles (NumPy scatter, explicit matrices), not pixels."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symdeconv as sd

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def scatter(kernel: np.ndarray, stride: tuple[int, ...], n: tuple[int, ...]) -> np.ndarray:
    """A transposed conv by definition: paste ``kernel`` at ``stride · m`` for every input position ``m``."""
    out = np.zeros([(ni - 1) * s + k for ni, s, k in zip(n, stride, kernel.shape)], kernel.dtype)
    for m in np.ndindex(*n):
        out[tuple(slice(i * s, i * s + k) for i, s, k in zip(m, stride, kernel.shape))] += kernel
    return out


def bar_heights(ax) -> list[float]:
    return [p.get_height() for p in ax.patches if p.get_width() > 0 and p.get_height() > 0]


@pytest.mark.parametrize("k,s", [(3, 2), (4, 2), (6, 3), (5, 3)])
def test_checkerboard_bars_are_the_scatter_counts(k, s):
    n = 5
    ones = scatter(np.ones(k, int), (s,), (n,))
    symbolic = sd.checkerboard(sd.ConvTranspose(k, stride=s), n=n).plot()
    assert np.array_equal(symbolic.data["overlap"], ones)
    assert bar_heights(symbolic.ax) == ones.tolist()
    assert np.array_equal(symbolic.data["phase"], np.arange(ones.size) % s)
    assert symbolic.data["response"] is None and "response_ax" not in symbolic.data  # symbolic: no numbers to draw
    colors = [p.get_facecolor() for p in symbolic.ax.patches if p.get_height() > 0]
    assert all((colors[t] == colors[t % s]) for t in range(ones.size))  # one colour per output phase

    rng = np.random.default_rng(k * 10 + s)
    w = rng.integers(1, 9, k)
    numeric = sd.checkerboard(w.tolist(), stride=s, n=n).plot()
    assert np.array_equal(numeric.data["overlap"], ones)
    expected = scatter(w.astype(float), (s,), (n,))
    assert np.allclose(numeric.data["response"], expected)
    (line,) = numeric.data["response_ax"].get_lines()
    assert np.allclose(line.get_ydata(), expected) and np.array_equal(line.get_xdata(), np.arange(ones.size))
    assert np.allclose(numeric.data["gains"], [w[p::s].sum() for p in range(s)])


def test_checkerboard_2d_image():
    k, s, n = (3, 4), (2, 2), (3, 2)
    bil = np.outer([1, 2, 1], [1, 3, 3, 1])
    layer = sd.ConvTranspose(k, stride=s, ndim=2)
    picture = sd.checkerboard(layer, n=n, weight=bil[None, None]).plot()
    ones = scatter(np.ones(k, int), s, n)
    assert np.array_equal(picture.data["overlap"], ones)
    assert np.array_equal(np.asarray(picture.ax.images[0].get_array()), ones)
    expected = scatter(bil.astype(float), s, n)
    assert np.allclose(picture.data["response"], expected)
    assert np.allclose(np.asarray(picture.data["response_ax"].images[0].get_array()), expected)
    assert "uneven overlap" in picture.ax.get_title() and "satisfy" in picture.ax.get_title()


def test_checkerboard_into_given_axes():
    fig, (a, b) = plt.subplots(1, 2)
    for k, ax in ((3, a), (4, b)):
        picture = sd.checkerboard((1,) * k, stride=2).plot(ax=ax)
        assert picture.ax is ax and picture.fig is fig
    assert bar_heights(a) == [1, 1, 2, 1, 2, 1, 2, 1, 1] and bar_heights(b) == [1, 1, 2, 2, 2, 2, 2, 2, 1, 1]
    picture = sd.plot_checkerboard(sd.checkerboard(sd.ConvTranspose(3, stride=2, ndim=2), n=2), ax=a)
    assert picture.ax is a and np.array_equal(picture.data["overlap"], scatter(np.ones((3, 3), int), (2, 2), (2, 2)))


@pytest.mark.parametrize("op", [
    sd.transposed_conv(sd.taps("q", 3), 2),
    sd.transposed_conv(sd.taps("q", 4), 3),
    sd.ConvTranspose(3, stride=2, padding=1).operator,
    sd.strided_conv(sd.taps("q", 3), 2),
    sd.upfirdn(sd.taps("h", 5), 3, 2),
])
def test_taps_diagram_is_the_normal_form_and_the_matrix(op):
    n = 4
    picture = sd.plot_taps(op, n=n)
    form = sd.canonical(op)
    P, Q = form.P[0], form.Q[0]
    assert picture.data["phase_taps"] == {p: form.phase_taps(p) for p in range(P)}
    (lo, hi), = op.out_box(((0, n),))
    matrix = op.matrix(n)
    nonzero = {(lo + r, c, matrix[r, c]) for r in range(matrix.rows) for c in range(matrix.cols) if matrix[r, c] != 0}
    edges = picture.data["edges"]
    assert {(t, m, c) for m, t, _, c in edges} == nonzero and len(edges) == len(nonzero)
    assert all(p == t % P for _, t, p, _ in edges)
    assert all(form.phase_taps(p)[m - Q * (t // P)] == c for m, t, p, c in edges)
    segments = picture.ax.collections[0].get_segments()
    assert [tuple(map(tuple, seg)) for seg in segments] == [((m * P / Q, 1.0), (t, 0.0)) for m, t, _, _ in edges]
    assert {text.get_text() for text in picture.ax.texts} == {str(c) for *_, c in edges}


def test_taps_diagram_of_a_layer_with_weights_blows_up_each_input():
    """Each input fans out into a copy of the (flipped) kernel: the edges from x[m] carry all k weights."""
    layer = sd.ConvTranspose(3, stride=2)
    picture = sd.plot_taps(layer, n=3, weight=[[[1, 2, 3]]])
    from_input = {}
    for m, t, _, c in picture.data["edges"]:
        from_input.setdefault(m, {})[t - 2 * m] = c
    assert all(fan == {0: 1, 1: 2, 2: 3} for fan in from_input.values()) and sorted(from_input) == [0, 1, 2]


def test_matrix_picture():
    op = sd.transposed_conv(sd.taps("q", 3), 2)
    picture = sd.plot_matrix(op, 4)
    matrix = op.matrix(4)
    mask = np.array([[matrix[r, c] != 0 for c in range(matrix.cols)] for r in range(matrix.rows)])
    assert np.array_equal(picture.data["mask"], mask) and picture.data["matrix"] == matrix
    assert np.array_equal(np.asarray(picture.ax.images[0].get_array()), mask.astype(int))
    assert picture.data["labels"] == {(r, c): str(matrix[r, c]) for r, c in zip(*np.nonzero(mask))}
    assert len(picture.ax.texts) == mask.sum() and picture.data["values"] is None

    layer = sd.ConvTranspose(4, stride=2, padding=1)
    numeric = sd.plot_matrix(layer, 3, weight=[[sd.bilinear_kernel(4)]], annotate=False)
    expected = np.array(layer.matrix(3, weight=[[sd.bilinear_kernel(4)]]).tolist(), dtype=float)
    assert np.allclose(numeric.data["values"], expected) and np.array_equal(numeric.data["mask"], expected != 0)
    assert numeric.data["labels"] == {} and not numeric.ax.texts
    big = sd.plot_matrix(sd.up(2), 40)
    assert big.data["labels"] == {} and big.data["mask"].sum() == 40


def test_errors():
    cases = [
        (lambda: sd.plot_taps(sd.up((2, 2))), "sd.plot_taps: op must be 1-D"),
        (lambda: sd.plot_taps(sd.up(2), n=0), "n must be a positive"),
        (lambda: sd.plot_taps(sd.up(2), ax="left"), "ax must be a matplotlib Axes"),
        (lambda: sd.plot_matrix(sd.up(2), 3, weight=[1]), "weight= is for a layer"),
        (lambda: sd.plot_checkerboard("report"), "report must be a CheckerboardReport"),
    ]
    for call, words in cases:
        with pytest.raises(sd.SymdeconvError, match=re.escape(words)):
            call()


def test_missing_matplotlib_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    for call in (lambda: sd.checkerboard((1, 1, 1), stride=2).plot(),
                 lambda: sd.plot_taps(sd.up(2)), lambda: sd.plot_matrix(sd.up(2), 2)):
        with pytest.raises(sd.SymdeconvError, match=r"matplotlib.*symdeconv\[plot\]"):
            call()


def test_layering_and_lazy_import():
    """No lower layer imports symdeconv.plot, and importing symdeconv does not import matplotlib."""
    for path in (REPO / "symdeconv").rglob("*.py"):
        if path.name in ("plot.py", "__init__.py") and path.parent.name == "symdeconv":
            continue
        assert not re.search(r"^\s*(from\s+\S*\bplot\b\s+import|import\s+\S*\bplot\b)", path.read_text(), re.M), path
    code = "import sys, symdeconv; assert 'matplotlib' not in sys.modules; print(symdeconv.plot_taps.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "symdeconv.plot"
