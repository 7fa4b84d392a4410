"""The chain language never crashes, hangs or floods: limits, one-line errors, bounded output, fuzzing.

Every hostile input of issue 18 (part 3) must end, quickly, in a :class:`SymdeconvError` naming the rule
or limit, and on the command line in exactly one stderr line with exit status 2.  The time bound here is a
hang guard only (a limit check takes milliseconds); the fuzz tests run a fixed, derandomised budget.
"""

from __future__ import annotations

import time

import pytest
import sympy as sp
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import symdeconv as sd
from symdeconv import chainlang
from symdeconv.chainlang import ParseError, parse_chain, tokenize
from symdeconv.cli import main

HANG_GUARD_S = 5.0  # generous: the checks below take milliseconds
MAX_OUTPUT_LINES = 200
q0, q1, q2 = sp.symbols("q0 q1 q2")


def _cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, list[str], list[str], float]:
    start = time.perf_counter()
    rc = main(list(argv))
    elapsed = time.perf_counter() - start
    captured = capsys.readouterr()
    return rc, captured.out.splitlines(), captured.err.splitlines(), elapsed


# --- the table of issue 18: each one a fast one-line error naming the limit ----------------------------------

TABLE = {
    "huge factor (hung)": ("up(1000000000)", "MAX_FACTOR = 4096"),
    "2000 factors (RecursionError)": (" @ ".join(["up(1)"] * 2000), "MAX_CALLS = 256"),
    "500 nested parentheses (RecursionError)": ("(" * 500 + "up(2)" + ")" * 500, "MAX_NESTING = 32"),
    "up(2) chained 200 times (OverflowError)": (" @ ".join(["up(2)"] * 200), "MAX_PERIOD = 4096"),
    "5000-digit literal (ValueError)": ("conv(" + "7" * 5000 + ")", "MAX_NUMBER_LENGTH = 40"),
    "100,002 output lines": ("conv(q0,q1) @ up(99999)", "MAX_FACTOR = 4096"),
    "scientific notation (misleading hint)": ("conv(1e308, 1)", "scientific notation ('1e308') is not supported"),
    "full-width digit (accepted)": ("up(２)", "column 4: unexpected character '\\uff12' (U+FF12 FULLWIDTH DIGIT TWO)"),
    # more of the same family
    "text length": ("up(2)" + " " * 100_000, "MAX_TEXT_LENGTH"),
    "tokens": ("-" * 2500 + "up(2)", "MAX_TOKENS = 2000"),
    "taps": ("conv(taps(q, 5000))", "MAX_TAPS = 1024"),
    "dilated taps": ("dilated_conv(taps(q, 3), 4096)", "MAX_TAPS = 1024"),
    "offset": ("shift(99999999999)", "MAX_OFFSET = 1024"),
    "channels": ("up(2, channels=100000)", "MAX_CHANNELS = 256"),
    "factor product": ("up((4096, 4096))", "MAX_PERIOD = 4096"),
    "dimensions": ("up((1, 1, 1, 1, 1, 1, 1, 1, 1))", "MAX_NDIM = 8"),
    "name length": ("conv(" + "q" * 100 + ")", "MAX_NAME_LENGTH = 64"),
    "expanded terms": ("conv(" + "*".join(f"(a{i} + b{i})" for i in range(12)) + ")", "MAX_TERMS = 1000"),
    "power of a sum": ("conv(" + "*".join(["(a + b + c)"] * 50) + ")", "MAX_TERMS = 1000"),
    "coefficient digits": ("conv(" + "*".join(["9" * 40] * 400) + ")", "MAX_COEFF_DIGITS = 4000"),
    "work": ("conv(taps(q, 1024)) @ conv(taps(p, 64))", f"MAX_WORK = {chainlang.MAX_WORK}"),
    "symbolic blow-up": (" @ ".join(f"conv(a{i}, b{i})" for i in range(40)), f"MAX_WORK = {chainlang.MAX_WORK}"),
    "huge integer argument": ("up(" + "*".join(["9" * 40] * 300) + ")", "MAX_FACTOR = 4096"),
    "ideographic space": ("up(2)\u3000", "U+3000 IDEOGRAPHIC SPACE"),
    "lone surrogate": ("up(\udcff)", "U+DCFF"),
    "exponent with sign": ("up(2) * 1.5E-3", "scientific notation ('1.5E-3') is not supported"),
}


@pytest.mark.parametrize("text, words", TABLE.values(), ids=TABLE.keys())
def test_hostile_input_is_a_quick_error_naming_the_limit(text, words):
    start = time.perf_counter()
    with pytest.raises(ParseError) as info:
        parse_chain(text)
    assert time.perf_counter() - start < HANG_GUARD_S
    assert words in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text, words", TABLE.values(), ids=TABLE.keys())
@pytest.mark.parametrize("command", ["derive", "prove"])
def test_hostile_input_is_one_line_and_exit_2_on_the_command_line(capsys, command, text, words):
    argv = ["derive", text] if command == "derive" else ["prove", "up(2)", text]
    rc, out, err, elapsed = _cli(capsys, *argv)
    assert rc == 2 and out == []
    assert len(err) == 1 and err[0].startswith(f"symdeconv {command}: error")
    assert words in err[0] and "Traceback" not in err[0]
    assert len(err[0]) < 1200  # the echoed text is cut, not repeated in full
    assert elapsed < HANG_GUARD_S


def test_the_limits_are_named_constants_quoted_in_the_help(capsys):
    assert chainlang.limits()["MAX_FACTOR"] == chainlang.MAX_FACTOR == 4096
    assert main(["prove", "--help"]) == 0
    out = capsys.readouterr().out
    for name in ("MAX_FACTOR", "MAX_PERIOD", "MAX_TAPS", "MAX_WORK", "MAX_TERMS"):
        assert f"{name} = {chainlang.limits()[name]}" in out
    for word in ("chain   := sum", "A @ B", "transposed_conv(taps, s)", "examples:"):
        assert word in out
    assert main(["derive", "--help"]) == 0 and "chain   := sum" in capsys.readouterr().out


# --- bounded output -------------------------------------------------------------------------------------------


def test_derive_prints_a_summary_of_a_long_normal_form(capsys):
    rc, out, err, _ = _cli(capsys, "derive", "conv(q0,q1) @ up(4096)")
    assert rc == 0 and err == []
    assert len(out) <= MAX_OUTPUT_LINES
    assert out[1] == "normal form: rate 4096/1, period 4096 (outputs) / 1 (inputs)"
    assert out[2:4] == ["  y[4096m] = q0·x[m]", "  y[4096m + 1] = q1·x[m]"]
    assert "4064 more phase lines not shown (4096 in all, above MAX_PRINT_PHASES = 64" in out[-2]
    assert out[-1] == "multiplications per period: 2"


def test_long_lines_are_cut(capsys):
    rc, out, _, _ = _cli(capsys, "derive", "conv(taps(q, 1024)) @ up(2)")
    assert rc == 0 and len(out) <= MAX_OUTPUT_LINES
    assert max(map(len, out)) < chainlang.MAX_LINE_CHARS + 100 and "more characters not shown" in out[0]


def test_emit_refuses_a_form_too_long_to_print(capsys):
    rc, out, err, _ = _cli(capsys, "derive", "up(128)", "--emit", "cpu")
    assert rc == 2 and out == [] and len(err) == 1 and "--emit" in err[0] and "MAX_PRINT_PHASES" in err[0]


def test_prove_stays_bounded_and_skips_a_huge_matrix_search(capsys):
    rc, out, err, elapsed = _cli(capsys, "prove", "up(4096) @ shift(1024)", "up(4096) @ shift(-1024)")
    assert rc == 1 and err == [] and len(out) <= MAX_OUTPUT_LINES and elapsed < HANG_GUARD_S
    assert out[2].startswith("NOT equivalent: the normal forms differ at output phase 0, tap offset -1024: "
                             "coefficient 1 (lhs) but 0 (rhs) (no explicit-matrix counterexample")
    rc, out, _, _ = _cli(capsys, "prove", "up(2) @ down(2)", "down(2) @ up(2)")  # small: confirmed on matrices
    assert rc == 1 and "matrix entry" in out[2]


# --- the command line never lets anything else out ------------------------------------------------------------


def test_a_chain_may_start_with_a_minus(capsys):
    rc, out, _, _ = _cli(capsys, "derive", "-conv(q0) + 2*conv(q0)")
    assert rc == 0 and out[2] == "  y[m] = q0·x[m]"
    rc, _, err, _ = _cli(capsys, "derive", "-up(2) @")  # columns are those of the text as typed
    assert rc == 2 and len(err) == 1 and "column 9" in err[0]
    rc, out, _, _ = _cli(capsys, "prove", "-up(2)", "-1*up(2)")
    assert rc == 0


def test_usage_errors_are_one_line(capsys):
    for argv in (["derive"], ["prove", "up(2)"], ["derive", "up(2)", "--emit", "gpu"], ["nonsense"], []):
        rc, out, err, _ = _cli(capsys, *argv)
        assert rc == 2 and out == [] and len(err) == 1 and "error" in err[0], argv


def test_an_unexpected_exception_becomes_one_line(capsys, monkeypatch):
    def boom(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded\nwhile calling a Python object")

    monkeypatch.setattr(sd, "canonical", boom)
    rc, out, err, _ = _cli(capsys, "derive", "up(2)")
    assert rc == 2 and out == []
    assert err == ["symdeconv derive: error: internal error, RecursionError: maximum recursion depth exceeded "
                   "while calling a Python object"]


# --- correct results, compared with the Python API ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (" @ ".join(["up(2)"] * 12), lambda: sd.up(4096)),  # 12 factors: the largest rate allowed
        (" @ ".join(["shift(1)"] * 256), lambda: sd.shift(256)),  # MAX_CALLS factors, composed as a balanced tree
        (" @ ".join(["conv(1, 1)"] * 40), lambda: sd.conv([sp.binomial(40, k) for k in range(41)])),
        ("2 * up(2) @ down(2) * 3 / 4", lambda: sp.Rational(3, 2) * (sd.up(2) @ sd.down(2))),
        ("- - - up(2)", lambda: -sd.up(2)),
        ("up(3).T.T.T", lambda: sd.down(3)),
        ("up(2) ∘ down(2) − up(2) @ down(2)", lambda: sd.up(2) @ sd.down(2) * 0),
        ("(" * 31 + "hold(2)" + ")" * 31, lambda: sd.hold(2)),  # with hold's own: MAX_NESTING deep
        ("q0 * (conv(1, 2) + conv(0, 1)) @ hold(2)", lambda: q0 * sd.conv((1, 3)) @ sd.hold(2)),
        ("conv(0.25, 1/2, .25) @ up(2)", lambda: sd.conv((sp.Rational(1, 4), sp.Rational(1, 2), 0.25)) @ sd.up(2)),
        ("upfirdn(taps(h, 64), 3, 2)", lambda: sd.upfirdn(sd.taps("h", 64), 3, 2)),
        ("linear_interp(2048)", lambda: sd.linear_interp(2048)),
        ("conv(taps(q, 1024)) @ up(16)", lambda: sd.conv(sd.taps("q", 1024)) @ sd.up(16)),
        ("conv(" + "9" * 40 + ") @ up(2)", lambda: sd.conv((sp.Integer("9" * 40),)) @ sd.up(2)),
    ],
)
def test_valid_chains_give_the_operator_of_the_python_api(text, expected):
    start = time.perf_counter()
    assert sd.equivalent(parse_chain(text), expected())
    assert time.perf_counter() - start < HANG_GUARD_S


def test_compositions_are_shallow_and_print_in_order():
    op = parse_chain(" @ ".join(f"shift({k})" for k in range(200)))
    depth, stack = 0, [(op, 1)]
    while stack:
        node, d = stack.pop()
        depth = max(depth, d)
        stack += [(c, d + 1) for c in (getattr(node, "outer", None), getattr(node, "inner", None)) if c is not None]
    assert depth <= 9  # log2(200) rounded up, plus the leaves
    assert repr(op).startswith("identity() @ shift(1) @ shift(2) @ ") and repr(op).endswith("@ shift(199)")


def test_only_ascii_is_accepted_but_the_two_documented_aliases():
    assert [t.text for t in tokenize("up(2) ∘ down(2) − q0")] == ["up", "(", "2", ")", "@", "down", "(", "2", ")",
                                                                    "-", "q0", ""]
    for text, column in [("up(٢)", 4), ("ｕp(2)", 1), ("up(2)\u00a0", 6), ("conv(q\u2080)", 7)]:
        with pytest.raises(ParseError) as info:
            parse_chain(text)
        assert info.value.column == column and "unexpected character" in str(info.value)


# --- fuzzing ------------------------------------------------------------------------------------------------------

FUNCTIONS = ["up", "down", "hold", "shift", "identity", "conv", "xcorr", "transposed_conv", "strided_conv",
             "dilated_conv", "upfirdn", "linear_interp", "pixel_shuffle", "pixel_unshuffle", "taps", "bilinear",
             "convolve", "dilate", "reverse"]
PIECES = FUNCTIONS + ["origin=", "channels=", "(", ")", "(", ")", ",", "@", "∘", "+", "-", "−", "*", "/", ".T", ".",
                      " ", "q0", "q1", "h", "x", "0", "1", "2", "3", "4", "4096", "99999", "0.5", ".25", "1/3", "1e3",
                      "２", "\u3000", "\udcff", "\x00", "\n", "'", "__import__"]
SOUP = st.lists(st.one_of(st.sampled_from(PIECES), st.characters()), max_size=30).map("".join)


@settings(max_examples=800, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(st.one_of(SOUP, st.builds(lambda tree, at, junk: tree[0][:at] + junk + tree[0][at:],
                                 st.deferred(lambda: _tree()), st.integers(0, 80), SOUP)))
def test_fuzz_random_text_never_crashes_hangs_or_floods(text):
    """(a) token soup and unicode, and valid chains with soup spliced in: `symdeconv derive`."""
    event(f"exit status {check_derive(text)}")


def check_derive(text: str) -> int:
    """Run ``symdeconv derive text`` in-process and check the contract; the exit status.

    Exit 0 with a bounded normal form (the one of ``parse_chain``), or exit 2 with exactly one line on stderr
    (and ``parse_chain`` raising); within the hang guard.  ``tests/fuzz_chainlang.py`` (atheris) uses it too.
    """
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["derive", text])
    elapsed = time.perf_counter() - start
    out_lines, err_lines = out.getvalue().splitlines(), err.getvalue().splitlines()
    assert elapsed < HANG_GUARD_S, (elapsed, text)
    if rc == 0:
        assert err_lines == [] and 3 <= len(out_lines) <= MAX_OUTPUT_LINES, text
        assert sd.canonical(parse_chain(text)).header() in out_lines[1]
    else:
        assert rc == 2 and out_lines == [] and len(err_lines) == 1, (text, err_lines)
        assert "internal error" not in err_lines[0], (text, err_lines)
        with pytest.raises(sd.SymdeconvError):
            parse_chain(text)
    return rc


def _leaf(draw) -> tuple[str, object]:
    kind = draw(st.sampled_from(["up", "down", "hold", "shift", "conv", "tconv", "sconv", "upfirdn", "interp", "id"]))
    k = draw(st.integers(1, 4))
    taps = draw(st.lists(st.sampled_from(["q0", "q1", "2", "1/2", "0", "-1"]), min_size=1, max_size=3))
    values = [sp.Rational(1, 2) if t == "1/2" else sp.Symbol(t) if t[0] == "q" else sp.Integer(t) for t in taps]
    text_taps = ", ".join(taps)
    if kind in ("up", "down", "hold"):
        return f"{kind}({k})", getattr(sd, kind)(k)
    if kind == "shift":
        d = draw(st.integers(-3, 3))
        return f"shift({d})", sd.shift(d)
    if kind == "conv":
        return f"conv({text_taps})", sd.conv(values)
    if kind == "tconv":
        return f"transposed_conv(({text_taps},), {k})", sd.transposed_conv(values, k)
    if kind == "sconv":
        return f"strided_conv(({text_taps},), {k})", sd.strided_conv(values, k)
    if kind == "upfirdn":
        m = draw(st.integers(1, 3))
        return f"upfirdn(({text_taps},), {k}, {m})", sd.upfirdn(values, k, m)
    if kind == "interp":
        return f"linear_interp({k})", sd.linear_interp(k)
    return "identity()", sd.identity()


@st.composite
def _tree(draw, depth: int = 0) -> tuple[str, object]:
    """A random chain as (text, the thunk building it through the Python API)."""
    if depth >= 3 or draw(st.booleans()):
        text, op = _leaf(draw)
        return text, (lambda op=op: op)
    form = draw(st.sampled_from(["@", "@", "+", "-", "scale", "neg", "T", "paren"]))
    a_text, a = draw(_tree(depth + 1))
    if form in ("@", "+", "-"):
        b_text, b = draw(_tree(depth + 1))
        build = {"@": lambda: a() @ b(), "+": lambda: a() + b(), "-": lambda: a() - b()}[form]
        return f"{a_text} {form} ({b_text})" if form != "@" else f"({a_text}) @ ({b_text})", build
    if form == "scale":
        c = draw(st.sampled_from(["2", "q1", "1/3"]))
        value = sp.Rational(1, 3) if c == "1/3" else sp.Symbol(c) if c[0] == "q" else sp.Integer(c)
        return f"{c} * ({a_text})", lambda: value * a()
    if form == "neg":
        return f"-({a_text})", lambda: -a()
    if form == "T":
        return f"({a_text}).T", lambda: a().T
    return f"({a_text})", a


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_tree())
def test_fuzz_random_trees_parse_to_the_python_api_operator(tree):
    """(b) random expression trees rendered to text: the operator the Python API builds, or a limit."""
    text, build = tree
    start = time.perf_counter()
    try:
        expected = build()
        sd.canonical(expected)
    except sd.SymdeconvError:  # e.g. adding operators of different rates: the parser refuses it too
        event("refused by the Python API and the parser")
        with pytest.raises(ParseError):
            parse_chain(text)
        return
    try:
        parsed = parse_chain(text)
    except ParseError as err:  # only a limit may refuse what the Python API accepts
        assert "MAX_" in str(err), (text, str(err))
        event("refused by a limit")
        return
    event("parsed and equivalent")
    assert sd.equivalent(parsed, expected), text
    assert time.perf_counter() - start < HANG_GUARD_S, text
