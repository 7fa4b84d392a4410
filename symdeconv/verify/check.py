"""Check a compiled kernel against the symbolic matrix it must equal.

The oracle is the finite SymPy matrix of the operator (``op.matrix(n)``) or layer
(``layer.matrix(shape, weight=…)``), built by multiplying the primitives' sparse matrices — a route
independent of the polyphase normal form the kernel was generated from.  With random numbers
substituted for the symbols, the kernel is run on

* every basis vector ``e_i`` of the input space at once (the batch axis enumerates them), so column
  ``i`` of the kernel's output must be column ``i`` of the matrix: every entry of the operator is
  compared, including the zeros (a tap multiplied by an inserted zero, a missed border or an output
  written twice would all show up);
* a few random inputs, compared with ``M @ x``.

For layers, the bias is checked from its definition: ``f(x, w, b) − f(x, w) = b[c']`` everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import sympy as sp

from ..errors import SymdeconvError

__all__ = ["CheckResult", "check_chain", "check_layer", "check", "tolerance", "table"]


@dataclass
class CheckResult:
    """The outcome of one kernel check (one target, one dtype, several input sizes)."""

    name: str
    target: str
    dtype: str
    sizes: list = field(default_factory=list)
    basis_vectors: int = 0
    random_inputs: int = 0
    max_error: float = 0.0
    tolerance: float = 0.0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return not self.detail and self.max_error <= self.tolerance

    def row(self) -> list[str]:
        sizes = " ".join("x".join(map(str, s)) if isinstance(s, tuple) else str(s) for s in self.sizes)
        return [
            self.name, self.target, self.dtype, sizes, str(self.basis_vectors), str(self.random_inputs),
            f"{self.max_error:.1e}", "ok" if self.ok else "FAIL" + (f": {self.detail}" if self.detail else ""),
        ]


def tolerance(dtype: np.dtype, scale: float) -> float:
    """Absolute tolerance for outputs of magnitude ``scale``: ``64 eps · max(scale, 1)``.

    Layer kernels (CPU and CUDA) accumulate in the data's dtype, as PyTorch and cuDNN do: a float32
    output carries the rounding of float32 products and sums, at worst about ``n · eps / 2`` of the
    magnitudes of its ``n`` terms added up (which ``scale``, a row sum of the matrix's magnitudes plus
    one, bounds for the inputs in [−1, 1] the checks use) — the bound covers that worst case up to about
    128 terms per output, and typical rounding far beyond.  Chain kernels, whose numeric taps are
    float64 literals, accumulate in float64 and round once.
    """
    eps = np.finfo(dtype).eps
    return 64 * eps * max(scale, 1.0)


def max_abs_error(got: np.ndarray, expect: np.ndarray) -> float:
    """``max |got − expect|``, and ``inf`` when any difference is NaN or infinite.

    (``np.max`` of an array holding a NaN is NaN, and Python's ``max(0.0, nan)`` is ``0.0``: a kernel
    that wrote NaN — e.g. into an output it never computed — must not pass as exact.)
    """
    if got.size == 0:
        return 0.0
    diff = np.abs(np.asarray(got, dtype=np.float64) - expect)
    if not np.all(np.isfinite(diff)):
        return float("inf")
    return float(diff.max())


def _numeric(matrix: sp.Matrix) -> np.ndarray:
    try:
        return np.array(matrix.tolist(), dtype=np.float64).reshape(matrix.shape)
    except TypeError as err:
        raise SymdeconvError("the matrix still has symbols after substitution") from err


def _as_tuple(n: Any, ndim: int) -> tuple[int, ...]:
    return tuple(n) if isinstance(n, (tuple, list)) else (int(n),) * ndim


def check_chain(
    f: Any, op: Any, sizes: Sequence[Any], dtype: Any = np.float64, rng: np.random.Generator | None = None,
    n_random: int = 3, name: str | None = None,
) -> CheckResult:
    """Check a compiled chain ``f`` (from ``sd.compile(op)``) against ``op.matrix(n)`` for each size."""
    rng = rng or np.random.default_rng(0)
    dtype = np.dtype(dtype)
    res = CheckResult(name or f.plan.name, f.target, dtype.name)
    values = rng.uniform(-1.0, 1.0, len(f.symbols))
    numeric_op = op.subs(dict(zip(f.symbols, (sp.Float(v, 17) for v in values)))) if f.symbols else op
    for n in sizes:
        n = _as_tuple(n, op.ndim)
        M = _numeric(numeric_op.matrix(n))
        n_in = M.shape[1]
        basis = np.eye(n_in, dtype=dtype)
        rand = rng.uniform(-1.0, 1.0, (n_random, n_in)).astype(dtype)
        X = np.concatenate([basis, rand])
        shape = (X.shape[0],) + ((op.c_in,) if f.multichannel else ()) + n
        Y = f(np.ascontiguousarray(X.reshape(shape)), values if f.symbols else None)
        Y = Y.reshape(X.shape[0], -1)
        if Y.shape[1] != M.shape[0]:
            res.detail = f"n={n}: kernel gives {Y.shape[1]} outputs, the matrix has {M.shape[0]} rows"
            return res
        expect = X.astype(np.float64) @ M.T
        res.max_error = max(res.max_error, max_abs_error(Y, expect))
        scale = float(np.abs(M).sum(axis=1).max()) if M.size else 1.0
        res.tolerance = max(res.tolerance, tolerance(dtype, scale))
        res.sizes.append(n if op.ndim > 1 else n[0])
        res.basis_vectors += n_in
        res.random_inputs += n_random
    return res


def check_layer(
    f: Any, layer: Any, shapes: Sequence[Any], dtype: Any = np.float64, rng: np.random.Generator | None = None,
    n_random: int = 2, name: str | None = None,
) -> CheckResult:
    """Check a compiled layer ``f`` against ``layer.matrix(shape, weight=w)`` (random ``w``) and its bias."""
    rng = rng or np.random.default_rng(0)
    dtype = np.dtype(dtype)
    label = name or (f.plan.name if f.plan is not None else type(layer).__name__ + " (planned per input size)")
    res = CheckResult(label, f.target, dtype.name)
    weight = rng.uniform(-1.0, 1.0, tuple(layer.weight_shape)).astype(dtype)
    bias = rng.uniform(-1.0, 1.0, (int(layer.out_channels),)).astype(dtype)
    last = getattr(layer, "data_layout", "channels_first") == "channels_last"
    c_in = int(layer.in_channels)
    for shape in shapes:
        shape = _as_tuple(shape, int(layer.ndim))
        M = _numeric(layer.matrix(shape, weight=weight.astype(np.float64)))
        n_in = M.shape[1]
        X = np.concatenate([np.eye(n_in), rng.uniform(-1.0, 1.0, (n_random, n_in))]).astype(dtype)
        xs = X.reshape((X.shape[0], c_in) + shape)  # the matrix's columns are (C_in, *spatial) flattened
        if last:
            xs = np.moveaxis(xs, 1, -1)
        xs = np.ascontiguousarray(xs)
        Y = f(xs, weight)
        Yb = f(xs, weight, bias)
        if last:
            Y, Yb = np.moveaxis(Y, -1, 1), np.moveaxis(Yb, -1, 1)
        expect = X.astype(np.float64) @ M.T
        Y2 = np.ascontiguousarray(Y).reshape(X.shape[0], -1)
        if Y2.shape[1] != M.shape[0]:
            res.detail = f"shape {shape}: kernel gives {Y2.shape[1]} outputs, the matrix has {M.shape[0]} rows"
            return res
        bias_shape = (1, -1) + (1,) * int(layer.ndim)
        err_b = max_abs_error(np.asarray(Yb) - Y, np.broadcast_to(bias.reshape(bias_shape), np.shape(Y)))
        res.max_error = max(res.max_error, max_abs_error(Y2, expect), err_b)
        scale = float(np.abs(M).sum(axis=1).max()) + 1.0 if M.size else 1.0
        res.tolerance = max(res.tolerance, tolerance(dtype, scale))
        res.sizes.append(shape if len(shape) > 1 else shape[0])
        res.basis_vectors += n_in
        res.random_inputs += n_random
    return res


def check(f: Any, obj: Any, sizes: Sequence[Any], dtype: Any = np.float64, **kwargs: Any) -> CheckResult:
    """:func:`check_layer` for compiled layers, :func:`check_chain` for compiled chains."""
    if hasattr(f, "binding"):
        return check_layer(f, obj, sizes, dtype, **kwargs)
    return check_chain(f, obj, sizes, dtype, **kwargs)


def table(results: Sequence[CheckResult]) -> str:
    """A plain-text table of results (``symdeconv verify`` prints it)."""
    head = ["kernel", "target", "dtype", "input sizes", "basis", "random", "max |err|", "status"]
    rows = [head] + [r.row() for r in results]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

