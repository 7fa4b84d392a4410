"""CPU emitter: a kernel plan → Python source of ``numba.njit(parallel=True, cache=True)`` kernels.

Every kernel is a polyphase *gather* generated from the normal form: each output element is written by
exactly one iteration (no scatter, no atomics: deterministic) and no multiplication is by an inserted
zero.  Two plan kinds, two specialised emitters, one generator:

- chain plans (explicit taps: resamplers, hold∘conv, bilinear upsamplers) →
  :mod:`symdeconv.codegen.emit_cpu_chain` — interior blocks with all phases fused and no bounds tests
  on non-negative constant-stride slice views, border blocks with per-tap bounds flags;
- grouped plans (deep-learning layers: channels and groups at run time) →
  :mod:`symdeconv.codegen.emit_cpu_layers` — the plan as a ``LayerPlan`` literal and a driver over the
  once-compiled runtime (:mod:`symdeconv.codegen.rt_layers`: the GEMM-like kernel;
  :mod:`symdeconv.codegen.rt_wino`: the Winograd F(3, 2) path of 3-D layers with paired taps); 1-D and
  2-D groups with one input and one output channel (1 → 1, depthwise) take the emitted *stencil* of
  :mod:`symdeconv.codegen.emit_cpu_stencil` (chosen at run time): ``x`` read in place, no padding copy.
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
