"""The typed plan of a layer kernel, and the one place that chooses how a call is computed.

A layer's normal form says, per output phase ``p`` and channel pair ``(c', c)`` of a group,

    y[c', P j + p] = Σ_t w[s_t, c, c'] · x[c, Q j + off_t]

with the same tap offsets ``off_t`` for every channel pair.  :class:`LayerPlan` is exactly that
statement as frozen data — the periods and, per phase, the tap offsets (weight slots are numbered
phase by phase, in order) — plus what follows from it: each tap's *input plane* ``r = off mod Q`` and
*block shift* ``floor(off / Q) − e_min ≥ 0``.  A generated layer module writes its plan out as a
``LayerPlan(...)`` literal; the runtime (:mod:`symdeconv.codegen.rt_layers`) reads its tables.

:func:`choose_strategy` picks the path of a call from the plan, the channel counts and the machine,
and says why.  Paths:

* ``"gemm"`` — the register-tiled GEMM-like runtime kernel (every plan has it);
* ``"stencil"`` — one input and one output channel per group (1 → 1, depthwise): ``x`` read in place,
  every tap's weight in a register (a specialised kernel emitted with the module);
* ``"winograd"`` — 3-D layers whose phases pair their taps along every leading dimension,
  with enough input channels per group (a specialised kernel emitted with the module).

This module imports neither SymPy nor Numba: generated modules import it.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from .machine import CO_BLOCK, Machine, host_machine

__all__ = ["Phase", "LayerPlan", "WinoTables", "Strategy", "choose_strategy", "STENCIL_MAX_TAPS", "WINO_MIN_CIN", "PATHS"]

Index = tuple[int, ...]

PATHS = ("gemm", "stencil", "winograd")

#: above this many taps (all phases together) a module carries no stencil path: its source would be
#: long and slow to compile, and with that many taps per output the GEMM-like kernel is as fast
STENCIL_MAX_TAPS = 256

#: input channels per group from which the Winograd path is taken: below 16 its transforms cost more
#: than the products they save (8 channels measured ~30 % slower than the direct kernel)
WINO_MIN_CIN = 16


@dataclass(frozen=True)
class Phase:
    """One output phase ``p`` and the offsets of its taps (its weight slots are consecutive)."""

    phase: Index
    offsets: tuple[Index, ...]


@dataclass(frozen=True)
class LayerPlan:
    """A grouped kernel plan: periods, phases with their tap offsets, and the emitted special paths.

    ``paths`` lists the paths the module carries (``"gemm"`` always; ``"stencil"`` and ``"winograd"``
    when they were emitted for this plan's structure).
    """

    P: Index
    Q: Index
    phases: tuple[Phase, ...]
    paths: tuple[str, ...] = ("gemm",)
    _tables: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if len(self.P) != len(self.Q) or not self.P:
            raise ValueError("LayerPlan: P and Q need one entry per spatial dimension")
        expected = list(itertools.product(*(range(v) for v in self.P)))
        if [ph.phase for ph in self.phases] != expected:
            raise ValueError("LayerPlan: phases must list every output phase once, in C order")
        if any(len(off) != len(self.P) for ph in self.phases for off in ph.offsets):
            raise ValueError("LayerPlan: every tap offset needs one entry per spatial dimension")
        if "gemm" not in self.paths or any(p not in PATHS for p in self.paths):
            raise ValueError(f"LayerPlan: paths must include 'gemm' and be among {PATHS}")

    def __hash__(self) -> int:  # computed once: choose_strategy is looked up on every call
        h = self._tables.get("hash")
        if h is None:
            h = self._tables["hash"] = hash((self.P, self.Q, self.phases, self.paths))
        return h

    # --- derived data -----------------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.P)

    @property
    def n_slots(self) -> int:
        return sum(len(ph.offsets) for ph in self.phases)

    @property
    def n_planes(self) -> int:
        return math.prod(self.Q)

    @property
    def n_phases(self) -> int:
        return len(self.phases)

    @property
    def max_taps(self) -> int:
        return max((len(ph.offsets) for ph in self.phases), default=0)

    def _block(self) -> tuple[list[list[int]], list[list[int]]]:
        offs = [off for ph in self.phases for off in ph.offsets]
        e = [[o[d] // self.Q[d] for o in offs] for d in range(self.ndim)]
        r = [[o[d] % self.Q[d] for o in offs] for d in range(self.ndim)]
        return e, r

    @functools.cached_property
    def e_min(self) -> Index:
        """Smallest block offset ``floor(off / Q)`` of any tap, per dimension."""
        e, _ = self._block()
        return tuple(min(v) if v else 0 for v in e)

    @functools.cached_property
    def e_span(self) -> Index:
        """Largest minus smallest block offset, per dimension: how far past a block the taps reach."""
        e, _ = self._block()
        return tuple((max(v) - min(v)) if v else 0 for v in e)

    def tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(phase_taps, slot_plane, slot_shift)`` as int64 arrays (computed once).

        Phase ``k``'s slots are ``phase_taps[k] … phase_taps[k + 1] − 1``; slot ``s`` reads input plane
        ``slot_plane[s]`` (flat index of ``off mod Q``, C order) at block shift ``slot_shift[s, d]``.
        """
        if "phase_taps" not in self._tables:
            e, r = self._block()
            e_min = self.e_min
            n = self.n_slots
            plane = np.zeros(n, dtype=np.int64)
            shift = np.zeros((n, self.ndim), dtype=np.int64)
            for s in range(n):
                flat = 0
                for d in range(self.ndim):
                    flat = flat * self.Q[d] + r[d][s]
                    shift[s, d] = e[d][s] - e_min[d]
                plane[s] = flat
            taps = np.cumsum([0] + [len(ph.offsets) for ph in self.phases]).astype(np.int64)
            self._tables.update(phase_taps=taps, slot_plane=plane, slot_shift=shift)
        t = self._tables
        return t["phase_taps"], t["slot_plane"], t["slot_shift"]

    def blocks(self, out: Index, lo: Index) -> tuple[list[int], list[int], list[int]]:
        """``(jlo, jhi, length)`` per dimension for an output of ``out`` samples from position ``lo``.

        Block ``j`` is needed when some phase's output ``P j + p − lo`` lies in ``[0, out)``:
        ``jlo ≤ j < jhi``; the input planes then need ``length = jhi − jlo + e_span`` positions.
        """
        jlo, jhi, length = [], [], []
        for d in range(self.ndim):
            P = self.P[d]
            jlo.append(min(-((p - lo[d]) // P) for p in range(P)))
            jhi.append(max(-((p - lo[d] - out[d]) // P) for p in range(P)))
            length.append(jhi[d] - jlo[d] + self.e_span[d])
        return jlo, jhi, length

    def wino_tables(self) -> "WinoTables | None":
        """The tables of the Winograd F(3, 2) path (:mod:`symdeconv.codegen.rt_wino`), or ``None`` when the
        plan lacks its structure: three dimensions, no input phases, and in every phase two taps at
        consecutive block shifts along each leading dimension, every combination of them with one set of
        last-dimension taps (the same number in every phase)."""
        if "wino" not in self._tables:
            self._tables["wino"] = self._wino_tables()
        return self._tables["wino"]

    def _wino_tables(self) -> "WinoTables | None":
        if self.ndim != 3 or any(q != 1 for q in self.Q) or not all(ph.offsets for ph in self.phases):
            return None
        phase_taps, _, shift = self.tables()
        shift0: list[dict[int, int]] = [{}, {}]
        slots, xshift, nx = [], [], None
        for k, ph in enumerate(self.phases):
            mine = {s: tuple(int(v) for v in shift[s]) for s in range(phase_taps[k], phase_taps[k + 1])}
            first = []
            for d in range(2):
                values = sorted({sh[d] for sh in mine.values()})
                if len(values) != 2 or values[1] != values[0] + 1:
                    return None
                if shift0[d].setdefault(ph.phase[d], values[0]) != values[0]:
                    return None
                first.append(values[0])
            xs = sorted({sh[2] for sh in mine.values()})
            nx = len(xs) if nx is None else nx
            if len(xs) != nx or len(mine) != 4 * nx:
                return None
            table = {(sh[0] - first[0], sh[1] - first[1], sh[2]): s for s, sh in mine.items()}
            if len(table) != len(mine):  # distinct keys, as many as combinations: every combination present
                return None
            slots.append([[table[(a0, a1, v)] for v in xs] for a0 in (0, 1) for a1 in (0, 1)])
            xshift.append(xs)
        return WinoTables(
            shift=tuple(tuple(shift0[d][p] for p in range(self.P[d])) for d in range(2)),
            slots=np.array(slots, dtype=np.int64), xshift=np.array(xshift, dtype=np.int64), nx=nx)

    @classmethod
    def from_kernel_plan(cls, plan, paths: tuple[str, ...] = ("gemm",)) -> "LayerPlan":
        """The typed plan of a grouped :class:`symdeconv.codegen.plan.KernelPlan` (slots in order)."""
        phases = []
        s = 0
        for ph in plan.phases:
            for slot, _ in ph.slots:
                if slot != s:
                    raise ValueError("LayerPlan: a grouped plan numbers its slots phase by phase, in order")
                s += 1
            phases.append(Phase(tuple(ph.phase), tuple(tuple(off) for _, off in ph.slots)))
        return cls(tuple(plan.P), tuple(plan.Q), tuple(phases), tuple(paths))


@dataclass(frozen=True, eq=False)
class WinoTables:
    """What the Winograd path reads of a plan: ``shift[d][p]``, the block shift of the first tap of phase
    component ``p`` along leading dimension ``d``; ``slots[k, a, t]``, the weight slot of leading tap
    combination ``a`` (C order over (0, 1)²) and last-dimension tap ``t`` of phase ``k``; ``xshift[k, t]``,
    that tap's block shift along the last dimension; ``nx``, the last-dimension taps of a phase."""

    shift: tuple[Index, Index]
    slots: np.ndarray
    xshift: np.ndarray
    nx: int


@dataclass(frozen=True)
class Strategy:
    """The path a call takes, and why (one reason per rule that decided it)."""

    path: str
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.path}: " + "; ".join(self.reasons)


@functools.lru_cache(maxsize=1024)
def choose_strategy(plan: LayerPlan, cin_g: int, cout_g: int, machine: Machine | None = None) -> Strategy:
    """The path of a call with ``cin_g`` input and ``cout_g`` output channels per group.

    The rules, in order:

    1. one input and one output channel per group, and the module has a stencil → ``"stencil"``: there
       is no channel sum to tile, and the stencil keeps every tap's weight in a register and reads
       ``x`` in place (no plane copy).  It is compiled for the layer, so ``rt_driver.run_stencil`` runs a
       module's first ``RUNTIME_CALLS`` calls on the GEMM-like kernel and the stencil from then on;
    2. the module has a Winograd path (3-D, taps paired along the leading dimensions), at least
       ``WINO_MIN_CIN`` input channels per group and whole ``CO_BLOCK`` tiles of output channels →
       ``"winograd"``: F(3, 2) needs 16 instead of 36 products per nine outputs of a 2 × 2 leading
       window, which pays once the channel sum is long enough to amortise the transforms;
    3. otherwise → ``"gemm"``: the register-tiled runtime kernel, whose ``CO_BLOCK × TILE`` tile is
       sized from the machine's vector registers.
    """
    machine = machine or host_machine()
    tile = f"{CO_BLOCK}-channel tiles of {machine.vector_bits}-bit vectors ({machine.isa})"
    if cin_g == 1 and cout_g == 1:
        if "stencil" in plan.paths:
            return Strategy("stencil", ("one input and one output channel per group: no channel sum to tile",))
        return Strategy("gemm", (f"one channel per group, but {plan.n_slots} taps: no stencil path", tile))
    if "winograd" in plan.paths:
        if cin_g >= WINO_MIN_CIN and cout_g % CO_BLOCK == 0:
            return Strategy("winograd", (
                f"{plan.ndim}-D taps paired along the leading dimensions",
                f"{cin_g} ≥ {WINO_MIN_CIN} input channels per group amortise the transforms",
            ))
        why = (f"{cin_g} < {WINO_MIN_CIN} input channels per group" if cin_g < WINO_MIN_CIN
               else f"{cout_g} output channels per group are not whole {CO_BLOCK}-channel tiles")
        return Strategy("gemm", (f"Winograd path not taken: {why}", tile))
    return Strategy("gemm", (tile,))
