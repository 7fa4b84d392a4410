"""The chain language of the ``symdeconv`` command line: tokenizer, grammar and :func:`parse_chain`.

Chains are written in a small operator language, parsed by a tokenizer and a recursive-descent parser
(user text is never given to ``eval`` or ``sympify``)::

    chain    := sum
    sum      := product (("+" | "-") product)*
    product  := unary (("@" | "∘" | "*" | "/") unary)*          # same precedence, left to right
    unary    := "-" unary | postfix
    postfix  := atom (".T")*
    atom     := NUMBER | NAME | NAME "(" [args] ")" | "(" sum ")" | "(" sum "," sum ("," sum)* [","] ")"
    args     := arg ("," arg)*        arg := [NAME "="] sum
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable

import sympy as sp

from .errors import SymdeconvError

__all__ = ["parse_chain", "ParseError", "tokenize", "Token"]


# ==================================================================================================
# Tokenizer
# ==================================================================================================


class ParseError(SymdeconvError):
    """Malformed chain text; ``column`` is 1-based."""

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


_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_OPERATORS = {"@", "∘", "+", "-", "−", "*", "/", "(", ")", ",", "="}


def tokenize(text: str) -> list[Token]:
    """Split chain text into tokens; an unknown character is a :class:`ParseError` at its column."""
    if not isinstance(text, str):
        raise SymdeconvError(f"chain text must be a string, got {type(text).__name__}")
    out: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "." and text[i + 1: i + 2] == "T" and not _NAME.match(text[i + 2: i + 3] or " "):
            out.append(Token("op", ".T", i + 1))
            i += 2
            continue
        m = _NUMBER.match(text, i)
        if m:
            if _NAME.match(text, m.end()):  # 2q0 is not a number followed by a name
                raise ParseError(f"a number cannot run into a name ({text[i:m.end() + 1]!r}); write 2*q0", i + 1)
            out.append(Token("num", m.group(), i + 1))
            i = m.end()
            continue
        m = _NAME.match(text, i)
        if m:
            out.append(Token("name", m.group(), i + 1))
            i = m.end()
            continue
        if ch in _OPERATORS:
            out.append(Token("op", {"∘": "@", "−": "-"}.get(ch, ch), i + 1))
            i += 1
            continue
        raise ParseError(f"unexpected character {ch!r}", i + 1)
    out.append(Token("end", "", len(text) + 1))
    return out


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


def _scalar(v: Any, what: str) -> sp.Expr:
    if _is_op(v) or isinstance(v, _Tuple):
        raise SymdeconvError(f"{what} must be a number or symbol, got {_kind(v)}")
    return v


def _int(v: Any, what: str) -> int:
    v = _scalar(v, what)
    if not (isinstance(v, sp.Integer) or (isinstance(v, sp.Rational) and v.q == 1)):
        raise SymdeconvError(f"{what} must be an integer, got {v}")
    return int(v)


def _ints(v: Any, what: str) -> int | tuple[int, ...]:
    if isinstance(v, _Tuple):
        return tuple(_int(x, f"{what}[{i}]") for i, x in enumerate(v.items))
    return _int(v, what)


def _taps(v: Any, what: str) -> Any:
    """A tap tuple (nested for N-D) as nested Python tuples of SymPy scalars."""
    if isinstance(v, _Tuple):
        return tuple(_taps(x, what) if isinstance(x, _Tuple) else _scalar(x, what) for x in v.items)
    return (_scalar(v, what),)


def _tap_args(args: list, what: str) -> Any:
    """``conv(1, 2, 3)``, ``conv((1, 2, 3))`` and, for 2-D taps, ``conv((1, 2), (3, 4))`` (rows)."""
    if len(args) == 1:
        return _taps(args[0], what)
    if any(isinstance(a, _Tuple) for a in args):
        return _taps(_Tuple(tuple(args)), what)
    return tuple(_scalar(a, f"{what}[{i}]") for i, a in enumerate(args))


def _sym_name(v: Any, what: str) -> str:
    if isinstance(v, sp.Symbol):
        return v.name
    raise SymdeconvError(f"{what} must be a name such as q, got {_kind(v)} {v}")


@dataclass(frozen=True)
class _Function:
    build: Callable[..., Any]
    positional: tuple[str, ...]  # names of positional parameters ("*taps" collects the rest)
    keywords: tuple[str, ...] = ()
    required: int = 0


def _functions() -> dict[str, _Function]:
    import symdeconv as sd

    def conv(*taps, origin=None):
        origin = 0 if origin is None else _ints(origin, "origin")
        return sd.conv(_tap_args(list(taps), "conv taps"), origin)

    return {
        "up": _Function(lambda k, channels=None: sd.up(_ints(k, "k"), 1 if channels is None else _int(channels, "channels")),
                        ("k", "channels"), required=1),
        "down": _Function(lambda k, channels=None: sd.down(_ints(k, "k"), 1 if channels is None else _int(channels, "channels")),
                          ("k", "channels"), required=1),
        "hold": _Function(lambda k, channels=None: sd.hold(_ints(k, "k"), 1 if channels is None else _int(channels, "channels")),
                          ("k", "channels"), required=1),
        "shift": _Function(lambda d, channels=None: sd.shift(_ints(d, "d"), 1 if channels is None else _int(channels, "channels")),
                           ("d", "channels"), required=1),
        "identity": _Function(lambda ndim=None: sd.identity(1 if ndim is None else _int(ndim, "ndim")), ("ndim",)),
        "conv": _Function(conv, ("*taps",), ("origin",), required=1),
        "xcorr": _Function(lambda *t: sd.xcorr(_tap_args(list(t), "xcorr taps")), ("*taps",), required=1),
        "transposed_conv": _Function(lambda taps, s: sd.transposed_conv(_taps(taps, "taps"), _int(s, "s")), ("taps", "s"), required=2),
        "strided_conv": _Function(lambda taps, s: sd.strided_conv(_taps(taps, "taps"), _int(s, "s")), ("taps", "s"), required=2),
        "dilated_conv": _Function(lambda taps, d: sd.dilated_conv(_taps(taps, "taps"), _int(d, "d")), ("taps", "d"), required=2),
        "upfirdn": _Function(
            lambda taps, up=None, down=None: sd.upfirdn(
                _taps(taps, "taps"), 1 if up is None else _int(up, "up"), 1 if down is None else _int(down, "down")
            ),
            ("taps", "up", "down"), required=1,
        ),
        "linear_interp": _Function(lambda k=None: sd.linear_interp(2 if k is None else _int(k, "k")), ("k",)),
        "pixel_shuffle": _Function(lambda r, channels=None: sd.pixel_shuffle(_ints(r, "r"), 1 if channels is None else _int(channels, "channels")),
                                   ("r", "channels"), required=1),
        "pixel_unshuffle": _Function(lambda r, channels=None: sd.pixel_unshuffle(_ints(r, "r"), 1 if channels is None else _int(channels, "channels")),
                                     ("r", "channels"), required=1),
        # tap tuples
        "taps": _Function(lambda name, n: _Tuple(tuple(sd.taps(_sym_name(name, "name"), _int(n, "n")))), ("name", "n"), required=2),
        "bilinear": _Function(lambda size: _Tuple(tuple(sd.bilinear_kernel(_int(size, "size")))), ("size",), required=1),
        "convolve": _Function(lambda a, b: _Tuple(tuple(sd.convolve(_taps(a, "a"), _taps(b, "b")))), ("a", "b"), required=2),
        "dilate": _Function(lambda taps, d: _Tuple(tuple(sd.dilate(_taps(taps, "taps"), _int(d, "d")))), ("taps", "d"), required=2),
        "reverse": _Function(lambda taps: _Tuple(tuple(sd.reverse(_taps(taps, "taps")))), ("taps",), required=1),
    }


# ==================================================================================================
# Parser
# ==================================================================================================


class _Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.i = 0
        self.functions = _functions()

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
            raise ParseError(f"{type(err).__name__}: {err}", column) from None

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
            left = self.guard(op.column, lambda: self.combine(op.text, left, right))
        return left

    def product(self) -> Any:
        left = self.unary()
        while self.at("@") or self.at("*") or self.at("/"):
            op = self.take()
            right = self.unary()
            left = self.guard(op.column, lambda: self.combine(op.text, left, right))
        return left

    def unary(self) -> Any:
        if self.at("-"):
            op = self.take()
            value = self.unary()
            return self.guard(op.column, lambda: self.negate(value))
        return self.postfix()

    def postfix(self) -> Any:
        value = self.atom()
        while self.at(".T"):
            op = self.take()
            if not _is_op(value):
                self.fail(f".T transposes an operator, not {_kind(value)}", op.column)
            value = value.T
        return value

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
                raise SymdeconvError(f"{name}: unknown keyword {key!r} (allowed: {', '.join(sorted(allowed)) or 'none'})")
        if not star:
            if len(args) > len(fn.positional):
                raise SymdeconvError(f"{name} takes at most {len(fn.positional)} argument(s), got {len(args)}")
            for pname, value in zip(fn.positional, args):
                if pname in kwargs:
                    raise SymdeconvError(f"{name}: {pname} given twice")
                kwargs[pname] = value
            missing = [p for p in fn.positional[: fn.required] if p not in kwargs]
            if missing:
                raise SymdeconvError(f"{name}: missing argument {', '.join(missing)}")
            for value in kwargs.values():
                if _is_op(value):
                    raise SymdeconvError(f"{name}: arguments must be numbers, symbols or tuples, not operators")
            return fn.build(**kwargs)
        if len(args) < fn.required:
            raise SymdeconvError(f"{name} needs at least one tap")
        for value in list(args) + list(kwargs.values()):
            if _is_op(value):
                raise SymdeconvError(f"{name}: arguments must be numbers, symbols or tuples, not operators")
        return fn.build(*args, **kwargs)

    def combine(self, op: str, a: Any, b: Any) -> Any:
        if isinstance(a, _Tuple) or isinstance(b, _Tuple):
            raise SymdeconvError(f"{op!r} does not apply to a tuple (tuples are only function arguments)")
        if op == "@":
            if not (_is_op(a) and _is_op(b)):
                raise SymdeconvError(f"'@' composes two operators, got {_kind(a)} and {_kind(b)}; use '*' to scale")
            return a @ b
        if op == "*":
            if _is_op(a) and _is_op(b):
                raise SymdeconvError("'*' scales by a number or symbol; compose operators with '@'")
            return a * b
        if op == "/":
            if _is_op(b):
                raise SymdeconvError("cannot divide by an operator")
            if b == 0:
                raise SymdeconvError("division by zero")
            return a * (1 / b) if _is_op(a) else a / b
        # + and -
        if _is_op(a) != _is_op(b):
            raise SymdeconvError(f"{op!r} needs two operators or two numbers, got {_kind(a)} and {_kind(b)}")
        return a + b if op == "+" else a - b

    def negate(self, v: Any) -> Any:
        if isinstance(v, _Tuple):
            raise SymdeconvError("cannot negate a tuple")
        return -v


def parse_chain(text: str) -> Any:
    """Parse operator-language text into a symdeconv operator (see the module docstring).

    >>> print(parse_chain("down(2) @ conv(1, 2, 1) @ up(3)"))
    down(2) @ conv(1, 2, 1) @ up(3)
    """
    value = _Parser(text).chain()
    if not _is_op(value):
        raise ParseError(f"the chain must be an operator, got {_kind(value)} {value}", 1)
    return value
