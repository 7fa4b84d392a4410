"""The ``symdeconv`` command line.

=====================================  ==========================================================
``symdeconv derive "<chain>"``         print the chain and its polyphase normal form
                                       (``--emit cpu|cuda`` also prints the kernel source)
``symdeconv prove "<a>" "<b>"``        decide ``a == b`` for every input length; exit 0 if it
                                       holds, 1 with a counterexample, 2 on bad input
``symdeconv generate [--check]``       write the kernel catalogue ``generated/`` (``--check``:
                                       exit 1 with a diff when it is stale, write nothing)
``symdeconv verify``                   run every generated kernel against its symbolic form
=====================================  ==========================================================

Chains are written in the operator language of :mod:`symdeconv.chainlang` (tokenizer and recursive-descent
parser; user text is never given to ``eval`` or ``sympify``)::

    chain    := sum
    sum      := product (("+" | "-") product)*
    product  := unary (("@" | "∘" | "*" | "/") unary)*          # same precedence, left to right
    unary    := "-" unary | postfix
    postfix  := atom (".T")*
    atom     := NUMBER | NAME | NAME "(" [args] ")" | "(" sum ")" | "(" sum "," sum ("," sum)* [","] ")"
    args     := arg ("," arg)*        arg := [NAME "="] sum

``@`` composes operators (right one first), ``*`` scales by a number or symbol, ``/`` divides
numbers, ``.T`` transposes; numbers are integers, decimals (exact: ``0.25`` is ¼) and fractions
``1/4``; any other name is a symbol.  Functions: ``up(k)``, ``down(k)``, ``hold(k)``, ``shift(d)``,
``identity()``, ``conv(t0, t1, …)`` or ``conv((t0, t1, …), origin=o)``, ``xcorr(…)``,
``transposed_conv(taps, s)``, ``strided_conv(taps, s)``, ``dilated_conv(taps, d)``,
``upfirdn(taps, up, down)``, ``linear_interp(k)``, ``pixel_shuffle(r, channels)``,
``pixel_unshuffle(r, channels)``; tap tuples: ``taps(q, n)`` (``q0 … q{n-1}``), ``bilinear(size)``,
``convolve(a, b)``, ``dilate(taps, d)``, ``reverse(taps)``.  For example::

    symdeconv prove "conv(q0,q1,q2) @ hold(2)" "transposed_conv(convolve((1,1),(q0,q1,q2)), 2)"
    symdeconv derive "down(2) @ conv(1,2,1) @ up(3)"
"""

from __future__ import annotations

import argparse
import os
import sys

from .chainlang import ParseError, parse_chain
from .errors import SymdeconvError

__all__ = ["main"]


# ==================================================================================================
# Commands
# ==================================================================================================


def _fail_line(prog: str, text: str | None, err: SymdeconvError) -> str:
    where = ""
    if isinstance(err, ParseError) and text is not None:
        where = f" in {text!r}"
    return f"{prog}: error{where}: {err}"


def _cmd_derive(args: argparse.Namespace) -> int:
    import symdeconv as sd

    op = parse_chain(args.chain)
    nf = sd.canonical(op)
    print(f"chain:       {op!r}")
    print(f"normal form: {nf.header()}")
    for line in nf.lines():
        print(f"  {line}")
    print(f"multiplications per period: {nf.n_taps()}")
    if args.emit:
        print()
        print(sd.emit(op, args.emit), end="")
    return 0


def _cmd_prove(args: argparse.Namespace) -> int:
    import symdeconv as sd

    ops = []
    for text in (args.lhs, args.rhs):
        try:
            ops.append(parse_chain(text))
        except ParseError as err:
            raise ParseError(f"{err.bare} (in {text!r})", err.column) from None
    result = sd.equivalent(*ops)
    print(f"lhs: {ops[0]!r}")
    print(f"rhs: {ops[1]!r}")
    print(result)
    return 0 if result else 1


def _cmd_generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .codegen import catalogue

    root = Path(args.out) if args.out else catalogue.default_root()
    if args.check:
        diffs = catalogue.stale(root)
        if diffs:
            for d in diffs:
                sys.stdout.write(d if d.endswith("\n") else d + "\n")
            print(f"{root}: {len(diffs)} file(s) stale; run `symdeconv generate`", file=sys.stderr)
            return 1
        print(f"{root}: up to date ({len(catalogue.render())} files)")
        return 0
    changed = catalogue.write(root)
    print(f"{root}: {len(changed)} file(s) written, {len(catalogue.render())} in the catalogue")
    for path in changed:
        print(f"  {path}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    targets = ("cpu", "cuda") if args.target == "all" else (args.target,)
    if "cuda" in targets and not args.gpu and "numba" not in sys.modules:
        os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    sim = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    import numpy as np

    from .codegen import catalogue
    from .verify.catalogue import report, verify_catalogue

    root = Path(args.dir) if args.dir else catalogue.default_root()
    dtypes = (np.float64, np.float32) if args.dtype == "all" else (np.dtype(args.dtype).type,)
    if "cuda" in targets:
        print("CUDA kernels run " + ("in Numba's CUDA simulator (use --gpu on a machine with a GPU)" if sim else "on the GPU"))
    results = verify_catalogue(root, targets, dtypes, names=args.only, progress=lambda line: print("  " + line, flush=True))
    print(report(results))
    return 0 if all(r.ok for r in results) else 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="symdeconv",
        description="Exact transposed / strided / dilated convolutions: derive, prove, generate and verify kernels.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("derive", help="print a chain's polyphase normal form")
    d.add_argument("chain", help='operator chain, e.g. "conv(q0,q1,q2) @ hold(2)"')
    d.add_argument("--emit", choices=("cpu", "cuda"), help="also print the generated kernel source")
    d.set_defaults(run=_cmd_derive)
    pr = sub.add_parser("prove", help="decide whether two chains are equal for every input length")
    pr.add_argument("lhs")
    pr.add_argument("rhs")
    pr.set_defaults(run=_cmd_prove)
    g = sub.add_parser("generate", help="write the kernel catalogue (generated/)")
    g.add_argument("--check", action="store_true", help="write nothing; exit 1 with a diff if the files are stale")
    g.add_argument("--out", help="catalogue folder (default: generated/ of the repository)")
    g.set_defaults(run=_cmd_generate)
    v = sub.add_parser("verify", help="check every generated kernel against its symbolic form")
    v.add_argument("--dir", help="catalogue folder (default: generated/ of the repository)")
    v.add_argument("--target", choices=("cpu", "cuda", "all"), default="all")
    v.add_argument("--dtype", choices=("float32", "float64", "all"), default="all")
    v.add_argument("--gpu", action="store_true", help="run CUDA kernels on a real GPU instead of the simulator")
    v.add_argument("--only", action="append", metavar="NAME", help="check only this catalogue entry (repeatable)")
    v.set_defaults(run=_cmd_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``symdeconv`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except SymdeconvError as err:
        text = getattr(args, "chain", None)
        print(_fail_line(f"symdeconv {args.command}", text, err), file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `symdeconv derive ... | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
