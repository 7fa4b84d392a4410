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

Chains are written in the chain language of :mod:`symdeconv.chainlang` (grammar, functions, limits:
``symdeconv prove --help``).  Whatever the text, a command ends with its result or with exactly one
line ``symdeconv <cmd>: error: ...`` on stderr and exit status 2; printed output is bounded
(``MAX_PRINT_PHASES`` phase lines per normal form, ``MAX_LINE_CHARS`` characters per line).  For example::

    symdeconv prove "conv(q0,q1,q2) @ hold(2)" "transposed_conv(convolve((1,1),(q0,q1,q2)), 2)"
    symdeconv derive "down(2) @ conv(1,2,1) @ up(3)"
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .chainlang import MAX_LINE_CHARS, MAX_PRINT_PHASES, MAX_WORK, ParseError, help_text, matrix_work, parse_chain
from .errors import SymdeconvError

__all__ = ["main"]


# ==================================================================================================
# Bounded output
# ==================================================================================================


def _clip(line: str) -> str:
    if len(line) <= MAX_LINE_CHARS:
        return line
    return f"{line[:MAX_LINE_CHARS]} ... ({len(line) - MAX_LINE_CHARS} more characters not shown)"


def _say(line: str = "", file: Any = None) -> None:
    """Print one line, cut at MAX_LINE_CHARS; characters the stream cannot encode are escaped."""
    file = sys.stdout if file is None else file
    line = _clip(line)
    try:
        print(line, file=file)
    except UnicodeEncodeError:
        print(line.encode("ascii", "backslashreplace").decode("ascii"), file=file)


def _form_lines(nf: Any, most: int) -> list[str]:
    """The phase lines of a normal form, or the first ones and a summary when there are more than ``most``."""
    count = nf.c_out * len(nf.phases())
    if count <= most:
        return [f"  {line}" for line in nf.lines()]
    shown = most // 2
    out = []
    for line in nf.lines():  # lines() is cheap next to the form itself; only ``shown`` are kept
        out.append(f"  {line}")
        if len(out) == shown:
            break
    out.append(f"  ... {count - shown} more phase lines not shown ({count} in all, above MAX_PRINT_PHASES = "
               f"{MAX_PRINT_PHASES}; print(sd.canonical(op)) in Python shows them all)")
    return out


def _echo(text: str) -> str:
    return repr(text) if len(text) <= 60 else repr(text[:57]) + "..."


def _fail_line(prog: str, text: str | None, err: BaseException) -> str:
    where = f" in {_echo(text)}" if isinstance(err, ParseError) and text is not None else ""
    message = " ".join(str(err).split()) if isinstance(err, SymdeconvError) else (
        f"internal error, {type(err).__name__}: {' '.join(str(err).split())}")
    return f"{prog}: error{where}: {message}"


# ==================================================================================================
# Commands
# ==================================================================================================


def _cmd_derive(args: argparse.Namespace) -> int:
    import symdeconv as sd

    op = parse_chain(args.chain)
    nf = sd.canonical(op)
    phase_lines = nf.c_out * len(nf.phases())
    if args.emit and phase_lines > MAX_PRINT_PHASES:
        raise SymdeconvError(f"--emit: the normal form has {phase_lines} phase lines, above MAX_PRINT_PHASES = "
                             f"{MAX_PRINT_PHASES}; emit it from Python with sd.emit(op, {args.emit!r})")
    _say(f"chain:       {op!r}")
    _say(f"normal form: {nf.header()}")
    for line in _form_lines(nf, MAX_PRINT_PHASES):
        _say(line)
    _say(f"multiplications per period: {nf.n_taps()}")
    if args.emit:
        _say()
        print(sd.emit(op, args.emit), end="")
    return 0


def _cmd_prove(args: argparse.Namespace) -> int:
    import symdeconv as sd
    from .canonical.equivalence import _check_shapes

    ops = []
    for text in (args.lhs, args.rhs):
        try:
            ops.append(parse_chain(text))
        except ParseError as err:
            raise ParseError(f"{err.bare} (in {_echo(text)})", err.column) from None
    a, b = ops
    _check_shapes(a, b)
    _say(f"lhs: {a!r}")
    _say(f"rhs: {b!r}")
    fa, fb = sd.canonical(a), sd.canonical(b)
    half = MAX_PRINT_PHASES // 2
    if fa == fb:
        _say("equivalent for every input length (equal polyphase normal forms):")
        _say(fa.header())
        for line in _form_lines(fa, half):
            _say(line)
        return 0
    _say(f"NOT equivalent: {_difference(a, b, fa, fb)}")
    for side, nf in (("lhs", fa), ("rhs", fb)):
        _say(f"{side} normal form: {nf.header()}")
        for line in _form_lines(nf, half):
            _say(line)
    return 1


_SEARCH_FACTOR = 16  # sd.equivalent may try several candidate entries, each on both operators' matrices


def _difference(a: Any, b: Any, fa: Any, fb: Any) -> str:
    """sd.equivalent's counterexample, confirmed on explicit matrices, when those are small enough;
    else where the normal forms differ (which already decides the question)."""
    import symdeconv as sd
    from .canonical.equivalence import _candidates, _why_forms_differ, common_window

    sizes = [max(16, 3 * q + 2 + max((abs(off[d]) for f in (fa, fb) for row in f.taps.values() for (_, off) in row),
                                     default=0)) for d, q in enumerate(max(fa.Q, fb.Q))]
    in_box = tuple((0, n) for n in sizes)
    window = common_window(a, b, in_box)
    work = _SEARCH_FACTOR * (matrix_work(a, in_box, window) + matrix_work(b, in_box, window))
    if work <= MAX_WORK:
        return str(sd.equivalent(a, b).counterexample)
    skipped = (f"no explicit-matrix counterexample: the matrices would take about {work} steps, above "
               f"MAX_WORK = {MAX_WORK}")
    if fa.P != fb.P or fa.Q != fb.Q:
        return f"{_why_forms_differ(fa, fb)} ({skipped})"
    p, co, ci, off, _ = next(_candidates(fa, fb))
    ca, cb = (f.taps.get((p, co), {}).get((ci, off), 0) for f in (fa, fb))
    return (f"the normal forms differ at output phase {p if len(p) > 1 else p[0]}"
            f"{f', channel {co}' if fa.c_out > 1 else ''}, tap offset {off if len(off) > 1 else off[0]}"
            f"{f' of input channel {ci}' if fa.c_in > 1 else ''}: coefficient {ca} (lhs) but {cb} (rhs) ({skipped})")


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
    changed = catalogue.write(root, progress=lambda line: print(line, flush=True))
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
    from .verify.catalogue import report, shorten_gil_switches, verify_catalogue

    shorten_gil_switches()

    root = Path(args.dir) if args.dir else catalogue.default_root()
    dtypes = (np.float64, np.float32) if args.dtype == "all" else (np.dtype(args.dtype).type,)
    if "cuda" in targets:
        print("CUDA kernels run " + ("in Numba's CUDA simulator (use --gpu on a machine with a GPU)" if sim else "on the GPU"))
    results = verify_catalogue(root, targets, dtypes, names=args.only, progress=lambda line: print("  " + line, flush=True))
    print(report(results))
    return 0 if all(r.ok for r in results) else 1


class _UsageError(Exception):
    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog = prog


class _ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (see :func:`main`), not usage plus an exit."""

    def error(self, message: str):  # type: ignore[override]
        raise _UsageError(self.prog, message)


def _parser() -> argparse.ArgumentParser:
    p = _ArgumentParser(
        prog="symdeconv",
        description="Exact transposed / strided / dilated convolutions: derive, prove, generate and verify kernels.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    doc = {"epilog": help_text(), "formatter_class": argparse.RawDescriptionHelpFormatter}
    d = sub.add_parser("derive", help="print a chain's polyphase normal form", **doc)
    d.add_argument("chain", help='operator chain, e.g. "conv(q0,q1,q2) @ hold(2)"')
    d.add_argument("--emit", choices=("cpu", "cuda"), help="also print the generated kernel source")
    d.set_defaults(run=_cmd_derive)
    pr = sub.add_parser("prove", help="decide whether two chains are equal for every input length", **doc)
    pr.add_argument("lhs", help="a chain (see below)")
    pr.add_argument("rhs", help="a chain")
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


_CHAIN_OPTIONS = {"derive": {"-h", "--help", "--emit"}, "prove": {"-h", "--help"}}


def _parse_args(argv: list[str]) -> tuple[argparse.Namespace, dict[str, str]]:
    """argparse, except that a chain may start with '-' ("-conv(q0) + up(1)" is a chain, not an option).

    Such an argument is passed to argparse with a leading space (which it reads as a positional
    argument) and given back unchanged afterwards, so error columns stay those of the text as typed.
    """
    argv = list(argv)
    restored: dict[str, str] = {}
    options = _CHAIN_OPTIONS.get(argv[0] if argv else "", set())
    after_emit = False
    for k, arg in enumerate(argv[1:], start=1):
        if arg == "--":
            break
        if options and not after_emit and arg.startswith("-") and arg.split("=")[0] not in options:
            argv[k] = " " + arg
            restored[argv[k]] = arg
        after_emit = arg == "--emit"
    args = _parser().parse_args(argv)
    for name in ("chain", "lhs", "rhs"):
        value = getattr(args, name, None)
        if value in restored:
            setattr(args, name, restored[value])
    return args, restored


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``symdeconv`` console script; returns the exit status.

    Bad input of any kind ends with one line on stderr and status 2: argparse's usage errors, every
    :class:`SymdeconvError` (chain text included), and any other exception, reported as an internal error.
    """
    try:
        args, _ = _parse_args(sys.argv[1:] if argv is None else argv)
    except _UsageError as err:
        _say(f"{err.prog}: error: {' '.join(str(err).split())} (see {err.prog} --help)", sys.stderr)
        return 2
    except SystemExit as stop:  # --help
        return stop.code if isinstance(stop.code, int) else 0
    prog = f"symdeconv {args.command}"
    try:
        return args.run(args)
    except BrokenPipeError:  # e.g. `symdeconv derive ... | head`
        sys.stderr.close()
        return 0
    except (SymdeconvError, Exception) as err:  # noqa: BLE001 - nothing else may escape the command line
        _say(_fail_line(prog, getattr(args, "chain", None), err), sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
