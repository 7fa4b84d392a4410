"""The on-disk kernel cache: emitted modules as real files, keyed by a hash of their plan.

Numba's ``cache=True`` stores compiled machine code next to the *source file* of the function (in its
``__pycache__``), keyed by that file's path and modification time.  Emitted kernels therefore live in
real files: ``<cache dir>/<target>/<name>_<hash>.py``, where the hash covers the plan, the target and
the emitter version (:meth:`symdeconv.codegen.plan.KernelPlan.key`), so the same kernel structure always
maps to the same file and a second process loads the compiled kernel from Numba's cache.

Writes are atomic: the source goes to a temporary file in the same folder, then :func:`os.replace`
moves it into place.  Two processes emitting the same kernel at once write identical text, and a
reader can never see a half-written file.  An existing file with the right content is left untouched
(rewriting it would change its mtime and invalidate Numba's cache).

The folder is ``$SYMDECONV_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/symdeconv`` (default
``~/.cache/symdeconv``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import threading
from pathlib import Path
from types import ModuleType

from ..errors import SymdeconvError

__all__ = ["cache_dir", "write_atomic", "kernel_path", "store", "load_module"]

_lock = threading.Lock()
_modules: dict[str, ModuleType] = {}


def cache_dir() -> Path:
    """The kernel cache folder (created on demand); honours ``SYMDECONV_CACHE_DIR``."""
    env = os.environ.get("SYMDECONV_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "symdeconv"


def write_atomic(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` atomically; return False (and touch nothing) if it is already there."""
    path = Path(path)
    try:
        if path.read_text() == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return True


def kernel_path(name: str, key: str, target: str, root: Path | None = None) -> Path:
    return (root or cache_dir()) / target / f"{name}_{key}.py"


def store(source: str, name: str, key: str, target: str) -> Path:
    """Put an emitted module into the cache (atomically) and return its path."""
    path = kernel_path(name, key, target)
    try:
        write_atomic(path, source)
    except OSError as err:
        raise SymdeconvError(
            f"cannot write the kernel cache at {path.parent} ({err.strerror}); set SYMDECONV_CACHE_DIR to a "
            "writable folder"
        ) from err
    return path


def load_module(path: Path, module_name: str | None = None) -> ModuleType:
    """Import a Python file by path (once per process), registered in ``sys.modules``.

    Registering the module matters: Numba's cache locates a function through its module's file.
    """
    path = Path(path).resolve()
    name = module_name or f"symdeconv_kernel_{path.parent.name}_{path.stem}"
    with _lock:
        cached = _modules.get(str(path))
        if cached is not None:
            return cached
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:  # pragma: no cover - a .py path always has a loader
            raise SymdeconvError(f"cannot import the kernel module {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        _modules[str(path)] = module
        return module
