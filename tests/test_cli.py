"""The `symdeconv` command line and its operator-language parser."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp

import symdeconv as sd
from symdeconv.chainlang import ParseError, parse_chain, tokenize
from symdeconv.cli import main

REPO = Path(__file__).resolve().parents[1]
q0, q1, q2, q3 = sp.symbols("q0 q1 q2 q3")


# --- the parser ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("conv(q0,q1,q2) @ hold(2)", lambda: sd.conv((q0, q1, q2)) @ sd.hold(2)),
        ("down(2) @ conv(1,2,1) @ up(3)", lambda: sd.down(2) @ sd.conv((1, 2, 1)) @ sd.up(3)),
        ("shift(-1)", lambda: sd.shift(-1)),
        ("transposed_conv((q0,q1,q2,q3), 2)", lambda: sd.transposed_conv((q0, q1, q2, q3), 2)),
        ("conv(1/4, 0.75, 3/4, .25) ∘ up(2)", lambda: sd.conv(sd.bilinear_kernel(4)) @ sd.up(2)),
        ("2*q0*up(2) + up(2)*3 - up(2)/2", lambda: (2 * q0 + 3 - sp.Rational(1, 2)) * sd.up(2)),
        ("(down(2) @ conv(q0, q1)).T", lambda: (sd.down(2) @ sd.conv((q0, q1))).T),
        ("-conv(q0) + conv(q0)", lambda: sd.conv((0,))),
        ("upfirdn(taps(h, 4), 3, 2)", lambda: sd.upfirdn(sd.taps("h", 4), 3, 2)),
        ("conv((1, 2), (3, 4)) @ up((2, 2))", lambda: sd.conv([[1, 2], [3, 4]]) @ sd.up((2, 2))),
        ("conv(1, 2, origin=1)", lambda: sd.conv((1, 2), origin=1)),
        ("pixel_shuffle(2, channels=1) @ pixel_unshuffle(2)", lambda: sd.identity()),
    ],
)
def test_parse_builds_the_operator(text, expected):
    """Judged by the normal form: the parsed chain equals the one built in Python for every input."""
    assert sd.equivalent(parse_chain(text), expected())


def test_numbers_are_exact():
    op = parse_chain("conv(0.1, 1/3, 2)")
    assert op.taps() == (sp.Rational(1, 10), sp.Rational(1, 3), 2)


def test_tokens_carry_columns():
    toks = tokenize("up(2) @x.T")
    assert [(t.kind, t.text, t.column) for t in toks] == [
        ("name", "up", 1), ("op", "(", 3), ("num", "2", 4), ("op", ")", 5), ("op", "@", 7),
        ("name", "x", 8), ("op", ".T", 9), ("end", "", 11),
    ]


@pytest.mark.parametrize(
    "text, column, words",
    [
        ("up(2", 5, "expected ')'"),
        ("up(2) $ 3", 7, "unexpected character"),
        ("", 1, "empty chain"),
        ("up(2) @", 8, "ends where an operand"),
        ("2q0 * up(2)", 1, "cannot run into a name"),
        ("foo(1)", 1, "unknown function 'foo'"),
        ("up(2) @ 3", 7, "'@' composes two operators"),
        ("up(2) up(3)", 7, "unexpected 'up'"),
        ("up(0)", 1, "k must be a positive integer"),
        ("up", 1, "is a function"),
        ("__import__('os').system('echo hi')", 12, "unexpected character"),
        ("conv(q0) @ up(2)).T", 17, "unexpected ')'"),
        ("up(2) + conv(q0)", 7, "different rates"),
        ("up(2).T.T.T @ down(2) * up(2)", 23, "scales by a number"),
        ("q0 .T", 4, ".T transposes an operator"),
        ("q0 + 1", 1, "must be an operator"),
        ("up(k=2, 3)", 9, "positional argument cannot follow"),
        ("up(2, 3, 4)", 1, "at most 2 argument"),
        ("conv(q0) / 0", 10, "division by zero"),
    ],
)
def test_syntax_and_meaning_errors_name_the_column(text, column, words):
    with pytest.raises(ParseError) as info:
        parse_chain(text)
    assert info.value.column == column, str(info.value)
    assert words in str(info.value)
    assert str(info.value).startswith(f"column {column}: ")


def test_text_is_never_evaluated(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("user text reached eval/sympify")

    monkeypatch.setattr(sp, "sympify", boom)
    monkeypatch.setattr("builtins.eval", boom)
    assert sd.equivalent(parse_chain("conv(a, b) @ up(2)"), sd.conv(sp.symbols("a b")) @ sd.up(2))


# --- the commands ------------------------------------------------------------------------------------------


def test_derive_prints_the_normal_form(capsys):
    assert main(["derive", "conv(q0,q1,q2) @ hold(2)"]) == 0
    out = capsys.readouterr().out
    assert "y[2m] = q0·x[m] + (q1 + q2)·x[m − 1]" in out and "y[2m + 1] = (q0 + q1)·x[m] + q2·x[m − 1]" in out


def test_derive_can_emit_the_kernel(capsys):
    assert main(["derive", "down(2) @ conv(1,2,1) @ up(3)", "--emit", "cuda"]) == 0
    out = capsys.readouterr().out
    assert "@cuda.jit(cache=True)" in out and "DO NOT EDIT" in out


def test_prove_exit_codes(capsys):
    assert main(["prove", "conv(q0,q1,q2) @ hold(2)", "transposed_conv(convolve((1,1),(q0,q1,q2)), 2)"]) == 0
    assert "equivalent for every input length" in capsys.readouterr().out
    assert main(["prove", "up(2) @ down(2)", "down(2) @ up(2)"]) == 1
    out = capsys.readouterr().out
    assert "NOT equivalent" in out and "matrix entry" in out
    assert main(["prove", "up(2", "up(2)"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "column 5" in err and "Traceback" not in err
    assert main(["prove", "up(2)", "pixel_shuffle(2)"]) == 2  # different channel counts: bad input
    assert "different spaces" in capsys.readouterr().err


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, "-m", "symdeconv.cli", *args], env=full_env, capture_output=True,
                          text=True, timeout=300)


def test_command_line_process_exit_codes_and_no_traceback():
    assert _run("prove", "down(2) @ up(2)", "identity()").returncode == 0
    assert _run("prove", "conv(q0, q1)", "conv(q1, q0)").returncode == 1
    bad = _run("derive", "conv(q0,, q1)")
    assert bad.returncode == 2 and "column 9" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_generate_and_check(tmp_path, capsys):
    from symdeconv.codegen.catalogue import entries

    assert main(["generate", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    # progress: one line per catalogue entry, with its seconds, before the summary
    assert [line.split()[0] for line in lines[:len(entries())]] == [e.name for e in entries()]
    assert all(line.rstrip().endswith(" s") for line in lines[:len(entries())])
    assert main(["generate", "--check", "--out", str(tmp_path)]) == 0
    path = tmp_path / "cuda" / "conv2d_k3_s2_p1.py"
    path.write_text(path.read_text() + "# edited\n")
    capsys.readouterr()
    assert main(["generate", "--check", "--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "+# edited" not in captured.out and "-# edited" in captured.out and "stale" in captured.err


def test_verify_prints_a_table(capsys):
    assert main(["verify", "--only", "hold2_then_conv3", "--target", "cpu", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert "hold2_then_conv3" in out and "1/1 kernel checks passed" in out
