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


def layers() -> None:
    """The common deep-learning upsampling layers: normal forms, checkerboard check, framework conversions."""
    _section("Deep-learning layers: polyphase normal forms (PyTorch conventions, 1-D)")
    common = [
        ("ConvTranspose 4/2/1", sd.ConvTranspose(4, stride=2, padding=1)),
        ("ConvTranspose 3/2/1, output_padding=1", sd.ConvTranspose(3, stride=2, padding=1, output_padding=1)),
        ("ConvTranspose 2/2/0", sd.ConvTranspose(2, stride=2, padding=0)),
        ("Conv 3/2/1 (its transpose is ConvTranspose 3/2/1)", sd.Conv(3, stride=2, padding=1)),
    ]
    for title, layer in common:
        ones = sd.checkerboard(layer, weight=[[[1] * layer.kernel_size[0]]]) if layer.transposed else None
        print(f"{title}:  {layer.operator!r}")
        for line in str(sd.canonical(layer)).splitlines():
            print("    " + line)
        if ones is not None:
            print(f"    checkerboard: structural {ones.structural_verdict}; "
                  f"weights {sd.checkerboard(layer).weight_verdict}")
            print(f"    all-ones weights: phase gains {ones.gains} -> "
                  f"{'constant output' if ones.constant_preserving else 'checkerboard'}")
    fcn = sd.ConvTranspose(4, stride=2, padding=1).operator_with([[sd.bilinear_kernel(4)]])
    print("FCN bilinear x2 (4/2/1 with weights 1/4 3/4 3/4 1/4):")
    for line in str(sd.canonical(fcn)).splitlines():
        print("    " + line)
    print(f"    equals half-pixel linear interpolation: {bool(sd.equivalent(fcn, sd.linear_interp(2)))}")
    _section("Framework conversions (2-D layers)")
    for title, layer in [
        ("ConvTranspose 4/2/1", sd.ConvTranspose(4, stride=2, padding=1, ndim=2)),
        ("ConvTranspose 3/2/1, output_padding=1", sd.ConvTranspose(3, stride=2, padding=1, output_padding=1, ndim=2)),
        ("ConvTranspose 2/2/0", sd.ConvTranspose(2, stride=2, padding=0, ndim=2)),
        ("TF conv2d_transpose 3x3 SAME, output 4x4", sd.ConvTranspose(3, stride=2, padding="SAME", convention="tf",
                                                                      output_shape=(4, 4))),
    ]:
        print(f"{title}:  {layer.framework_call((4, 4) if layer.convention == 'torch' else (2, 2))}")
        for to in ("torch", "tf", "jax"):
            if to == layer.convention:
                continue
            try:
                result = sd.convert(layer, to=to, input_shape=(4, 4) if layer.convention == "torch" else None)
                scope = "" if result.input_shape is None else f"  [input {result.input_shape}]"
                print(f"    {to:5s} {result.layer.framework_call(result.input_shape or (4, 4))}{scope}")
                print(f"          weights: {result.weight}")
            except sd.SymdeconvError as err:
                print(f"    {to:5s} no exact equivalent: {str(err).split(': ', 2)[-1]}")


def kernels() -> bool:
    """Write the kernel catalogue (generated/) and verify every kernel against its symbolic form."""
    import os

    if "numba" not in sys.modules:
        os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")  # CUDA kernels in the simulator unless a GPU is used
    from symdeconv.codegen import catalogue
    from symdeconv.verify.catalogue import report, shorten_gil_switches, verify_catalogue

    shorten_gil_switches()

    _section("Generated kernels: the catalogue in generated/ (symdeconv generate)")
    changed = catalogue.write()
    print(f"{catalogue.default_root()}: {len(changed)} file(s) rewritten, {len(catalogue.render())} in the catalogue")
    _section("Every generated kernel against its symbolic matrix (symdeconv verify)")
    sim = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    print("CUDA kernels run " + ("in Numba's CUDA simulator" if sim else "on the GPU"))
    results = verify_catalogue(progress=lambda line: print("  " + line, flush=True))
    print(report(results))
    return all(r.ok for r in results)


def main() -> int:
    start = time.perf_counter()
    ok = identities()
    textbook()
    layers()
    ok &= kernels()
    print(f"\nall identities as catalogued: {ok}   ({time.perf_counter() - start:.2f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
