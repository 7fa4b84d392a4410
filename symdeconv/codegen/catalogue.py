"""The committed kernel catalogue (``generated/``): what it holds, how it is written and checked.

Each :class:`Entry` names an operator chain or a layer of the textbooks, the input sizes on which
``symdeconv verify`` checks its kernels against the symbolic matrix, and a one-line title.  For every
entry and target the emitted module is written to ``generated/<target>/<name>.py``; a
``generated/README.md`` index lists them.  Files are deterministic — a fixed header naming the normal
form, no timestamps — so ``symdeconv generate --check`` regenerates in memory and diffs.

A layer's kernel is structural (channels, groups and sizes are runtime arguments): an entry's channel
counts only fix what ``verify`` checks.
"""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..algebra.arrays import taps
from ..algebra.constructions import upfirdn
from ..algebra.operators import conv, hold, shift, up
from ..canonical.catalogue import bilinear_kernel
from .api import TARGETS, emit_plan, plan
from .cache import write_atomic

__all__ = ["Entry", "entries", "render", "write", "stale", "default_root"]


@dataclass(frozen=True)
class Entry:
    """One catalogue kernel: ``build()`` gives the operator or layer; ``sizes`` are verification inputs.

    ``variants`` (layers only): further channel configurations of the same structure — the same module —
    that ``verify`` also runs, so that every path the module carries (GEMM-like, stencil, Winograd: the
    channels per group choose it) is checked against the symbolic matrix; each with its own sizes.
    """

    name: str
    title: str
    build: Callable[[], Any]
    sizes: tuple
    variants: tuple[tuple[Callable[[], Any], tuple], ...] = ()

    def obj(self) -> Any:
        return self.build()

    def checks(self) -> list[tuple[Any, tuple]]:
        """``(object, sizes)`` of every configuration ``verify`` runs: the entry's own, then its variants."""
        return [(self.build(), self.sizes)] + [(build(), sizes) for build, sizes in self.variants]


def _fcn_bilinear_2d():
    k = bilinear_kernel(4)
    kernel2d = [[a * b for b in k] for a in k]
    return shift((-1, -1)) @ conv(kernel2d) @ up((2, 2))


def _chains() -> list[Entry]:
    q = taps("q", 3)
    return [
        Entry(
            "hold2_then_conv3", "hold(2), then convolution with q = (q0, q1, q2) (symbolic taps, runtime weights)",
            lambda: conv(q) @ hold(2), (1, 4, 7),
        ),
        Entry(
            "resampler_up3_h8_down2",
            "rational resampler ↓2 h ↑3 (scipy.signal.upfirdn(h, x, 3, 2)), h = 8 symbolic taps",
            lambda: upfirdn(taps("h", 8), 3, 2), (1, 4, 9),
        ),
        Entry(
            "resampler_up2_h4_down3", "rational resampler ↓3 h ↑2 (downsampling by 3/2), h = 4 symbolic taps",
            lambda: upfirdn(taps("h", 4), 2, 3), (1, 5, 10),
        ),
        Entry(
            "fcn_bilinear_x2_1d",
            "FCN bilinear ×2 upsampler, 1-D: crop 1 ∘ ((¼ ¾ ¾ ¼) ∗ ↑2) — numeric taps baked into the source",
            lambda: shift(-1) @ conv(bilinear_kernel(4)) @ up(2), (1, 3, 6),
        ),
        Entry(
            "fcn_bilinear_x2_2d",
            "FCN bilinear ×2 upsampler, 2-D (outer product of ¼ ¾ ¾ ¼), per channel — numeric taps baked in",
            _fcn_bilinear_2d, ((1, 1), (2, 3), (4, 4)),
        ),
    ]


def _layers() -> list[Entry]:
    """Common deep-learning layers (PyTorch conventions; kernels are the same for every channel count)."""
    from ..algebra.layers import Conv, ConvTranspose

    return [
        Entry(
            "conv_transpose1d_k4_s2_p1", "ConvTranspose1d(kernel_size=4, stride=2, padding=1): exact ×2 upsampling",
            lambda: ConvTranspose(4, stride=2, padding=1, in_channels=2, out_channels=3), (1, 3, 6),
            variants=((lambda: ConvTranspose(4, stride=2, padding=1), (1, 3, 6)),),  # 1 → 1: the stencil path
        ),
        Entry(
            "conv_transpose2d_k4_s2_p1", "ConvTranspose2d(kernel_size=4, stride=2, padding=1) (DCGAN / U-Net decoder)",
            lambda: ConvTranspose((4, 4), stride=2, padding=1, in_channels=2, out_channels=2), ((1, 1), (2, 3)),
            variants=(  # depthwise: the stencil path
                (lambda: ConvTranspose((4, 4), stride=2, padding=1, in_channels=2, out_channels=2, groups=2),
                 ((1, 1), (3, 4))),
            ),
        ),
        Entry(
            "conv_transpose3d_k4_s2_p1", "ConvTranspose3d(kernel_size=4, stride=2, padding=1)",
            lambda: ConvTranspose((4, 4, 4), stride=2, padding=1, in_channels=1, out_channels=2),
            ((1, 1, 1), (2, 1, 2)),
            variants=(  # 16 input channels per group: the Winograd path; 1 → 1: the one-channel pass
                (lambda: ConvTranspose((4, 4, 4), stride=2, padding=1, in_channels=16, out_channels=4),
                 ((1, 1, 1), (2, 1, 2))),
                (lambda: ConvTranspose((4, 4, 4), stride=2, padding=1), ((1, 1, 1), (2, 3, 2))),
            ),
        ),
        Entry(
            "conv_transpose2d_k3_s2_p1_op1",
            "ConvTranspose2d(kernel_size=3, stride=2, padding=1, output_padding=1): exact ×2 with a 3×3 kernel",
            lambda: ConvTranspose((3, 3), stride=2, padding=1, output_padding=1, in_channels=2, out_channels=2,
                                  groups=2),
            ((1, 2), (3, 2)),
            variants=(  # two output channels per group: the GEMM-like path
                (lambda: ConvTranspose((3, 3), stride=2, padding=1, output_padding=1, in_channels=2, out_channels=4,
                                       groups=2),
                 ((1, 2), (3, 2))),
            ),
        ),
        Entry(
            "conv2d_k3_s2_p1", "Conv2d(kernel_size=3, stride=2, padding=1): strided convolution (downsampling)",
            lambda: Conv((3, 3), stride=2, padding=1, in_channels=2, out_channels=3), ((1, 1), (4, 5)),
            variants=((lambda: Conv((3, 3), stride=2, padding=1, in_channels=2, out_channels=2, groups=2),
                       ((1, 1), (4, 5))),),
        ),
        Entry(
            "conv2d_k3_d2_p2", "Conv2d(kernel_size=3, dilation=2, padding=2): dilated (atrous) convolution",
            lambda: Conv((3, 3), padding=2, dilation=2, in_channels=2, out_channels=2), ((2, 2), (4, 5)),
            variants=((lambda: Conv((3, 3), padding=2, dilation=2), ((2, 2), (4, 5))),),  # 1 → 1: the stencil path
        ),
    ]


def entries() -> list[Entry]:
    """Every catalogue entry, chains first."""
    return _chains() + _layers()


def default_root() -> Path:
    """``generated/`` of the repository this package lives in."""
    return Path(__file__).resolve().parents[2] / "generated"


def _index(items: list[tuple[Entry, Any]]) -> str:
    lines = [
        "# Generated kernels",
        "",
        "Emitted by `symdeconv generate` from the catalogue in `symdeconv/codegen/catalogue.py` — do not edit;",
        "`symdeconv generate --check` fails when these files are stale, `symdeconv verify` checks every kernel",
        "against the symbolic matrix of its operator or layer.",
        "",
        "| kernel | what | normal form | CPU | CUDA |",
        "|---|---|---|---|---|",
    ]
    for entry, p in items:
        form = p.description[0] if p.description else ""
        lines.append(
            f"| `{entry.name}` | {entry.title} | {form} | [cpu/{entry.name}.py](cpu/{entry.name}.py) "
            f"| [cuda/{entry.name}.py](cuda/{entry.name}.py) |"
        )
    return "\n".join(lines) + "\n"


def render(selected: list[Entry] | None = None, progress=None) -> dict[str, str]:
    """Relative path → file text, for every catalogue file (in memory; nothing is written).

    ``progress`` (optional) is called with a line per entry once it is planned and emitted (name, seconds:
    the SymPy derivation of its normal form and the emitters)."""
    items = []
    out: dict[str, str] = {}
    for entry in (selected if selected is not None else entries()):
        start = time.perf_counter()
        p = plan(entry.obj(), entry.name)
        items.append((entry, p))
        for target in TARGETS:
            out[f"{target}/{entry.name}.py"] = emit_plan(p, target, title=f"Catalogue entry: {entry.title}")
        if progress is not None:
            progress(f"{entry.name:40s} planned and emitted ({', '.join(TARGETS)}) {time.perf_counter() - start:6.2f} s")
    out["README.md"] = _index(items)
    out[".gitignore"] = "# Numba's compiled-kernel cache, written next to these files when they are imported\n__pycache__/\n"
    return out


def write(root: Path | None = None, progress=None) -> list[Path]:
    """Write the catalogue under ``root`` (default: ``generated/``); return the files that changed.

    Files of the catalogue's targets that no entry produces any more are removed.  ``progress``: as
    :func:`render`'s.
    """
    root = Path(root) if root is not None else default_root()
    files = render(progress=progress)
    changed = []
    for rel, text in sorted(files.items()):
        if write_atomic(root / rel, text):
            changed.append(root / rel)
    for target in TARGETS:
        for path in sorted((root / target).glob("*.py")):
            if f"{target}/{path.name}" not in files:
                path.unlink()
                changed.append(path)
    return changed


def stale(root: Path | None = None) -> list[str]:
    """Unified diffs (one per file) between ``root`` and a fresh rendering; empty when up to date."""
    root = Path(root) if root is not None else default_root()
    files = render()
    diffs = []
    for rel, text in sorted(files.items()):
        path = root / rel
        old = path.read_text() if path.is_file() else ""
        if old != text:
            diffs.append("".join(difflib.unified_diff(
                old.splitlines(keepends=True), text.splitlines(keepends=True),
                fromfile=f"{path} (committed)" if old else "/dev/null", tofile=f"{path} (regenerated)",
            )))
    for target in TARGETS:
        for path in sorted((root / target).glob("*.py")) if (root / target).is_dir() else []:
            if f"{target}/{path.name}" not in files:
                diffs.append(f"--- {path}\n+++ /dev/null\n(no catalogue entry generates this file any more)\n")
    return diffs

