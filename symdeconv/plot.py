"""Pictures of the algebra: checkerboard overlap, tap / phase diagrams and operator matrices (matplotlib).

matplotlib is an optional extra (``pip install 'symdeconv[plot]'``): it is imported inside each function,
so importing symdeconv never needs it, and a call without it raises :class:`SymdeconvError` saying so.

Every function returns a :class:`Plot` — the matplotlib ``fig`` and ``ax`` and the plotted ``data`` (NumPy
arrays and SymPy coefficients), so that tests and notebooks can check what a picture shows without
reading pixels.  With ``ax=None`` a new figure is made with ``matplotlib.pyplot`` (so notebooks show it);
pass an ``Axes`` to draw into an existing figure.

* :func:`plot_checkerboard` (also ``sd.checkerboard(...).plot()``): the Distill picture (Odena, Dumoulin &
  Olah 2016) — how many kernel taps reach each output (bars coloured by output phase in 1-D, an image in
  2-D), and for numeric weights the exact response to a constant input of ones.
* :func:`plot_taps`: a 1-D operator's normal form as a graph — which input feeds which output phase with
  which weight; for a transposed convolution each input fans out into a copy of the kernel.
* :func:`plot_matrix`: the non-zero structure of ``op.matrix(n)``, symbolic entries written in for small n.

This module sits above the algebra and canonical layers and is imported by nothing below it; it attaches
:func:`plot_checkerboard` as :meth:`CheckerboardReport.plot` when it is imported (``import symdeconv`` does).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from .algebra._validate import as_positive_int
from .algebra.operators import as_operator
from .canonical.checkerboard import CheckerboardReport
from .canonical.normalform import canonical
from .errors import SymdeconvError, context

__all__ = ["Plot", "plot_checkerboard", "plot_taps", "plot_matrix"]

#: above this many matrix entries, plot_matrix writes no entries in (annotate=None)
ANNOTATE_MAX_ENTRIES = 400
#: above this many edges, plot_taps writes no weights on them
LABEL_MAX_EDGES = 64


@dataclass
class Plot:
    """A drawn picture: the matplotlib figure and axes, and the data it shows (see each function)."""

    fig: Any
    ax: Any
    data: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"<Plot of {', '.join(sorted(self.data))}>"


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise SymdeconvError(
            "plotting needs matplotlib, an optional extra: pip install 'symdeconv[plot]' (or matplotlib)"
        ) from err
    return plt


def _axes(ax: Any, size: tuple[float, float] = (7, 3.2)) -> tuple[Any, Any]:
    """(figure, axes): a new pair for ``ax=None``, else the given Axes and its figure."""
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=size, layout="constrained")
        return fig, ax
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise SymdeconvError(f"ax must be a matplotlib Axes (or None for a new figure), got {type(ax).__name__}")
    return ax.figure, ax


def _numeric(values: np.ndarray) -> np.ndarray | None:
    """``values`` (SymPy entries) as floats, or None when an entry has free symbols or is not real."""
    flat = [sp.sympify(v) for v in values.ravel()]
    if any(v.free_symbols or not v.is_real for v in flat):
        return None
    return np.array([float(v) for v in flat], dtype=float).reshape(values.shape)


def _phase_colors(count: int) -> list:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(count)]


# ==================================================================================================


def plot_checkerboard(report: CheckerboardReport, ax: Any = None) -> Plot:
    """The structural overlap of a :class:`CheckerboardReport` and, for numeric weights, its constant response.

    1-D: bars of the overlap counts per output time, coloured by output phase, and (numeric weights) the
    response to a constant input of ones as a line on a second y-axis.  2-D: an image of the overlap counts
    (and, with ``ax=None`` and numeric weights, a second image of the response).

    ``data``: ``overlap`` (int array), ``origin`` (output position of ``overlap[0]``), ``phase`` (output phase
    of each output, 1-D), ``taps_per_phase``, ``response`` (float array, or None for symbolic weights),
    ``gains`` (float array per phase, or None), ``verdict``.
    """
    with context("sd.plot_checkerboard"):
        if not isinstance(report, CheckerboardReport):
            raise SymdeconvError(
                f"report must be a CheckerboardReport (from sd.checkerboard), got {type(report).__name__}")
        if report.ndim > 2:
            raise SymdeconvError(f"report must be of a 1-D or 2-D operator, got {report.ndim}-D")
        overlap = np.asarray(report.overlap, dtype=int)
        response = _numeric(np.array(report.response, dtype=object))
        gains = _numeric(np.array(report.gains, dtype=object))
        data = {
            "overlap": overlap, "origin": report.output_start, "taps_per_phase": np.asarray(report.taps_per_phase),
            "response": response, "gains": gains, "verdict": report.verdict,
        }
        draw = _checkerboard_1d if report.ndim == 1 else _checkerboard_2d
        fig, main = draw(report, ax, data)
        width = 70 if report.ndim == 1 else 45
        title = [f"structural: {report.structural_verdict}", f"weights: {_weight_summary(report)}"]
        main.set_title("\n".join(textwrap.fill(line, width) for line in title), fontsize="small")
        return Plot(fig, main, data)


def _checkerboard_1d(report: CheckerboardReport, ax: Any, data: dict) -> tuple[Any, Any]:
    fig, ax = _axes(ax)
    overlap, response = data["overlap"], data["response"]
    P = report.structure.P[0] if report.structure is not None else report.form.P[0]
    t = np.arange(report.output_start, report.output_start + overlap.size)
    data.update(t=t, phase=t % P)
    colors = _phase_colors(P)
    from matplotlib.patches import Patch

    ax.bar(t, overlap, color=[colors[p] for p in t % P], edgecolor="black", linewidth=0.5)
    counts = report.taps_per_phase
    handles = [Patch(color=colors[p], label=f"phase {p}: {counts[p]} tap{'' if counts[p] == 1 else 's'}")
               for p in range(P)]
    ax.set_xlabel("output t")
    ax.set_ylabel("kernel taps reaching it")
    ax.set_yticks(range(int(overlap.max(initial=0)) + 1))
    ax.set_ylim(0, overlap.max(initial=0) + 1.2)
    ax.set_xticks(t)
    ax.legend(handles=handles, loc="upper left", fontsize="small", ncol=min(P, 4))
    if response is not None:
        twin = ax.twinx()
        twin.plot(t, response, "k.-", label="response to constant 1s")
        twin.set_ylabel("response to a constant input")
        twin.set_ylim(min(0.0, float(response.min())), float(response.max()) * (1 + 1.2 / max(overlap.max(), 1)))
        data["response_ax"] = twin
    return fig, ax


def _checkerboard_2d(report: CheckerboardReport, ax: Any, data: dict) -> tuple[Any, Any]:
    overlap, response = data["overlap"], data["response"]
    extent = _extent(report.output_start, overlap.shape)
    if ax is None:  # a second panel for the response when there is one
        panels = 1 if response is None else 2
        fig, axes = _pyplot().subplots(1, panels, figsize=(4.5 * panels, 4), squeeze=False, layout="constrained")
        ax = axes[0, 0]
        if response is not None:
            img = axes[0, 1].imshow(response, cmap="magma", extent=extent)
            axes[0, 1].set_title("response to a constant input", fontsize="small")
            fig.colorbar(img, ax=axes[0, 1])
            data["response_ax"] = axes[0, 1]
    else:
        fig, ax = _axes(ax)
    img = ax.imshow(overlap, cmap="viridis", extent=extent)
    ax.set_xlabel("output column")
    ax.set_ylabel("output row")
    fig.colorbar(img, ax=ax, label="kernel taps reaching it")
    return fig, ax


def _extent(origin: tuple[int, ...], shape: tuple[int, ...]) -> tuple[float, float, float, float]:
    """imshow extent with pixel centres at the output positions (rows down)."""
    (r0, c0), (rows, cols) = origin, shape
    return (c0 - 0.5, c0 + cols - 0.5, r0 + rows - 0.5, r0 - 0.5)


def _weight_summary(report: CheckerboardReport, limit: int = 80) -> str:
    """The weight verdict, with the equations replaced by their count when it is too long for a title."""
    text = report.weight_verdict
    if len(text) <= limit:
        return text
    count = len(report.conditions)
    given = {True: "; the given weights satisfy them", False: "; the given weights do not (checkerboard)",
             None: ""}[report.satisfied if report.weights else None]
    return f"constant-preserving iff {count} gain equation{'s' if count > 1 else ''} hold{given}"


CheckerboardReport.plot = plot_checkerboard  # type: ignore[method-assign]  # the report's .plot(ax=None)


# ==================================================================================================


def _resolve(op_or_layer: Any, weight: Any) -> Any:
    """The operator of an operator, or of a layer (with ``weight`` substituted when given)."""
    if weight is None:
        return as_operator(op_or_layer, "op")
    operator_with = getattr(op_or_layer, "operator_with", None)
    if operator_with is None:
        raise SymdeconvError("weight= is for a layer (sd.Conv / sd.ConvTranspose); an operator carries its weights")
    return operator_with(weight)


def _pos(scale: int, offset: int) -> str:
    """``2m + 1``, ``m − 1``: a polyphase position as the normal form prints it."""
    term = "m" if scale == 1 else f"{scale}m"
    return term if offset == 0 else f"{term} {'+' if offset > 0 else '−'} {abs(offset)}"


def plot_taps(op_or_layer: Any, n: int = 4, ax: Any = None, *, weight: Any = None) -> Plot:
    """The normal form of a 1-D single-channel operator as a graph from ``n`` inputs to their outputs.

    Input ``x[m]`` sits at ``m · P/Q`` (where it lands at the output rate), output ``y[t]`` at ``t``; an edge
    joins them for every non-zero tap of output phase ``t mod P`` that reads ``x[m]``, coloured by phase and
    labelled with its coefficient.  For a transposed convolution ``q ∗ (↑s x)`` every input fans out into
    a copy of the kernel ("blow up each input pixel by the kernel").

    ``data``: ``edges`` — ``(m, t, phase, coefficient)`` per edge (SymPy coefficients); ``inputs``; ``outputs``;
    ``phase_taps`` — ``{phase: {offset: coefficient}}`` of the normal form; ``P``, ``Q``.  The edges are
    drawn as one ``LineCollection`` (``ax.collections[0]``), in the order of ``edges``.
    """
    with context("sd.plot_taps"):
        op = _resolve(op_or_layer, weight)
        if op.ndim != 1 or op.c_in != 1 or op.c_out != 1:
            raise SymdeconvError(
                f"op must be 1-D and single-channel (got {op.ndim}-D, {op.c_in}→{op.c_out} channels); "
                "draw one dimension of a separable operator"
            )
        count = as_positive_int(n, "n")
        form = canonical(op)
        P, Q = form.P[0], form.Q[0]
        phase_taps = {p: form.phase_taps(p) for p in range(P)}
        (lo, hi), = op.out_box(((0, count),))
        edges = []
        for t in range(lo, hi):
            j, p = divmod(t, P)
            for off, coeff in phase_taps[p].items():
                if 0 <= Q * j + off < count:
                    edges.append((Q * j + off, t, p, coeff))
        from matplotlib.collections import LineCollection

        outputs = np.arange(lo, hi)
        fig, ax = _axes(ax, (max(7.0, 0.8 * outputs.size), 3.6))
        colors = _phase_colors(P)
        scale = P / Q
        segments = [((m * scale, 1.0), (t, 0.0)) for m, t, _, _ in edges]
        ax.add_collection(LineCollection(segments, colors=[colors[p] for *_, p, _ in edges], linewidths=1.2))
        ax.scatter(np.arange(count) * scale, np.ones(count), marker="s", s=60, color="0.3", zorder=3)
        ax.scatter(outputs, np.zeros(outputs.size), s=50, zorder=3, color=[colors[t % P] for t in outputs])
        if len(edges) <= LABEL_MAX_EDGES:
            for (m, t, _, coeff), ((x0, _), (x1, _)) in zip(edges, segments):
                ax.annotate(str(coeff), ((x0 + x1) / 2, 0.5), fontsize="x-small", ha="center", va="center",
                            bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})
        for p in range(P):
            reads = ", ".join(f"{c}·x[{_pos(Q, off)}]" for off, c in phase_taps[p].items()) or "0"
            ax.plot([], [], color=colors[p], label=f"y[{_pos(P, p)}] = {reads}")
        ax.set_yticks([0, 1], ["outputs y[t]", "inputs x[m]"])
        ax.set_xlabel(f"output position t (input m drawn at {P}/{Q}·m)" if scale != 1 else "position")
        ax.set_ylim(-0.3, 1.3 + 0.15 * P)
        xs = [t for t in outputs] + [m * scale for m in range(count)]
        ax.set_xlim(min(xs) - 0.7, max(xs) + 0.7)
        ax.set_xticks(outputs)
        ax.legend(loc="upper right", fontsize="x-small", ncol=1)
        ax.set_title(form.header(), fontsize="small")
        data = {"edges": edges, "inputs": np.arange(count), "outputs": outputs, "phase_taps": phase_taps,
                "P": P, "Q": Q}
        return Plot(fig, ax, data)


def plot_matrix(op_or_layer: Any, n: Any, ax: Any = None, *, weight: Any = None, annotate: bool | None = None) -> Plot:
    """The matrix of an operator (``op.matrix(n)``) or layer (``layer.matrix(n, weight=)``) as a picture.

    Non-zero entries are drawn dark (their structure: the "blow up each input by the kernel" band of a
    transposed conv is its columns); with ``annotate`` (default: when the matrix has at most
    :data:`ANNOTATE_MAX_ENTRIES` entries) each non-zero entry is written in.

    ``data``: ``matrix`` (the SymPy matrix), ``mask`` (bool array of its non-zeros; also the image's
    array), ``labels`` (``{(row, col): text}`` written in), ``values`` (float array, or None when symbolic).
    """
    with context("sd.plot_matrix"):
        if hasattr(op_or_layer, "operator_with"):  # a layer: its own matrix (padding and output window)
            matrix = op_or_layer.matrix(n, weight=weight)
        else:
            matrix = _resolve(op_or_layer, weight).matrix(n)
        entries = np.array(matrix.tolist(), dtype=object).reshape(matrix.shape)
        mask = np.vectorize(lambda v: sp.expand(v) != 0, otypes=[bool])(entries) if entries.size else \
            np.zeros(matrix.shape, bool)
        if annotate is None:
            annotate = matrix.rows * matrix.cols <= ANNOTATE_MAX_ENTRIES
        widest = max((len(str(v)) for v in entries.ravel()), default=1) if annotate else 0
        size = (2.5 + matrix.cols * max(0.45, 0.085 * widest), 2 + 0.3 * matrix.rows) if annotate else (5, 5)
        fig, ax = _axes(ax, size)
        ax.imshow(mask.astype(int), cmap="Blues", vmin=0, vmax=1.6, interpolation="nearest",
                  aspect="auto" if widest > 3 else "equal")
        labels = {}
        if annotate:
            for r, c in zip(*np.nonzero(mask)):
                labels[(int(r), int(c))] = str(entries[r, c])
                ax.text(c, r, labels[(int(r), int(c))], ha="center", va="center", fontsize="x-small")
        if matrix.cols <= 32:
            ax.set_xticks(range(matrix.cols))
        ax.set_xlabel(f"input index ({matrix.cols})")
        ax.set_ylabel(f"output index ({matrix.rows})")
        ax.set_title(f"{int(mask.sum())} non-zero of {matrix.rows}×{matrix.cols}", fontsize="small")
        data = {"matrix": matrix, "mask": mask, "labels": labels, "values": _numeric(entries)}
        return Plot(fig, ax, data)
