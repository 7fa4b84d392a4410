"""The main job (``make demo``): prove every catalogued identity and show the textbook normal forms."""

from __future__ import annotations

import sys
import time

import symdeconv as sd


def _section(title: str) -> None:
    print()
    print(title)
    print("=" * len(title))


def identities() -> bool:
    _section(f"Catalogued identities ({len(sd.identities)}), each proved by normal form and by matrices")
    ok = True
    for ident in sd.identities.values():
        proof = ident.prove()
        ok &= proof.ok
        mark = "ok " if proof.ok else "BAD"
        print(f"[{mark}] {ident.name}")
        print(f"      {ident.statement}")
        print(f"      conditions: {ident.conditions}")
        print(f"      {proof.status}")
        print(f"      source: {ident.citation}")
    return ok


def textbook() -> None:
    q = sd.taps("q", 3)
    examples = [
        ("hold(2) then conv with q", sd.conv(q) @ sd.hold(2)),
        ("4-tap transposed conv (1 1)*q, stride 2", sd.transposed_conv(sd.convolve((1, 1), q), 2)),
        ("strided conv, stride 2", sd.strided_conv(q, 2)),
        ("dilated conv, dilation 2", sd.dilated_conv(q, 2)),
        ("↑2 ↓2 (keeps even samples: period 2)", sd.up(2) @ sd.down(2)),
        ("↓2 ↑2 (the identity)", sd.down(2) @ sd.up(2)),
        ("rational resampler ↓2 h ↑3", sd.upfirdn(sd.taps("h", 4), 3, 2)),
        ("FCN bilinear ×2 (¼ ¾ ¾ ¼), cropped by 1", sd.shift(-1) @ sd.transposed_conv(sd.bilinear_kernel(4), 2)),
    ]
    _section("Normal forms of the textbook examples")
    for title, op in examples:
        print(f"{title}:  {op!r}")
        for line in str(sd.canonical(op)).splitlines():
            print("    " + line)
    _section("Matrices (textbook checks)")
    print("up(2).matrix(2) =", sd.up(2).matrix(2).tolist())
    print("down(2).matrix(4) =", sd.down(2).matrix(4).tolist())
    print("conv(q, origin=1).matrix(4, window=(0, 4)) =", sd.conv(q, origin=1).matrix(4, window=(0, 4)).tolist())
    _section("Checkerboard analysis of transposed convolutions (all-ones kernels, n = 4)")
    for k in (3, 4):
        print(f"kernel {k}, stride 2:")
        for line in str(sd.checkerboard((1,) * k, stride=2, n=4)).splitlines():
            print("    " + line)


def main() -> int:
    start = time.perf_counter()
    ok = identities()
    textbook()
    print(f"\nall identities as catalogued: {ok}   ({time.perf_counter() - start:.2f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
