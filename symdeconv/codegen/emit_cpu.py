"""CPU emitter: a kernel plan → Python source of ``numba.njit(parallel=True, cache=True)`` kernels.

Every kernel is a polyphase *gather* generated from the normal form: each output element is written by
exactly one iteration (no scatter, no atomics: deterministic) and no multiplication is by an inserted
zero.  Two plan kinds, two specialised emitters, one generator:

- chain plans (explicit taps: resamplers, hold∘conv, bilinear upsamplers) →
  :mod:`symdeconv.codegen.emit_cpu_chain` — interior blocks with all phases fused and no bounds tests
  on non-negative constant-stride slice views, border blocks with per-tap bounds flags;
- grouped plans (deep-learning layers: channels and groups at run time) →
  :mod:`symdeconv.codegen.emit_cpu_layers` — zero-padded flattened phase planes in a reusable scratch
  buffer, output-channel blocking chosen from the plan's taps per phase, fused multiply-add rows;
  groups with one input and one output channel (1 → 1, depthwise) take the *stencil* path of
  :mod:`symdeconv.codegen.emit_cpu_stencil` instead (chosen at run time): ``x`` read in place,
  interior / border blocks as in the chain kernels, no padding copy; 3-D layers whose phases have two
  consecutive taps along each leading dimension (k4 s2, k6 s3 transposed convolutions, …) also get the
  Winograd F(3, 2) path of :mod:`symdeconv.codegen.emit_cpu_wino` (taken at run time from 16 input
  channels per group): 16 products instead of 36 per nine outputs of a phase's leading window.
"""

from __future__ import annotations

from .emit_cpu_chain import emit_cpu_chain
from .emit_cpu_layers import emit_cpu_layers
from .plan import KernelPlan

__all__ = ["emit_cpu"]


def emit_cpu(plan: KernelPlan, title: str | None = None) -> str:
    """The complete source of the CPU kernel module of ``plan`` (deterministic: same plan, same text)."""
    if plan.kind == "chain":
        return emit_cpu_chain(plan, title)
    return emit_cpu_layers(plan, title)
