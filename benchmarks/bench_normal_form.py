"""Deciding an identity through the normal form costs the same for any signal length.

``sd.equivalent(a, b)`` compares polyphase normal forms: its work depends on the operators' periods and
tap counts, never on a signal length, and its answer holds for every length.  The alternative —
comparing the explicit matrices of both sides — proves the identity for one length ``n`` only, and its
cost grows with ``n``.  This script times, in one run and on the same operators:

* ``normal form``: ``sd.equivalent(lhs, rhs)`` on freshly built operators (the normal form is cached
  on an operator object after its first computation, so every repeat builds new ones);
* ``sparse matrices``: ``sd.matrices_agree(lhs, rhs, n)`` — both operators' rows over the hull of their
  output windows, entries expanded and compared;
* ``dense matrices``: ``lhs.matrix(n, window=W)`` and ``rhs.matrix(n, window=W)`` as dense SymPy
  matrices over that common window ``W``, then ``(A - B).expand().is_zero_matrix``;

for a few identities of the catalogue (``sd.identities``) at n = 64 and 256 by default, and prints the
median times and the ratio matrix route / normal-form route.  Results also go to
``benchmarks/results/bench_normal_form.json``.  Run it with ``make bench`` or::

    python benchmarks/bench_normal_form.py [--sizes 64 256] [--repeats 7]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import sympy as sp
from sympy.core.cache import clear_cache

import symdeconv as sd
from symdeconv.canonical.equivalence import common_window

Pair = tuple[sd.Operator, sd.Operator]

RESULTS = Path(__file__).resolve().parent / "results"


# --- the identities: builders return NEW operator objects on every call ---------------------------
# Each mirrors the catalogue entry of the same name; main() checks that they agree with it.

def hold_then_conv() -> Pair:
    q = sd.taps("q", 3)
    return sd.conv(q) @ sd.hold(2), sd.transposed_conv(sd.convolve((1, 1), q), 2)


def strided_conv_transpose() -> Pair:
    q = sd.taps("q", 3)
    return sd.strided_conv(q, 2).T, sd.shift(-(len(q) - 1)) @ sd.transposed_conv(sd.reverse(q), 2)


def noble_decimation() -> Pair:
    h = sd.taps("h", 3)
    return sd.conv(h) @ sd.down(3), sd.down(3) @ sd.conv(sd.dilate(h, 3))


def noble_interpolation() -> Pair:
    h = sd.taps("h", 3)
    return sd.up(3) @ sd.conv(h), sd.conv(sd.dilate(h, 3)) @ sd.up(3)


def transposed_conv_is_interleaved_convs() -> Pair:
    q = sd.taps("q", 4)
    return sd.transposed_conv(q, 2), sum(sd.shift(p) @ sd.up(2) @ sd.conv(q[p::2]) for p in range(2))


def fcn_bilinear_is_linear_interpolation() -> Pair:
    return sd.shift(-1) @ sd.transposed_conv(sd.bilinear_kernel(4), 2), sd.linear_interp(2)


CASES: dict[str, Callable[[], Pair]] = {
    "hold_then_conv_is_transposed_conv": hold_then_conv,
    "strided_conv_transpose": strided_conv_transpose,
    "noble_decimation": noble_decimation,
    "noble_interpolation": noble_interpolation,
    "transposed_conv_is_interleaved_convs": transposed_conv_is_interleaved_convs,
    "fcn_bilinear_is_linear_interpolation": fcn_bilinear_is_linear_interpolation,
}


# --- the three routes --------------------------------------------------------------------------------

def by_normal_form(lhs: sd.Operator, rhs: sd.Operator, n: int | None = None) -> bool:
    return bool(sd.equivalent(lhs, rhs))


def by_sparse_matrices(lhs: sd.Operator, rhs: sd.Operator, n: int) -> bool:
    return sd.matrices_agree(lhs, rhs, n)


def by_dense_matrices(lhs: sd.Operator, rhs: sd.Operator, n: int) -> bool:
    window = common_window(lhs, rhs, lhs.input_box(n))
    a, b = lhs.matrix(n, window=window), rhs.matrix(n, window=window)
    return (a - b).expand().is_zero_matrix is True


def median_ms(
    route: Callable[..., bool], build: Callable[[], Pair], n: int | None, repeats: int, cold: bool = True,
) -> tuple[float, list[float]]:
    """Median wall time of ``route`` over ``repeats`` runs, each on freshly built operators.

    With ``cold``, SymPy's global cache is cleared before each run, so every route starts alike.
    """
    samples = []
    for _ in range(repeats):
        lhs, rhs = build()  # outside the timer; new objects, so no cached normal form
        if cold:
            clear_cache()  # SymPy's global memo (expand, …): each route starts from the same cold state
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            ok = route(lhs, rhs, n)
            elapsed = time.perf_counter() - start
        finally:
            gc.enable()
        if not ok:
            raise SystemExit(f"{route.__name__} did not confirm {build.__name__} at n={n}: the library is wrong")
        samples.append(1e3 * elapsed)
    return statistics.median(samples), samples


def check_against_catalogue() -> None:
    """The builders must be the catalogue's identities (same operators on every input)."""
    for name, build in CASES.items():
        entry = sd.identities[name]
        lhs, rhs = build()
        if not (sd.equivalent(lhs, entry.lhs) and sd.equivalent(rhs, entry.rhs)):
            raise SystemExit(f"benchmark case {name} no longer matches the catalogue entry")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="input lengths n (default 64 256)")
    parser.add_argument("--repeats", type=int, default=7, help="repeats of each matrix timing (median taken)")
    parser.add_argument("--nf-repeats", type=int, default=31, help="repeats of each normal-form timing")
    parser.add_argument("--warm-sympy-cache", action="store_true",
                        help="keep SymPy's global cache between repeats (default: cleared before every timed call)")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_normal_form.json", help="JSON output file")
    args = parser.parse_args(argv)
    cold = not args.warm_sympy_cache

    started = time.perf_counter()
    check_against_catalogue()
    for build in CASES.values():  # warm up imports and SymPy's caches for every route alike
        by_normal_form(*build())
        by_sparse_matrices(*build(), min(args.sizes))
        by_dense_matrices(*build(), min(args.sizes))

    rows = []
    for name, build in CASES.items():
        nf, nf_samples = median_ms(by_normal_form, build, None, args.nf_repeats, cold)
        row = {"identity": name, "normal_form_ms": nf, "normal_form_samples_ms": nf_samples, "sizes": {}}
        for n in args.sizes:
            sparse, sparse_samples = median_ms(by_sparse_matrices, build, n, args.repeats, cold)
            dense, dense_samples = median_ms(by_dense_matrices, build, n, args.repeats, cold)
            row["sizes"][str(n)] = {
                "sparse_ms": sparse, "dense_ms": dense,
                "sparse_over_normal_form": sparse / nf, "dense_over_normal_form": dense / nf,
                "sparse_samples_ms": sparse_samples, "dense_samples_ms": dense_samples,
            }
        rows.append(row)
        print(f"  measured {name}", file=sys.stderr)
    total = time.perf_counter() - started

    machine = {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "python": platform.python_version(), "sympy": sp.__version__,
        "symdeconv": sd.__version__,
    }
    print(render(rows, args.sizes, machine, args.repeats, args.nf_repeats, total, cold))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "bench_normal_form", "claim": "deciding an identity through the normal form costs the same for any signal length",
        "machine": machine, "sizes": args.sizes, "repeats": args.repeats, "nf_repeats": args.nf_repeats,
        "sympy_cache_cleared_per_call": cold,
        "total_s": total, "results": rows,
    }, indent=1) + "\n")
    print(f"\nwrote {args.out}")
    return 0


def render(
    rows: list[dict], sizes: list[int], machine: dict, repeats: int, nf_repeats: int, total: float, cold: bool,
) -> str:
    head = ["identity", "normal form"]
    for n in sizes:
        head += [f"sparse n={n}", f"dense n={n}"]
    body = []
    for row in rows:
        cells = [row["identity"], f"{row['normal_form_ms']:.2f}"]
        for n in sizes:
            s = row["sizes"][str(n)]
            cells += [f"{s['sparse_ms']:.1f} (×{s['sparse_over_normal_form']:.0f})",
                      f"{s['dense_ms']:.1f} (×{s['dense_over_normal_form']:.0f})"]
        body.append(cells)
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([
        f"Median wall time in ms (ratio to the normal-form route); normal form: median of {nf_repeats}, "
        f"matrices: median of {repeats}.",
        f"Machine: {machine['cpus']} CPUs, {machine['processor']}, Python {machine['python']}, "
        f"SymPy {machine['sympy']}; SymPy cache {'cleared before every timed call' if cold else 'kept warm'}; "
        f"whole run {total:.1f} s.",
        "",
        line(head), rule, *map(line, body),
        "",
        growth(rows, sizes),
    ])


def growth(rows: list[dict], sizes: list[int]) -> str:
    """How the matrix routes scale between the smallest and largest n (the normal form takes no n)."""
    if len(sizes) < 2:
        return "(one size only: no scaling to report)"
    lo, hi = str(min(sizes)), str(max(sizes))
    sparse = [r["sizes"][hi]["sparse_ms"] / r["sizes"][lo]["sparse_ms"] for r in rows]
    dense = [r["sizes"][hi]["dense_ms"] / r["sizes"][lo]["dense_ms"] for r in rows]
    return (
        f"From n={lo} to n={hi} the matrix routes take ×{min(sparse):.1f}–{max(sparse):.1f} (sparse) and "
        f"×{min(dense):.1f}–{max(dense):.1f} (dense) longer, and prove the identity for that one n only; "
        "the normal-form route has no n at all and proves it for every length."
    )


if __name__ == "__main__":
    sys.exit(main())
