"""The verifier itself: a kernel whose output is wrong — or NaN — must fail its check."""

from __future__ import annotations

import numpy as np
import pytest

import symdeconv as sd
from symdeconv.verify.check import check_chain, check_layer, max_abs_error

pytest.importorskip("numba")


class _Poisoned:
    """A compiled kernel whose outputs are altered at one position (the rest delegated to the real one)."""

    def __init__(self, f, value):
        self._f, self._value = f, value

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __call__(self, *args, **kwargs):
        y = np.array(self._f(*args, **kwargs))
        y.reshape(-1)[y.size // 2] = self._value if np.isnan(self._value) else y.reshape(-1)[y.size // 2] + self._value
        return y


def test_max_abs_error_treats_nan_and_inf_as_failures():
    expect = np.zeros(4)
    assert max_abs_error(np.array([0.0, 1e-3, 0.0, 0.0]), expect) == pytest.approx(1e-3)
    assert max_abs_error(np.array([0.0, np.nan, 0.0, 0.0]), expect) == np.inf
    assert max_abs_error(np.array([np.inf, 0.0, 0.0, 0.0]), expect) == np.inf
    assert max_abs_error(np.zeros(0), np.zeros(0)) == 0.0


@pytest.mark.parametrize("value", [np.nan, 1e-3])
def test_check_layer_fails_on_a_wrong_output(value):
    layer = sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=2, out_channels=3)
    f = sd.compile(layer, "cpu")
    assert check_layer(f, layer, [(3, 4)]).ok
    bad = check_layer(_Poisoned(f, value), layer, [(3, 4)])
    assert not bad.ok and bad.max_error >= 1e-3
    assert "FAIL" in bad.row()[-1]


@pytest.mark.parametrize("value", [np.nan, 1e-3])
def test_check_chain_fails_on_a_wrong_output(value):
    op = sd.conv((1, 2, 1)) @ sd.up(2)
    f = sd.compile(op, "cpu")
    assert check_chain(f, op, (5,)).ok
    bad = check_chain(_Poisoned(f, value), op, (5,))
    assert not bad.ok and bad.max_error >= 1e-3


def test_verify_progress_says_compiled_then_cached(tmp_path):
    """``symdeconv verify``'s progress line names whether Numba compiled the kernel or loaded it from its
    disk cache: a new process on an empty cache compiles, the next one loads."""
    import os
    import subprocess
    import sys

    script = ("from symdeconv.verify.catalogue import verify_catalogue\n"
              "verify_catalogue(targets=('cpu',), dtypes=('float64',), names=['hold2_then_conv3'], progress=print)\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"), SYMDECONV_CACHE_DIR=str(tmp_path / "sd"))
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    first, second = (run.stdout.split() for run in runs)
    assert first[:4] == ["hold2_then_conv3", "cpu", "float64", "ok"] and first[4] == "compiled"
    assert second[:4] == first[:4] and second[4] == "cached"


@pytest.mark.parametrize("simulated", ["1", "0"])
def test_command_line_runs_shorten_gil_switches_only_when_simulating(simulated, monkeypatch):
    import sys

    from symdeconv.verify.catalogue import shorten_gil_switches

    before = sys.getswitchinterval()
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", simulated)
    sys.setswitchinterval(0.005)
    try:
        shorten_gil_switches()
        assert sys.getswitchinterval() == pytest.approx(1e-4 if simulated == "1" else 0.005)
    finally:
        sys.setswitchinterval(before)
