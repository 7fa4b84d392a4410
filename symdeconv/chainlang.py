"""The chain language of the ``symdeconv`` command line: tokenizer, grammar, limits, :func:`parse_chain`.

Text is split into tokens and read by a recursive-descent parser; nothing is given to ``eval`` or
``sympify``.  The grammar (``help_text()`` prints it with the functions, limits and examples)::

    chain    := sum
    sum      := product (("+" | "-") product)*
    product  := unary (("@" | "∘" | "*" | "/") unary)*          # same precedence, left to right
    unary    := "-"* postfix
    postfix  := atom (".T")*
    atom     := NUMBER | NAME | NAME "(" [args] ")" | "(" sum ")" | "(" sum "," [sum ("," sum)*] [","] ")"
    args     := arg ("," arg)*        arg := [NAME "="] sum
    NUMBER   := [0-9]+ ["." [0-9]+] | "." [0-9]+                  # exact: 0.25 is 1/4
    NAME     := [A-Za-z_][A-Za-z_0-9]*                             # ASCII only

Every input is bounded before it costs anything: the text, its tokens, calls, nesting and numbers
are counted before parsing (a limit, not a ``RecursionError``); every factor, tap count and offset is
checked before the operator is built; and each combination is checked against a static upper bound of
its polyphase normal form (periods, taps per phase, terms and digits per coefficient, work to compute
it) before :func:`symdeconv.canonical` ever runs.  So :func:`parse_chain` returns an operator whose
normal form is cheap to compute, or raises :class:`ParseError` (a :class:`SymdeconvError`) with the
column and the name of the rule or limit.  The limits are the ``MAX_*`` constants below.

A product ``f1 @ f2 @ … @ fn`` is collected in a loop and composed as a balanced tree, so its depth
is ``log2 n``; scalars in a product are gathered into one coefficient.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable

import sympy as sp

from .errors import SymdeconvError

__all__ = [
    "parse_chain", "tokenize", "Token", "ParseError", "help_text", "limits", "matrix_work",
    "MAX_TEXT_LENGTH", "MAX_TOKENS", "MAX_CALLS", "MAX_NESTING", "MAX_NUMBER_LENGTH", "MAX_NAME_LENGTH",
    "MAX_FACTOR", "MAX_PERIOD", "MAX_TAPS", "MAX_OFFSET", "MAX_NDIM", "MAX_CHANNELS", "MAX_TERMS",
    "MAX_COEFF_DIGITS", "MAX_WORK", "MAX_PRINT_PHASES", "MAX_LINE_CHARS",
]

# ==================================================================================================
# Limits (each error message quotes the name and the value)
# ==================================================================================================

MAX_TEXT_LENGTH = 100_000  # characters of chain text (spaces included)
MAX_TOKENS = 2_000  # numbers, names and operators
MAX_CALLS = 256  # function calls (the factors of a chain: up(2), conv(...), ...)
MAX_NESTING = 32  # depth of parentheses (groups, tuples and argument lists)
MAX_NUMBER_LENGTH = 40  # characters of one numeric literal
MAX_NAME_LENGTH = 64  # characters of one name
MAX_FACTOR = 4096  # an up / down / hold / stride / dilation / pixel-shuffle factor, per dimension
MAX_PERIOD = 4096  # a period of the normal form (output or input samples per block, all dimensions)
MAX_TAPS = 1024  # taps in one tap tuple (all dimensions)
MAX_OFFSET = 1024  # |shift| and |origin|, per dimension
MAX_NDIM = 8  # spatial dimensions
MAX_CHANNELS = 256  # channels of any operator in the chain
MAX_TERMS = 1000  # terms of one coefficient once expanded (e.g. (q0 + q1)*(q2 + q3) has 4)
MAX_COEFF_DIGITS = 4000  # decimal digits of a numerator or denominator in a coefficient
MAX_WORK = 400_000  # estimated steps to compute the normal form (a step is a few microseconds of SymPy)
MAX_PRINT_PHASES = 64  # phase lines `symdeconv derive` prints (more: the first ones and a summary)
MAX_LINE_CHARS = 1000  # characters of one printed line (longer lines are cut, saying how much is left)


def limits() -> dict[str, int]:
    """The limits by name (as quoted in error messages and in ``symdeconv prove --help``)."""
    return {name: globals()[name] for name in __all__ if name.startswith("MAX_")}


# ==================================================================================================
# Tokenizer
# ==================================================================================================


class ParseError(SymdeconvError):
    """Malformed, unsupported or too large chain text; ``column`` is 1-based."""

    def __init__(self, message: str, column: int):
        super().__init__(f"column {column}: {message}")
        self.column = column
        self.bare = message


@dataclass(frozen=True)
class Token:
    kind: str  # "num" | "name" | "op" | "end"
    text: str
    column: int  # 1-based

    def describe(self) -> str:
        return "end of input" if self.kind == "end" else repr(self.text)


_SPACE = frozenset(" \t\n\r\f\v")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_EXPONENT = re.compile(r"[eE][+-]?[0-9]+")
_OPERATORS = frozenset("@+-*/(),=")
_ALIASES = {"∘": "@", "−": "-"}  # the two non-ASCII characters accepted, as spellings of @ and -


def _describe_char(ch: str) -> str:
    name = unicodedata.name(ch, "") if len(ch) == 1 else ""
    code = f"U+{ord(ch):04X}"
    return f"{ascii(ch)} ({code}{' ' + name if name else ''})"


def tokenize(text: str) -> list[Token]:
    """Split chain text into tokens; anything outside the language is a :class:`ParseError` at its column."""
    if not isinstance(text, str):
        raise SymdeconvError(f"chain text must be a string, got {type(text).__name__}")
    if len(text) > MAX_TEXT_LENGTH:
        raise ParseError(f"the chain has {len(text)} characters, above MAX_TEXT_LENGTH = {MAX_TEXT_LENGTH}",
                         MAX_TEXT_LENGTH + 1)
    out: list[Token] = []
    i, n = 0, len(text)
    calls = depth = 0
    while i < n:
        ch = text[i]
        if ch in _SPACE:
            i += 1
            continue
        if len(out) >= MAX_TOKENS:
            raise ParseError(f"the chain has more than MAX_TOKENS = {MAX_TOKENS} tokens (numbers, names and "
                             "operators); write a shorter chain", i + 1)
        if ch == "." and text[i + 1: i + 2] == "T" and not _NAME.match(text[i + 2: i + 3] or " "):
            out.append(Token("op", ".T", i + 1))
            i += 2
            continue
        m = _NUMBER.match(text, i)
        if m:
            literal = m.group()
            if len(literal) > MAX_NUMBER_LENGTH:
                raise ParseError(f"a number of {len(literal)} characters, above MAX_NUMBER_LENGTH = "
                                 f"{MAX_NUMBER_LENGTH}", i + 1)
            exponent = _EXPONENT.match(text, m.end())
            if exponent:
                raise ParseError(f"scientific notation ({text[i:exponent.end()][:MAX_NUMBER_LENGTH]!r}) is not "
                                 "supported; write the number out (1.5, 0.001, 1000) or as a fraction (3/2)", i + 1)
            name = _NAME.match(text, m.end())
            if name:  # 2q0 is not a number followed by a name
                raise ParseError(f"a number cannot run into a name ({literal + name.group()[:8]!r}); "
                                 f"write {literal}*{name.group()[:8]}", i + 1)
            out.append(Token("num", literal, i + 1))
            i = m.end()
            continue
        m = _NAME.match(text, i)
        if m:
            if len(m.group()) > MAX_NAME_LENGTH:
                raise ParseError(f"a name of {len(m.group())} characters, above MAX_NAME_LENGTH = "
                                 f"{MAX_NAME_LENGTH}", i + 1)
            out.append(Token("name", m.group(), i + 1))
            i = m.end()
            continue
        if ch in _OPERATORS or ch in _ALIASES:
            if ch == "(":  # the limits on calls and nesting, counted here: before any parsing
                depth += 1
                if depth > MAX_NESTING:
                    raise ParseError(f"parentheses nested deeper than MAX_NESTING = {MAX_NESTING}", i + 1)
                if out and out[-1].kind == "name":
                    calls += 1
                    if calls > MAX_CALLS:
                        raise ParseError(f"more than MAX_CALLS = {MAX_CALLS} function calls (factors) in one chain",
                                         out[-1].column)
            elif ch == ")":
                depth = max(depth - 1, 0)  # an unmatched ')' is reported by the parser, at its column
            out.append(Token("op", _ALIASES.get(ch, ch), i + 1))
            i += 1
            continue
        raise ParseError(f"unexpected character {_describe_char(ch)}; chains use ASCII letters, digits, '_', "
                         "spaces and @ + - * / ( ) , = .T", i + 1)
    out.append(Token("end", "", n + 1))
    return out


# ==================================================================================================
# Static cost of coefficients and operators (upper bounds; nothing here runs SymPy's expand)
# ==================================================================================================

_DIGITS_PER_BIT = math.log10(2)
_EXPAND = 60  # steps per coefficient that is built, expanded and stored (SymPy's expand even of 1 is slow)
_MAX_BITS = int(MAX_COEFF_DIGITS / _DIGITS_PER_BIT)


@dataclass(frozen=True)
class _Coeff:
    """Bounds on a coefficient once expanded: its terms, symbols and degree, the bits of a numerator, and a
    common multiple ``den`` of its denominators (the denominator of a sum divides the lcm of the terms')."""

    terms: int
    symbols: frozenset
    degree: int
    num_bits: int
    den: int

    def capped(self) -> "_Coeff":
        """At most as many terms as there are monomials of this degree in these symbols."""
        if self.terms <= 1 or self.degree > 100_000:
            return self
        cap = math.comb(len(self.symbols) + self.degree, self.degree)
        return self if self.terms <= cap else _Coeff(cap, self.symbols, self.degree, self.num_bits, self.den)


_ONE = _Coeff(1, frozenset(), 0, 1, 1)
_ZERO = _Coeff(0, frozenset(), 0, 0, 1)


def _c_mul(a: _Coeff, b: _Coeff) -> _Coeff:
    return _Coeff(a.terms * b.terms, a.symbols | b.symbols, a.degree + b.degree,
                  a.num_bits + b.num_bits, a.den * b.den).capped()


def _c_sum(parts: list[_Coeff], count: int = 1) -> _Coeff:
    """A sum of ``count`` copies of each of ``parts``."""
    if not parts:
        return _ZERO
    den = math.lcm(*(p.den for p in parts))
    num = max(p.num_bits for p in parts) + den.bit_length() + (count * len(parts)).bit_length()
    symbols = frozenset().union(*(p.symbols for p in parts))
    return _Coeff(count * sum(p.terms for p in parts), symbols, max(p.degree for p in parts), num, den).capped()


def _c_max(parts: list[_Coeff]) -> _Coeff:
    """A bound for each of ``parts`` (the taps of one operator)."""
    if not parts:
        return _ONE
    return _Coeff(max(p.terms for p in parts), frozenset().union(*(p.symbols for p in parts)),
                  max(p.degree for p in parts), max(p.num_bits for p in parts), math.lcm(*(p.den for p in parts)))


def _check_coeff(c: _Coeff, what: str) -> None:
    if c.terms > MAX_TERMS:
        raise SymdeconvError(f"{what} could have {_show(c.terms)} terms once expanded, above MAX_TERMS = {MAX_TERMS}")
    bits = max(c.num_bits, c.den.bit_length())
    if bits > _MAX_BITS:
        raise SymdeconvError(f"{what} could have numbers of about {_show(int(bits * _DIGITS_PER_BIT))} digits, "
                             f"above MAX_COEFF_DIGITS = {MAX_COEFF_DIGITS}")


class _Costs:
    """Bounds for the scalars and operators of one parse, memoised by identity (objects kept alive)."""

    def __init__(self) -> None:
        self._scalars: dict[int, tuple[Any, _Coeff]] = {}
        self._ops: dict[int, tuple[Any, _Meta]] = {}

    # --- scalars ----------------------------------------------------------------------------------
    def scalar(self, e: sp.Expr) -> _Coeff:
        hit = self._scalars.get(id(e))
        if hit is not None:
            return hit[1]
        if e.is_Rational:
            c = _ZERO if e == 0 else _Coeff(1, frozenset(), 0, max(abs(e.p).bit_length(), 1), e.q)
        elif e.is_Symbol:
            c = _Coeff(1, frozenset((e,)), 1, 1, 1)
        elif e.is_Add:
            c = _c_sum([self.scalar(a) for a in e.args])
        elif e.is_Mul:
            c = _ONE
            for a in e.args:
                c = _c_mul(c, self.scalar(a))
        elif e.is_Pow and e.exp.is_Integer:
            base, n = self.scalar(e.base), int(e.exp)
            if base.terms > 1 and abs(n) > MAX_TERMS:  # (a + b)**n has n + 1 terms: refuse before comb()
                raise SymdeconvError(f"a power of a sum with exponent {_show(n)} could have more than "
                                     f"MAX_TERMS = {MAX_TERMS} terms once expanded")
            k = abs(n)
            num_bits = k * (base.num_bits + base.terms.bit_length())
            if max(num_bits, k * (base.den.bit_length() - 1)) > _MAX_BITS:
                raise SymdeconvError(f"a power with exponent {_show(n)} could have numbers of more than "
                                     f"MAX_COEFF_DIGITS = {MAX_COEFF_DIGITS} digits")
            expanded = _Coeff(math.comb(base.terms + k - 1, k), base.symbols, base.degree * k, num_bits,
                              base.den ** k).capped()
            if n > 0:
                c = expanded
            else:  # 1/(...): SymPy expands the denominator; the quotient is one opaque term
                _check_coeff(expanded, "the denominator of a coefficient")
                c = _Coeff(1, frozenset((e,)), 1, expanded.num_bits + expanded.den.bit_length(), 1)
        else:  # nothing else is produced by the parser; count it as one opaque term
            c = _Coeff(1, frozenset((e,)), 1, 64, 1)
        self._scalars[id(e)] = (e, c)
        return c

    # --- operators --------------------------------------------------------------------------------
    def op(self, op: Any) -> "_Meta":
        """The bounds of ``op``'s normal form; a :class:`SymdeconvError` names the first limit exceeded."""
        from .algebra.operators import Compose, Scale, Sum

        stack = [op]
        while stack:
            node = stack[-1]
            if id(node) in self._ops:
                stack.pop()
                continue
            children = (node.outer, node.inner) if isinstance(node, Compose) else (
                node.terms if isinstance(node, Sum) else (node.op,) if isinstance(node, Scale) else ())
            todo = [c for c in children if id(c) not in self._ops]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            metas = [self._ops[id(c)][1] for c in children]
            if isinstance(node, Compose):
                meta = _compose(metas[0], metas[1])
            elif isinstance(node, Sum):
                meta = _sum(metas)
            elif isinstance(node, Scale):
                meta = _scale(metas[0], self.scalar(node.c))
            else:
                meta = self._primitive(node)
            self._ops[id(node)] = (node, meta)
        return self._ops[id(op)][1]

    def _primitive(self, op: Any) -> "_Meta":
        from .algebra import operators as o

        P, Q = op.period()
        d = op.ndim
        zero = (Fraction(0),) * d
        lo, hi, rows, cols, coeff = zero, zero, 1, 1, _ONE
        if isinstance(op, (o.Hold, o.PixelShuffle)):
            lo = tuple(Fraction(1 - k, k) for k in op.factor)
            cols = math.prod(op.factor) if isinstance(op, o.Hold) else 1
        elif isinstance(op, o.PixelUnshuffle):
            hi = tuple(Fraction(k - 1) for k in op.factor)
        elif isinstance(op, o.Shift):
            lo = hi = tuple(Fraction(-v) for v in op.d)
        elif isinstance(op, o.Conv):
            lo = tuple(Fraction(g - k + 1) for g, k in zip(op.origin, op.ksize))
            hi = tuple(Fraction(g) for g in op.origin)
            rows = max((len(v) for v in op._by_out.values()), default=0)
            per_input: dict[int, int] = {}
            for (_, ci, _) in op.weights:
                per_input[ci] = per_input.get(ci, 0) + 1
            cols = max(per_input.values(), default=0)
            coeff = _c_max([self.scalar(v) for v in op.weights.values()])
        elif isinstance(op, o.Periodic):
            shifts = [tuple(Fraction(f) - Fraction(p * q, pp) for f, p, q, pp in zip(off, ph, Q, P))
                      for (ph, _), row in op.taps.items() for (_, off) in row]
            if shifts:
                lo = tuple(min(v[k] for v in shifts) for k in range(d))
                hi = tuple(max(v[k] for v in shifts) for k in range(d))
            rows = max((len(row) for row in op.taps.values()), default=0)
            per_input = {}
            for row in op.taps.values():
                for (ci, off) in row:
                    key = (ci, tuple(f % q for f, q in zip(off, Q)))
                    per_input[key] = per_input.get(key, 0) + 1
            cols = max(per_input.values(), default=0)
            coeff = _c_max([self.scalar(v) for row in op.taps.values() for v in row.values()])
        meta = _Meta(d, op.c_in, op.c_out, tuple(P), tuple(Q), lo, hi, rows, cols, coeff)
        meta.work = meta.entries() * _EXPAND
        return meta.checked()


class _Meta:
    """Upper bounds on an operator's (unreduced) normal form, from which its cost is estimated.

    ``P``/``Q``: periods (the minimal ones divide them); ``lo``/``hi``: per dimension, the range of
    ``m − n·Q/P`` over the non-zero kernel entries ``h(n, m)``, so an output reads at most
    ``floor(hi − lo) + 1`` input positions per dimension and an input is read by at most
    ``floor((hi − lo)·P/Q) + 1`` outputs; ``rows``: taps per output (all input channels); ``cols``: outputs
    (all output channels) that read one input; ``coeff``: bounds on one coefficient; ``work``: estimated
    steps to compute the form.
    """

    __slots__ = ("ndim", "c_in", "c_out", "P", "Q", "lo", "hi", "rows", "cols", "coeff", "work")

    def __init__(self, ndim, c_in, c_out, P, Q, lo, hi, rows, cols, coeff):
        self.ndim, self.c_in, self.c_out = ndim, c_in, c_out
        self.P, self.Q, self.lo, self.hi = P, Q, lo, hi
        self.rows, self.cols, self.coeff, self.work = rows, cols, coeff, 0

    def entries(self) -> int:
        """Stored taps: at most ``rows`` per output phase, and at most ``cols`` per input position."""
        by_rows = self.c_out * math.prod(self.P) * max(self.rows, 1)
        return min(by_rows, self.c_in * math.prod(self.Q) * max(self.cols, 1))

    def bound_by_window(self) -> "_Meta":
        """Tighten ``rows`` and ``cols`` by the window ``[lo, hi]``."""
        widths = [h - lo for lo, h in zip(self.lo, self.hi)]
        self.rows = min(self.rows, self.c_in * math.prod(math.floor(w) + 1 for w in widths))
        self.cols = min(self.cols, self.c_out * math.prod(math.floor(w * p / q) + 1
                                                          for w, p, q in zip(widths, self.P, self.Q)))
        return self

    def checked(self) -> "_Meta":
        for what, period in (("output", self.P), ("input", self.Q)):
            if math.prod(period) > MAX_PERIOD:
                rate = ", ".join(str(Fraction(p, q)) for p, q in zip(self.P, self.Q))
                raise SymdeconvError(
                    f"the chain's {what} period would reach {_show(math.prod(period))} samples (rate {_clip(rate)}), "
                    f"above MAX_PERIOD = {MAX_PERIOD}; use smaller factors"
                )
        if max(self.c_in, self.c_out) > MAX_CHANNELS:
            raise SymdeconvError(f"{max(self.c_in, self.c_out)} channels, above MAX_CHANNELS = {MAX_CHANNELS}")
        _check_coeff(self.coeff, "a coefficient of the normal form")
        if self.work > MAX_WORK:
            raise SymdeconvError(
                f"the normal form would take about {_show(self.work)} steps to compute, above MAX_WORK = "
                f"{MAX_WORK}; use fewer taps, fewer symbolic factors or smaller rate factors"
            )
        return self


def _compose(a: _Meta, b: _Meta) -> _Meta:
    """``a @ b`` (``b`` first), following :meth:`NormalForm.compose`."""
    T = tuple(math.lcm(p, q) for p, q in zip(b.P, a.Q))
    if math.prod(T) > MAX_PERIOD:
        raise SymdeconvError(f"composing would need a common period of {_show(math.prod(T))} samples, "
                             f"above MAX_PERIOD = {MAX_PERIOD}; use smaller factors")
    P = tuple(p * t // q for p, t, q in zip(a.P, T, a.Q))
    Q = tuple(q * t // p for q, t, p in zip(b.Q, T, b.P))
    lo = tuple(bl + al * q / p for bl, al, p, q in zip(b.lo, a.lo, b.P, b.Q))
    hi = tuple(bh + ah * q / p for bh, ah, p, q in zip(b.hi, a.hi, b.P, b.Q))
    paths = max(min(a.rows, b.cols), 1)  # products summed into one coefficient
    meta = _Meta(a.ndim, b.c_in, a.c_out, P, Q, lo, hi, a.rows * b.rows, a.cols * b.cols,
                 _c_sum([_c_mul(a.coeff, b.coeff)], paths)).bound_by_window()
    terms = max(a.coeff.terms * b.coeff.terms, 1)
    products = a.c_out * math.prod(P) * max(a.rows, 1) * max(b.rows, 1) * terms
    refine = b.c_out * math.prod(T) * max(b.rows, 1)
    # each coefficient is a sum grown one product at a time: quadratic in its length when symbolic
    sums = meta.entries() * paths * (paths if meta.coeff.symbols else 1) * terms
    meta.work = a.work + b.work + products + refine + sums + meta.entries() * max(meta.coeff.terms, 1) * _EXPAND
    return meta.checked()


def _sum(parts: list[_Meta]) -> _Meta:
    first = parts[0]
    P = tuple(math.lcm(*v) for v in zip(*(m.P for m in parts)))
    Q = tuple(math.lcm(*v) for v in zip(*(m.Q for m in parts)))
    lo = tuple(min(v) for v in zip(*(m.lo for m in parts)))
    hi = tuple(max(v) for v in zip(*(m.hi for m in parts)))
    meta = _Meta(first.ndim, first.c_in, first.c_out, P, Q, lo, hi, sum(m.rows for m in parts),
                 sum(m.cols for m in parts), _c_sum([m.coeff for m in parts])).bound_by_window()
    refined = first.c_out * math.prod(P) * sum(max(m.rows, 1) * max(m.coeff.terms, 1) for m in parts)
    meta.work = sum(m.work for m in parts) + refined + meta.entries() * max(meta.coeff.terms, 1) * _EXPAND
    return meta.checked()


def _scale(m: _Meta, c: _Coeff) -> _Meta:
    meta = _Meta(m.ndim, m.c_in, m.c_out, m.P, m.Q, m.lo, m.hi, m.rows, m.cols, _c_mul(m.coeff, c))
    meta.work = m.work + meta.entries() * max(meta.coeff.terms, 1) * _EXPAND
    return meta.checked()


def matrix_work(op: Any, in_box: tuple, out_box: tuple) -> int:
    """Estimated steps of ``op.sparse(in_box, out_box)`` (the explicit-matrix route of ``sd.equivalent``).

    Each primitive visits every position of its output window; a composition multiplies each entry of
    its outer part by a row of its inner part.  Walked with an explicit stack.
    """
    from .algebra.operators import Compose, Scale, Sum

    costs = _Costs()
    total, stack = 0, [(op, in_box, out_box)]
    while stack:
        node, box_in, box_out = stack.pop()
        meta = costs.op(node)
        positions = node.c_out * math.prod(max(hi - lo, 0) for lo, hi in box_out)
        if isinstance(node, Compose):
            mid = node.inner.out_box(box_in)
            stack += [(node.outer, mid, box_out), (node.inner, box_in, mid)]
            total += positions * max(costs.op(node.outer).rows, 1) * max(costs.op(node.inner).rows, 1)
        elif isinstance(node, Sum):
            stack += [(t, box_in, box_out) for t in node.terms]
            total += positions * max(meta.rows, 1)
        elif isinstance(node, Scale):
            stack.append((node.op, box_in, box_out))
            total += positions * max(meta.rows, 1)
        else:
            total += positions * max(meta.rows, 1)
    return total


# ==================================================================================================
# Values and functions
# ==================================================================================================


@dataclass(frozen=True)
class _Tuple:
    items: tuple


def _is_op(v: Any) -> bool:
    from .algebra.operators import Operator

    return isinstance(v, Operator)


def _kind(v: Any) -> str:
    if _is_op(v):
        return "an operator"
    if isinstance(v, _Tuple):
        return "a tuple"
    return "a number or symbol"


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _show(v: Any) -> str:
    """A value for a message: huge numbers by their size (str() of them may not even be allowed)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v) if v.bit_length() <= 200 else f"a {int(v.bit_length() * _DIGITS_PER_BIT) + 1}-digit number"
    if isinstance(v, sp.Rational):
        if max(abs(v.p).bit_length(), v.q.bit_length()) > 200:
            return f"a number of about {int(max(abs(v.p).bit_length(), v.q.bit_length()) * _DIGITS_PER_BIT)} digits"
        return str(v)
    if isinstance(v, _Tuple):
        return _clip("(" + ", ".join(_show(item) for item in v.items) + ")")
    try:
        return "an expression" if isinstance(v, sp.Expr) and len(v.args) > 20 else _clip(str(v))
    except ValueError:  # a number too long for str()
        return "an expression with very long numbers"


def _scalar(v: Any, what: str) -> sp.Expr:
    if _is_op(v) or isinstance(v, _Tuple):
        raise SymdeconvError(f"{what} must be a number or symbol, got {_kind(v)}")
    return v


def _int(v: Any, what: str) -> int:
    v = _scalar(v, what)
    if not isinstance(v, sp.Integer):
        raise SymdeconvError(f"{what} must be an integer, got {_show(v)}")
    return int(v)


def _ints(v: Any, what: str) -> int | tuple[int, ...]:
    if isinstance(v, _Tuple):
        if len(v.items) > MAX_NDIM:
            raise SymdeconvError(f"{what} has {len(v.items)} entries, above MAX_NDIM = {MAX_NDIM} dimensions")
        return tuple(_int(x, f"{what}[{i}]") for i, x in enumerate(v.items))
    return _int(v, what)


def _bounded(v: Any, what: str, limit: int, limit_name: str, product_limit: tuple[int, str] | None = None) -> Any:
    """``_ints`` with every ``|entry| <= limit`` (and optionally the product of the entries bounded)."""
    value = _ints(v, what)
    entries = value if isinstance(value, tuple) else (value,)
    for i, x in enumerate(entries):
        if abs(x) > limit:
            where = what if not isinstance(value, tuple) else f"{what}[{i}]"
            raise SymdeconvError(f"{where} = {_show(x)} is beyond {limit_name} = {limit}")
    if product_limit is not None and isinstance(value, tuple) and abs(math.prod(entries)) > product_limit[0]:
        raise SymdeconvError(f"{what}: the product of the factors {_clip(str(value))} is above "
                             f"{product_limit[1]} = {product_limit[0]}")
    return value


def _factor(v: Any, what: str) -> Any:
    """A rate factor: an integer, or one per dimension (a tuple)."""
    return _bounded(v, what, MAX_FACTOR, "MAX_FACTOR", (MAX_PERIOD, "MAX_PERIOD"))


def _factor1(v: Any, what: str) -> int:
    """A rate factor of a 1-D construction: one integer."""
    return _bounded(_scalar(v, what), what, MAX_FACTOR, "MAX_FACTOR")


def _count(v: Any, what: str, limit: int, limit_name: str) -> int:
    return _bounded(_scalar(v, what), what, limit, limit_name)


def _channels(v: Any, what: str) -> int:
    return 1 if v is None else _count(v, what, MAX_CHANNELS, "MAX_CHANNELS")


def _leaves(v: Any) -> int:
    count, stack = 0, [v]
    while stack:
        x = stack.pop()
        if isinstance(x, _Tuple):
            stack.extend(x.items)
        else:
            count += 1
    return count


class _Functions:
    """The functions of the language; each checks its limits before building anything."""

    def __init__(self, costs: _Costs):
        self.costs = costs

    # --- argument checks ------------------------------------------------------------------------------
    def taps(self, v: Any, what: str) -> Any:
        """A tap tuple (nested for N-D) as nested Python tuples of SymPy scalars."""
        if _leaves(v) > MAX_TAPS:
            raise SymdeconvError(f"{what}: {_leaves(v)} taps, above MAX_TAPS = {MAX_TAPS}")

        def convert(x: Any, depth: int) -> Any:
            if depth > MAX_NDIM:
                raise SymdeconvError(f"{what}: taps nested deeper than MAX_NDIM = {MAX_NDIM} dimensions")
            if isinstance(x, _Tuple):
                return tuple(convert(y, depth + 1) for y in x.items)
            _check_coeff(self.costs.scalar(_scalar(x, what)), f"{what}: a tap")
            return x

        return convert(v, 1) if isinstance(v, _Tuple) else (convert(v, 1),)

    def tap_args(self, args: list, what: str) -> Any:
        """``conv(1, 2, 3)``, ``conv((1, 2, 3))`` and, for 2-D taps, ``conv((1, 2), (3, 4))`` (rows)."""
        if len(args) == 1:
            return self.taps(args[0], what)
        return self.taps(_Tuple(tuple(args)), what)

    def taps_1d(self, v: Any, what: str) -> tuple:
        taps = self.taps(v, what)
        if any(isinstance(t, tuple) for t in taps):
            raise SymdeconvError(f"{what} must be a 1-D tuple of taps")
        return taps

    def dilated_length(self, taps: tuple, d: int, what: str) -> None:
        if d >= 1 and (len(taps) - 1) * d + 1 > MAX_TAPS:
            raise SymdeconvError(f"{what}: dilating {len(taps)} taps by {d} gives {(len(taps) - 1) * d + 1} taps, "
                                 f"above MAX_TAPS = {MAX_TAPS}")

    # --- the table ----------------------------------------------------------------------------------
    def table(self) -> dict[str, "_Function"]:
        import symdeconv as sd

        f = self

        def sampler(name: str, param: str) -> "_Function":
            build = getattr(sd, name)

            def run(channels: Any = None, **factor: Any) -> Any:
                return build(_factor(factor[param], f"{name}: {param}"), _channels(channels, f"{name}: channels"))

            return _Function(run, (param, "channels"), required=1)

        def shift(d, channels=None):
            return sd.shift(_bounded(d, "shift: d", MAX_OFFSET, "MAX_OFFSET"), _channels(channels, "shift: channels"))

        def conv(*taps, origin=None):
            o = 0 if origin is None else _bounded(origin, "conv: origin", MAX_OFFSET, "MAX_OFFSET")
            return sd.conv(f.tap_args(list(taps), "conv taps"), o)

        def dilated_conv(taps, d):
            taps, d = f.taps_1d(taps, "dilated_conv: taps"), _factor1(d, "dilated_conv: d")
            f.dilated_length(taps, d, "dilated_conv")
            return sd.dilated_conv(taps, d)

        def upfirdn(taps, up=None, down=None):
            L = 1 if up is None else _factor1(up, "upfirdn: up")
            M = 1 if down is None else _factor1(down, "upfirdn: down")
            return sd.upfirdn(f.taps_1d(taps, "upfirdn: taps"), L, M)

        def taps(name, n):
            return _Tuple(tuple(sd.taps(_sym_name(name, "taps: name"), _count(n, "taps: n", MAX_TAPS, "MAX_TAPS"))))

        def convolve(a, b):
            ta, tb = f.taps_1d(a, "convolve: a"), f.taps_1d(b, "convolve: b")
            if len(ta) + len(tb) - 1 > MAX_TAPS:
                raise SymdeconvError(f"convolve: the result would have {len(ta) + len(tb) - 1} taps, above "
                                     f"MAX_TAPS = {MAX_TAPS}")
            ca, cb = _c_max([f.costs.scalar(t) for t in ta]), _c_max([f.costs.scalar(t) for t in tb])
            _check_coeff(_c_sum([_c_mul(ca, cb)], min(len(ta), len(tb))), "convolve: a tap of the result")
            if len(ta) * len(tb) * max(ca.terms * cb.terms, 1) > MAX_WORK:
                raise SymdeconvError(f"convolve: {len(ta)} × {len(tb)} taps is above MAX_WORK = {MAX_WORK} steps")
            return _Tuple(tuple(sd.convolve(ta, tb)))

        def dilate(taps, d):
            taps, d = f.taps_1d(taps, "dilate: taps"), _factor1(d, "dilate: d")
            f.dilated_length(taps, d, "dilate")
            return _Tuple(tuple(sd.dilate(taps, d)))

        return {
            "up": sampler("up", "k"),
            "down": sampler("down", "k"),
            "hold": sampler("hold", "k"),
            "shift": _Function(shift, ("d", "channels"), required=1),
            "identity": _Function(lambda ndim=None: sd.identity(
                1 if ndim is None else _count(ndim, "identity: ndim", MAX_NDIM, "MAX_NDIM")), ("ndim",)),
            "conv": _Function(conv, ("*taps",), ("origin",), required=1),
            "xcorr": _Function(lambda *t: sd.xcorr(f.taps_1d(_Tuple(t) if len(t) > 1 else t[0], "xcorr taps")),
                               ("*taps",), required=1),
            "transposed_conv": _Function(
                lambda taps, s: sd.transposed_conv(f.taps_1d(taps, "transposed_conv: taps"),
                                                   _factor1(s, "transposed_conv: s")), ("taps", "s"), required=2),
            "strided_conv": _Function(
                lambda taps, s: sd.strided_conv(f.taps_1d(taps, "strided_conv: taps"), _factor1(s, "strided_conv: s")),
                ("taps", "s"), required=2),
            "dilated_conv": _Function(dilated_conv, ("taps", "d"), required=2),
            "upfirdn": _Function(upfirdn, ("taps", "up", "down"), required=1),
            "linear_interp": _Function(
                lambda k=None: sd.linear_interp(2 if k is None else _factor1(k, "linear_interp: k")), ("k",)),
            "pixel_shuffle": sampler("pixel_shuffle", "r"),
            "pixel_unshuffle": sampler("pixel_unshuffle", "r"),
            # tap tuples
            "taps": _Function(taps, ("name", "n"), required=2),
            "bilinear": _Function(
                lambda size: _Tuple(tuple(sd.bilinear_kernel(_count(size, "bilinear: size", MAX_TAPS, "MAX_TAPS")))),
                ("size",), required=1),
            "convolve": _Function(convolve, ("a", "b"), required=2),
            "dilate": _Function(dilate, ("taps", "d"), required=2),
            "reverse": _Function(lambda taps: _Tuple(tuple(sd.reverse(f.taps_1d(taps, "reverse: taps")))), ("taps",),
                                 required=1),
        }


def _sym_name(v: Any, what: str) -> str:
    if isinstance(v, sp.Symbol):
        return v.name
    raise SymdeconvError(f"{what} must be a name such as q, got {_kind(v)} {_show(v)}")


@dataclass(frozen=True)
class _Function:
    build: Callable[..., Any]
    positional: tuple[str, ...]  # names of positional parameters ("*taps" collects the rest)
    keywords: tuple[str, ...] = ()
    required: int = 0


# ==================================================================================================
# Parser
# ==================================================================================================


class _Product:
    """A product ``u1 (@|*|/) u2 …`` read left to right: a scalar, or ``coefficient * (f1 @ f2 @ … @ fn)``."""

    def __init__(self, value: Any, costs: _Costs):
        self.costs = costs
        self.scalar: Any = value
        self.coef: sp.Expr = sp.Integer(1)
        self.factors: list = []
        self.meta: _Meta | None = None
        if _is_op(value):
            self.scalar = None
            self._push(value)

    def _push(self, op: Any) -> None:
        from .algebra.operators import Compose, Scale

        while isinstance(op, Scale):  # c * A joins the coefficient, so scalings never nest
            self.coef, op = self.coef * op.c, op.op
        meta = self.costs.op(op)
        if self.factors:
            Compose(self.factors[-1], op)  # the shape and channel checks of A @ B, with their messages
            meta = _compose(self.meta, meta)
        self.factors.append(op)
        self.meta = meta

    def _scale(self, c: sp.Expr) -> None:
        self.coef = self.coef * c
        _check_coeff(self.costs.scalar(self.coef), "the product's coefficient")

    def apply(self, op: str, right: Any) -> None:
        left = self.scalar if self.scalar is not None else self.factors[0]
        if isinstance(left, _Tuple) or isinstance(right, _Tuple):
            raise SymdeconvError(f"{op!r} does not apply to a tuple (tuples are only function arguments)")
        if op == "@":
            if self.scalar is not None or not _is_op(right):
                raise SymdeconvError(
                    f"'@' composes two operators, got {_kind(left)} and {_kind(right)}; use '*' to scale")
            self._push(right)
        elif op == "*":
            if self.scalar is None and _is_op(right):
                raise SymdeconvError("'*' scales by a number or symbol; compose operators with '@'")
            if self.scalar is None:
                self._scale(right)
            elif _is_op(right):
                scalar, self.scalar = self.scalar, None
                self._push(right)
                self._scale(scalar)
            else:
                self.scalar = self.scalar * right
        else:  # "/"
            if _is_op(right):
                raise SymdeconvError("cannot divide by an operator")
            _check_coeff(self.costs.scalar(right), "a divisor")
            if sp.expand(right) == 0:
                raise SymdeconvError("division by zero")
            if self.scalar is None:
                self._scale(1 / right)
            else:
                self.scalar = self.scalar / right

    def value(self) -> Any:
        from .algebra.operators import Compose

        if self.scalar is not None:
            return self.scalar
        level = self.factors
        while len(level) > 1:  # a balanced tree: depth log2(n), built without recursion
            level = [Compose(level[k], level[k + 1]) if k + 1 < len(level) else level[k]
                     for k in range(0, len(level), 2)]
        out = level[0] if self.coef == 1 else level[0] * self.coef
        self.costs.op(out)
        return out


class _Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.i = 0
        self.costs = _Costs()
        self.functions = _Functions(self.costs).table()

    # --- token helpers --------------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def at(self, text: str) -> bool:
        return self.tok.kind == "op" and self.tok.text == text

    def expect(self, text: str, context: str) -> Token:
        if not self.at(text):
            raise ParseError(f"expected {text!r} {context}, found {self.tok.describe()}", self.tok.column)
        return self.take()

    def fail(self, message: str, column: int) -> None:
        raise ParseError(message, column)

    def guard(self, column: int, fn: Callable[[], Any]) -> Any:
        """Run a semantic step; its SymdeconvError becomes a ParseError at ``column``."""
        try:
            return fn()
        except ParseError:
            raise
        except SymdeconvError as err:
            raise ParseError(str(err), column) from None
        except (TypeError, ValueError, ArithmeticError) as err:  # e.g. SymPy refusing an operation
            raise ParseError(f"{type(err).__name__}: {_clip(str(err), 200)}", column) from None

    # --- grammar --------------------------------------------------------------------------------------
    def chain(self) -> Any:
        if self.tok.kind == "end":
            self.fail("empty chain", self.tok.column)
        value = self.sum()
        if self.tok.kind != "end":
            self.fail(f"unexpected {self.tok.describe()} after a complete expression", self.tok.column)
        return value

    def sum(self) -> Any:
        left = self.product()
        while self.at("+") or self.at("-"):
            op = self.take()
            right = self.product()
            left = self.guard(op.column, lambda: self.add(op.text, left, right))
        return left

    def product(self) -> Any:
        start = self.tok
        first = self.unary()
        acc = self.guard(start.column, lambda: _Product(first, self.costs))
        while self.at("@") or self.at("*") or self.at("/"):
            op = self.take()
            right = self.unary()
            self.guard(op.column, lambda: acc.apply(op.text, right))
        return self.guard(start.column, acc.value)

    def unary(self) -> Any:
        signs = []
        while self.at("-"):  # a loop, not recursion: "- - - x" is -x
            signs.append(self.take())
        value = self.postfix()
        if signs and isinstance(value, _Tuple):
            self.fail("cannot negate a tuple", signs[0].column)
        if len(signs) % 2:
            value = self.guard(signs[0].column, lambda: -value)
        return value

    def postfix(self) -> Any:
        value = self.atom()
        while self.at(".T"):
            op = self.take()
            if not _is_op(value):
                self.fail(f".T transposes an operator, not {_kind(value)}", op.column)
            value = self.guard(op.column, lambda: self.measured(value.T))
        return value

    def measured(self, op: Any) -> Any:
        self.costs.op(op)
        return op

    def atom(self) -> Any:
        tok = self.tok
        if tok.kind == "num":
            self.take()
            return sp.Rational(Fraction(tok.text))
        if tok.kind == "name":
            self.take()
            if self.at("("):
                return self.call(tok)
            if tok.text in self.functions:
                self.fail(f"{tok.text} is a function; call it, e.g. {tok.text}(…)", tok.column)
            return sp.Symbol(tok.text)
        if self.at("("):
            open_ = self.take()
            first = self.sum()
            if self.at(","):
                items = [first]
                while self.at(","):
                    self.take()
                    if self.at(")"):
                        break
                    items.append(self.sum())
                self.expect(")", f"to close the tuple opened at column {open_.column}")
                return _Tuple(tuple(items))
            self.expect(")", f"to close the parenthesis opened at column {open_.column}")
            return first
        if tok.kind == "end":
            self.fail("the chain ends where an operand was expected", tok.column)
        self.fail(f"expected a number, a name, a call or '(', found {tok.describe()}", tok.column)

    def call(self, name: Token) -> Any:
        fn = self.functions.get(name.text)
        if fn is None:
            known = ", ".join(sorted(self.functions))
            self.fail(f"unknown function {name.text!r} (known: {known})", name.column)
        self.expect("(", f"after {name.text}")
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        if not self.at(")"):
            while True:
                tok = self.tok
                if tok.kind == "name" and self.tokens[self.i + 1].kind == "op" and self.tokens[self.i + 1].text == "=":
                    self.take()
                    self.take()
                    if tok.text in kwargs:
                        self.fail(f"{name.text}: keyword {tok.text!r} given twice", tok.column)
                    kwargs[tok.text] = self.sum()
                else:
                    if kwargs:
                        self.fail(f"{name.text}: a positional argument cannot follow a keyword argument", tok.column)
                    args.append(self.sum())
                if not self.at(","):
                    break
                self.take()
        self.expect(")", f"to close the arguments of {name.text} (column {name.column})")
        return self.guard(name.column, lambda: self.apply(name.text, fn, args, kwargs))

    # --- semantics ------------------------------------------------------------------------------------
    def apply(self, name: str, fn: _Function, args: list, kwargs: dict) -> Any:
        star = fn.positional and fn.positional[0].startswith("*")
        allowed = set(fn.keywords) | ({p for p in fn.positional if not p.startswith("*")})
        for key in kwargs:
            if key not in allowed:
                raise SymdeconvError(
                    f"{name}: unknown keyword {key!r} (allowed: {', '.join(sorted(allowed)) or 'none'})")
        for value in list(args) + list(kwargs.values()):
            if _is_op(value):
                raise SymdeconvError(f"{name}: arguments must be numbers, symbols or tuples, not operators")
        if star:
            if len(args) < fn.required:
                raise SymdeconvError(f"{name} needs at least one tap")
            out = fn.build(*args, **kwargs)
        else:
            if len(args) > len(fn.positional):
                raise SymdeconvError(f"{name} takes at most {len(fn.positional)} argument(s), got {len(args)}")
            for pname, value in zip(fn.positional, args):
                if pname in kwargs:
                    raise SymdeconvError(f"{name}: {pname} given twice")
                kwargs[pname] = value
            missing = [p for p in fn.positional[: fn.required] if p not in kwargs]
            if missing:
                raise SymdeconvError(f"{name}: missing argument {', '.join(missing)}")
            out = fn.build(**kwargs)
        return self.measured(out) if _is_op(out) else out

    def add(self, op: str, a: Any, b: Any) -> Any:
        if isinstance(a, _Tuple) or isinstance(b, _Tuple):
            raise SymdeconvError(f"{op!r} does not apply to a tuple (tuples are only function arguments)")
        if _is_op(a) != _is_op(b):
            raise SymdeconvError(f"{op!r} needs two operators or two numbers, got {_kind(a)} and {_kind(b)}")
        value = a + b if op == "+" else a - b
        return self.measured(value) if _is_op(value) else value


def parse_chain(text: str) -> Any:
    """Parse chain-language text into a symdeconv operator (see the module docstring and :func:`help_text`).

    >>> print(parse_chain("down(2) @ conv(1, 2, 1) @ up(3)"))
    down(2) @ conv(1, 2, 1) @ up(3)
    """
    value = _Parser(text).chain()
    if not _is_op(value):
        raise ParseError(f"the chain must be an operator, got {_kind(value)} {_show(value)}", 1)
    return value


# ==================================================================================================
# Documentation (shown by `symdeconv prove --help` and `symdeconv derive --help`)
# ==================================================================================================


def help_text() -> str:
    """The chain language in one screen: grammar, functions, operators, limits, examples."""
    return f"""\
chain language (parsed, never evaluated):
  chain   := sum
  sum     := product (("+" | "-") product)*
  product := unary (("@" | "*" | "/") unary)*        same precedence, left to right
  unary   := "-"* postfix
  postfix := atom (".T")*
  atom    := NUMBER | NAME | NAME "(" [arg ("," arg)*] ")" | "(" sum ")" | "(" sum "," sum ... ")"
  arg     := [NAME "="] sum
  NUMBER  := digits ["." digits] | "." digits    exact: 0.25 is 1/4; fractions as 1/4; no 1e3
  NAME    := ASCII letter or "_", then letters, digits, "_"; any other name is a symbol

operators:
  A @ B    compose, B first (also written A ∘ B)     A + B, A - B   add (same rate)
  c * A    scale by a number or symbol; A / c       -A             negate
  A.T      transpose                                 ( )            group; (a, b, ...) is a tuple

functions (integers; k, r, d of the first line may be tuples, one per dimension: up((2, 2))):
  up(k), down(k), hold(k), shift(d), pixel_shuffle(r), pixel_unshuffle(r)   all take channels=
  identity(ndim)
  conv(t0, t1, ...) or conv((t0, t1, ...), origin=o); conv((a, b), (c, d)) is 2-D; xcorr(t0, ...)
  transposed_conv(taps, s), strided_conv(taps, s), dilated_conv(taps, d), upfirdn(taps, up, down),
  linear_interp(k)
  tap tuples: taps(q, n) = (q0, ..., q{{n-1}}), bilinear(size), convolve(a, b), dilate(taps, d),
  reverse(taps)

limits (larger input is refused with a one-line error naming the limit):
  text {MAX_TEXT_LENGTH} characters, {MAX_TOKENS} tokens, {MAX_CALLS} calls, parentheses {MAX_NESTING} deep,
  numbers {MAX_NUMBER_LENGTH} characters, names {MAX_NAME_LENGTH} characters;
  factor k, r, s, d <= MAX_FACTOR = {MAX_FACTOR}; period of the normal form <= MAX_PERIOD = {MAX_PERIOD};
  taps per tuple <= MAX_TAPS = {MAX_TAPS}; |shift|, |origin| <= MAX_OFFSET = {MAX_OFFSET};
  dimensions <= {MAX_NDIM}; channels <= {MAX_CHANNELS}; terms per coefficient <= MAX_TERMS = {MAX_TERMS};
  digits per number <= MAX_COEFF_DIGITS = {MAX_COEFF_DIGITS}; estimated work <= MAX_WORK = {MAX_WORK} steps;
  derive prints at most MAX_PRINT_PHASES = {MAX_PRINT_PHASES} phase lines (then a summary), lines cut at
  MAX_LINE_CHARS = {MAX_LINE_CHARS}; --emit needs a form that is printed in full

examples:
  symdeconv derive "conv(q0, q1, q2) @ hold(2)"
  symdeconv derive "down(2) @ conv(1/4, 1/2, 1/4) @ up(3)" --emit cpu
  symdeconv prove "conv(q0,q1,q2) @ hold(2)" "transposed_conv(convolve((1,1),(q0,q1,q2)), 2)"
  symdeconv prove "(down(2) @ conv(taps(h, 4))).T" "conv(reverse(taps(h, 4)), origin=3) @ up(2)"
  symdeconv derive -- "-conv(q0) + 2*conv(q0)"
"""
