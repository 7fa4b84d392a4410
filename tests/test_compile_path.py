"""``sd.compile(obj, target, path=...)`` loads a file only when it was emitted from ``obj``'s plan.

The emitted header names the plan (``Plan key: …``, a hash of the plan without its name, the target and
the emitter version); ``compile`` reads it before anything of the file runs and refuses a file of another
layer, another target, an older emitter, or no symdeconv module at all, with a ``SymdeconvError`` that
names ``path``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import symdeconv as sd

pytest.importorskip("numba")

GENERATED = Path(__file__).resolve().parents[1] / "generated"


def _layer():
    return sd.ConvTranspose(4, stride=2, padding=1, in_channels=2, out_channels=3)


def test_a_file_emitted_for_the_object_loads_and_runs(tmp_path):
    layer = _layer()
    path = tmp_path / "mine.py"
    path.write_text(sd.emit(layer, "cpu"))
    f = sd.compile(layer, "cpu", path=path)
    assert Path(f.path) == path
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 5))
    w = rng.standard_normal(layer.weight_shape)
    np.testing.assert_allclose(f(x, w), sd.compile(layer, "cpu")(x, w), rtol=1e-13, atol=1e-13)


def test_the_name_does_not_matter_but_the_plan_does():
    """The catalogue's file of the same structure loads under any name; a file of another structure does not."""
    same = sd.compile(sd.ConvTranspose(4, stride=2, padding=1, in_channels=2, out_channels=3), "cpu",
                      path=GENERATED / "cpu" / "conv_transpose1d_k4_s2_p1.py")
    assert same.module.PLAN.P == (2,)
    with pytest.raises(sd.SymdeconvError, match=r"path: .*conv2d_k3_s2_p1\.py.* another plan"):
        sd.compile(_layer(), "cpu", path=GENERATED / "cpu" / "conv2d_k3_s2_p1.py")


@pytest.mark.parametrize("case", ["other layer", "other target", "old emitter", "not a module", "missing"])
def test_a_file_not_emitted_from_this_plan_is_refused(case, tmp_path):
    layer = _layer()
    path = tmp_path / "kernel.py"
    marker = tmp_path / "ran"
    if case == "other layer":
        path.write_text(sd.emit(sd.ConvTranspose(3, stride=2, padding=1), "cpu"))
    elif case == "other target":
        path.write_text(sd.emit(layer, "cuda"))
    elif case == "old emitter":  # the same plan, written by another emitter version: another key
        text = sd.emit(layer, "cpu")
        start = text.index("# Plan key: ") + len("# Plan key: ")
        path.write_text(text[:start] + "0" * 20 + text[start + 20:])
    elif case == "not a module":  # nothing of the file runs: the check reads its header first
        path.write_text(f"open({str(marker)!r}, 'w').close()\n")
    match = "cannot read" if case == "missing" else ("no plan key" if case == "not a module" else "another plan")
    with pytest.raises(sd.SymdeconvError, match=match) as info:
        sd.compile(layer, "cpu", path=path)
    assert str(info.value).count("\n") == 0 and "path" in str(info.value)
    assert not marker.exists()


def test_chains_are_checked_too(tmp_path):
    h = sd.taps("h", 4)
    path = tmp_path / "chain.py"
    path.write_text(sd.emit(sd.upfirdn(h, 2, 3), "cpu"))
    assert sd.compile(sd.upfirdn(h, 2, 3), "cpu", path=path).module is not None
    with pytest.raises(sd.SymdeconvError, match="another plan"):
        sd.compile(sd.upfirdn(h, 3, 2), "cpu", path=path)
