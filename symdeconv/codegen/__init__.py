"""Layer 3: kernels emitted from the polyphase normal form (Numba CPU and CUDA), cached on disk.

``sd.emit(obj, target)`` returns a kernel module's source, ``sd.compile(obj, target)`` a callable.
Nothing here imports Numba until a kernel is compiled.
"""

from ._alloc import empty_output_pool
from .api import CompiledChain, CompiledLayer, LayerBinding, compile, emit, is_layer, plan
from .cache import cache_dir
from .plan import KernelPlan, plan_chain

__all__ = [
    "emit", "compile", "plan", "CompiledChain", "CompiledLayer", "LayerBinding", "KernelPlan", "plan_chain",
    "cache_dir", "is_layer", "empty_output_pool",
]
