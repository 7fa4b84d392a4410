"""The target machine of the CPU kernels: vector width and register count, read at run time.

Register tiles of the layer kernels are derived from these two numbers, not measured constants of one
machine: an AVX-512 core has 32 vector registers of 512 bits, an AVX2 core 16 of 256.  The machine is
read the way Numba's JIT target reads it, because that is what the compiled code targets: the CPU name
is ``NUMBA_CPU_NAME`` (else the host's), and the features are ``NUMBA_CPU_FEATURES`` added to that CPU's
own when set, else **the host's** — Numba passes the host's features even when ``NUMBA_CPU_NAME`` names
another CPU, so on an AVX-512 host ``NUMBA_CPU_NAME=haswell`` alone still allows AVX-512 instructions.
AVX2 code on such a host takes ``NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=+avx2,+fma``.

Importing this module does not import Numba (llvmlite only, on first use).
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass

from ._env import whole_number

__all__ = ["Machine", "host_machine", "machine_from", "tile_columns", "l2_bytes", "stream_min_bytes", "asm_tiles",
           "asm_parser", "STREAM_MIN_BYTES", "CO_BLOCK"]

#: output channels per register tile of the GEMM-like micro-kernel (its rows): four weights broadcast per
#: input vector; 4 divides the channel counts of nearly every real layer, so few channels take the
#: one-channel pass.
CO_BLOCK = 4

# CPU names (LLVM's) whose every member has AVX-512F; used only when NUMBA_CPU_NAME names the CPU and
# NUMBA_CPU_FEATURES does not list the features
_AVX512_NAMES = (
    "skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "icelake-client", "icelake-server",
    "tigerlake", "sapphirerapids", "emeraldrapids", "graniterapids", "graniterapids-d", "rocketlake",
    "znver4", "znver5", "x86-64-v4", "knl", "knm", "diamondrapids",
)
_AVX2_NAMES = (
    "haswell", "broadwell", "skylake", "alderlake", "raptorlake", "meteorlake", "arrowlake", "arrowlake-s",
    "lunarlake", "gracemont", "znver1", "znver2", "znver3", "x86-64-v3", "bdver4", "sierraforest",
    "grandridge", "clearwaterforest", "pantherlake",
)


@dataclass(frozen=True)
class Machine:
    """What the register tiles are derived from.

    ``vector_bits``: width of a SIMD register the compiled code uses (512, 256 or 128);
    ``registers``: vector registers the ISA names (32 with AVX-512, 16 with AVX / SSE on x86-64, 32 on
    AArch64); ``isa``: a short name for headers and cache keys; ``cpu``: the CPU name Numba compiles for.
    """

    cpu: str
    isa: str
    vector_bits: int
    registers: int
    fma: bool

    def lanes(self, itemsize: int) -> int:
        """Elements of ``itemsize`` bytes in one vector register."""
        return max(1, self.vector_bits // (8 * itemsize))

    @property
    def key(self) -> str:
        """The part of a kernel's cache key that depends on the machine."""
        return f"{self.isa}-{self.vector_bits}x{self.registers}"


def tile_columns(machine: Machine, itemsize: int) -> int:
    """Columns of the micro-kernel's ``CO_BLOCK × columns`` register tile for one dtype.

    Per tap and input channel the micro-kernel loads ``columns / lanes`` input vectors and broadcasts
    ``CO_BLOCK`` weights, then does ``CO_BLOCK · columns / lanes`` fused multiply-adds into the
    accumulators.  The accumulators take at most half the registers (at most 16): the rest hold the
    loaded input vectors and broadcast weights, so nothing spills.  16 of 32 AVX-512 registers: a
    4 × 64 float32 tile; 12 of 16 AVX2 registers would leave too few for loads and broadcasts, so 8: 4 × 16.
    """
    lanes = machine.lanes(itemsize)
    acc_vectors = min(16, machine.registers // 2)
    return max(1, acc_vectors // CO_BLOCK) * lanes


def _flag_features(flat: str) -> set[str]:
    return {f[1:] for f in flat.split(",") if f.startswith("+")}


def machine_from(cpu: str, features: set[str], arch: str | None = None) -> Machine:
    """The :class:`Machine` of a CPU name and its feature set (``{"avx2", "fma", "avx512f", …}``)."""
    arch = (arch or platform.machine()).lower()
    if arch in ("aarch64", "arm64"):
        return Machine(cpu, "neon", 128, 32, True)
    if arch not in ("x86_64", "amd64"):
        return Machine(cpu, "generic", 128, 16, False)
    fma = "fma" in features
    if "avx512f" in features:
        return Machine(cpu, "avx512", 512, 32, True)
    if "avx2" in features:
        return Machine(cpu, "avx2", 256, 16, fma)
    if "avx" in features:
        return Machine(cpu, "avx", 256, 16, fma)
    return Machine(cpu, "sse", 128, 16, False)


def _named_features(cpu: str) -> set[str]:
    if cpu in _AVX512_NAMES:
        return {"avx512f", "avx2", "avx", "fma"}
    if cpu in _AVX2_NAMES:
        return {"avx2", "avx", "fma"}
    return set()


@functools.lru_cache(maxsize=None)
def numba_target(cpu_env: str, features_env: str) -> tuple[str, str]:
    """The CPU name and LLVM feature string Numba's JIT compiles for, given ``NUMBA_CPU_NAME`` and
    ``NUMBA_CPU_FEATURES`` (empty: unset): those when set, else the host's — the host's features even when
    only the CPU name is set, as Numba passes them."""
    import llvmlite.binding as llvm

    cpu = cpu_env if cpu_env and cpu_env != "host" else llvm.get_host_cpu_name()
    return cpu, features_env or llvm.get_host_cpu_features().flatten()


@functools.lru_cache(maxsize=None)
def _machine(cpu_env: str, features_env: str) -> Machine:
    cpu, flat = numba_target(cpu_env, features_env)
    features = _flag_features(flat)
    if features_env:  # LLVM adds the named CPU's own features to an explicit feature string
        features |= _named_features(cpu)
        features -= {f[1:] for f in features_env.split(",") if f.startswith("-")}
    return machine_from(cpu, features)


def host_machine() -> Machine:
    """The machine Numba compiles for in this process (honours ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES``)."""
    return _machine(os.environ.get("NUMBA_CPU_NAME", ""), os.environ.get("NUMBA_CPU_FEATURES", ""))


#: the L2 size assumed where the system does not tell it (bytes)
L2_DEFAULT = 1 << 20

#: outputs of at least this many bytes have their rows of whole lines written with streaming stores
STREAM_MIN_BYTES = 4 << 20


@functools.lru_cache(maxsize=None)
def _cache_sizes() -> dict[int, int]:
    """CPU 0's data or unified caches by level, in bytes (Linux sysfs; empty where it cannot be read)."""
    root = "/sys/devices/system/cpu/cpu0/cache"
    sizes: dict[int, int] = {}
    try:
        for entry in sorted(os.listdir(root)):
            if not entry.startswith("index"):
                continue
            with open(f"{root}/{entry}/level", encoding="ascii") as f:
                level = int(f.read().strip())
            with open(f"{root}/{entry}/type", encoding="ascii") as f:
                kind = f.read().strip()
            if kind in ("Unified", "Data"):
                with open(f"{root}/{entry}/size", encoding="ascii") as f:
                    size = f.read().strip()
                scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1:], 1)
                sizes[level] = int(size.rstrip("KMG")) * scale
    except (OSError, ValueError):
        return {}
    return sizes


def l2_bytes() -> int:
    """One core's L2 cache in bytes (Linux sysfs: the level-2 data or unified cache of CPU 0), else
    ``L2_DEFAULT``.  It sizes blocks of work, not compiled code, so it is not part of :class:`Machine`."""
    return _cache_sizes().get(2, L2_DEFAULT)


@functools.lru_cache(maxsize=None)
def asm_parser() -> bool:
    """Can LLVM turn inline assembly into machine code here?  (Initialises the target's assembly parser,
    which it needs for that: :mod:`.rt_asm` calls this on import.)"""
    try:
        import llvmlite.binding as llvm

        llvm.initialize_native_asmparser()
    except (ImportError, RuntimeError, OSError):
        return False
    return True


def asm_tiles() -> bool:
    """Do the GEMM-like layer path and the Winograd path's products run the assembly micro-kernels (:mod:`.rt_asm`)?

    On x86-64 CPUs compiled for as AVX2 with FMA (16 vector registers), where it is faster than the Numba
    micro-kernel (``benchmarks/README.md``); not on AVX-512, whose 32 registers hold the Numba kernel's
    wider tile.  ``SYMDECONV_ASM_TILES=0`` turns it off, ``=1`` on wherever the CPU has AVX2 and FMA (the
    tests run it so on AVX-512 machines too).  Read when a call's geometry is first worked out (once per
    compiled layer and shapes).
    """
    m = host_machine()
    capable = (platform.machine().lower() in ("x86_64", "amd64") and m.isa in ("avx2", "avx512") and m.fma
               and asm_parser())
    forced = os.environ.get("SYMDECONV_ASM_TILES") or None
    if forced not in (None, "0", "1"):
        from ..errors import SymdeconvError

        raise SymdeconvError(f"SYMDECONV_ASM_TILES must be 0 or 1, got {forced!r}")
    if forced == "0":
        return False
    return capable and (forced == "1" or m.isa == "avx2")


def stream_min_bytes() -> int:
    """Outputs of at least this many bytes have their rows of whole lines written with non-temporal stores:
    ``SYMDECONV_STREAM_MIN_BYTES`` when set (and not empty), else ``STREAM_MIN_BYTES``.

    Streaming stores skip reading each line before it is written and do not evict the caller's data;
    ordinary stores leave the output in the cache, which pays only while nothing else runs between
    calls.  A fraction of the last-level cache is no threshold, since the other layers of a network use
    it between calls (measured in ``benchmarks/README.md``).
    """
    return whole_number("SYMDECONV_STREAM_MIN_BYTES", STREAM_MIN_BYTES, "bytes", "0 or more")
