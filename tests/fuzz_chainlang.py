"""Coverage-guided fuzzing of the chain language with atheris (optional; pytest does not collect this file).

    pip install atheris
    python tests/fuzz_chainlang.py -max_total_time=60 -dict=tests/fuzz_chainlang.dict

Each input (bytes, decoded as UTF-8 with undecodable bytes kept as surrogates, as the shell hands them to
Python) runs through ``symdeconv derive`` and is checked by ``test_chainlang.check_derive``: exit status 0
with bounded output, or 2 with exactly one line on stderr, within the hang guard.
"""

from __future__ import annotations

import sys

import atheris

import sympy  # noqa: F401 - imported before instrumentation: only symdeconv is instrumented

with atheris.instrument_imports(include=["symdeconv"]):
    from test_chainlang import check_derive  # this folder is sys.path[0] when the file is run


def one_input(data: bytes) -> None:
    check_derive(data.decode("utf-8", "surrogateescape"))


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
