"""A configuration's cached launch of a Triton kernel: what the one-pass CUDA candidates (the quantizer's
``_fused_triton``, the dequantizer's ``_dequant_triton``) share to keep their host path short.

``kernel[grid](...)`` spends tens of microseconds of Python per call before the launch: binding ~20
arguments (most of them constexpr keywords), computing the specialization and the cache key, finding the
compiled kernel, checking globals, building launch metadata.  For one configuration of these kernels all
of that is fixed by the input's shape, strides, dtype and device and the function's scalar arguments,
except the two pointers' 16-byte alignment, which Triton specializes on.  (Its other specializations,
integer arguments equal to 1 and divisible by 16, are of integer arguments the configuration fixes.)  So
the first call of a configuration goes the normal way (every check the oracle makes, then Triton's own
launch) and keeps, per alignment of the two pointers, the ``CompiledKernel`` Triton chose; later calls
call that kernel's launcher directly, with the same arguments in the same order as ``JITFunction.run``
passes them.  A configuration that failed a check never gets a launch, so it raises on the normal path
every time.

What is verified before any launch is made (``setup_problem``; the reason is kept in ``stats["problem"]``
and every call then takes the normal path): this Triton's ``JITFunction.run`` launches with the call
convention used here (its source is read, whitespace-normalised), compiled kernels carry ``run``,
``function``, ``packed_metadata`` and ``launch_metadata``, and Triton's own per-argument specialization
(``native_specialize_impl``, what the binder calls) of a pointer depends on nothing but ``data_ptr() % 16``
(checked on real tensors of both pointer dtypes at 0..95 byte offsets, and again on the actual arguments
whenever a new alignment is first seen).  Per call a launch also honours: the current device (another
than at registration: the normal path), the current stream, ``pre_run_hooks`` on the kernel (any: the
normal path) and launch enter/exit hooks (set: the launch metadata is built and the hooks passed, as
Triton does).  Process-wide compile settings (TRITON_DEBUG, instrumentation, a stages-inspection hook) are
taken as they were at a configuration's first call.

Runs in the candidate's process (a runner), never in the judge's.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import triton

Launch = Callable[[torch.Tensor, torch.Tensor], bool]  # launch(first, second) -> False: take the normal path

_SETUP: dict = {}  # device index -> problem (str) or None
_POINTER_SPECS: dict = {}  # (device index, dtype) -> {aligned: Triton's specialization} or None
_NORMAL = object()  # a kernels[] entry: launch through Triton every time for that alignment
_LAUNCH_CALL = ("kernel.run(grid_0, grid_1, grid_2, stream, kernel.function, kernel.packed_metadata, launch_metadata, "
                "knobs.runtime.launch_enter_hook, knobs.runtime.launch_exit_hook, *bound_args.values())")
_CONVENTION = ("device = driver.active.get_current_device()", "stream = driver.active.get_current_stream(device)",
               "launch_metadata = kernel.launch_metadata(grid, stream, *bound_args.values())", _LAUNCH_CALL)


def new_stats() -> dict:
    """A kernel module's counters: launches through Triton, launches made, the last refusal."""
    return {"normal": 0, "registered": 0, "problem": None}


class Launches:
    """Configurations -> their launch (or None: that configuration always takes the normal path), bounded."""

    MAX = 4096

    def __init__(self) -> None:
        self.by_key: dict = {}

    def get(self, key: tuple) -> Any:
        return self.by_key.get(key)

    def add(self, key: tuple, make: Callable[[], Any], stats: dict) -> None:
        """Keep ``make()`` for ``key`` (None where it raises: the fast path is an optimisation, any surprise
        disables it for that configuration).  Never raises."""
        if key in self.by_key:
            return
        if len(self.by_key) >= self.MAX:
            self.by_key.clear()
        made = None
        try:
            made = make()
        except Exception as exc:  # noqa: BLE001
            stats["problem"] = f"launcher setup failed: {exc!r}"
        self.by_key[key] = made
        stats["registered"] += made is not None

    def status(self, stats: dict) -> dict:
        """For checks and benchmarks: counters, launches, and why the fast path is off if it is."""
        return dict(stats, launchers=sum(v is not None for v in self.by_key.values()),
                    configurations=len(self.by_key), triton=triton.__version__)


def setup_problem(kernel: Any, device: int, stats: dict) -> str | None:
    """Why launches cannot be cached with this Triton, or None (computed once per device)."""
    if device in _SETUP:
        problem = _SETUP[device]
    else:
        problem = None
        try:
            import inspect
            from triton.runtime.jit import JITFunction
            if not isinstance(kernel, JITFunction) or type(kernel).run is not JITFunction.run:
                problem = f"not a plain JITFunction: {type(kernel).__name__}"
            else:
                source = " ".join(inspect.getsource(JITFunction.run).split())
                missing = [line for line in _CONVENTION if line not in source]
                if missing:
                    problem = f"JITFunction.run launches differently in triton {triton.__version__}: no {missing[0]!r}"
            if problem is None and _specialize_function() is None:
                problem = "no native_specialize_impl in this Triton to check its pointer specialization with"
        except Exception as exc:  # noqa: BLE001
            problem = f"cannot inspect Triton: {exc!r}"
        _SETUP[device] = problem
    if problem:
        stats["problem"] = problem
    return problem


def _specialize_function() -> Any:
    """Triton's per-argument specialization, as its binder calls it: ``(backend, arg, is_const, specialize,
    align) -> (type, key)`` (Triton >= 3.5)."""
    found = getattr(triton.runtime.jit, "native_specialize_impl", None)
    if found is None:
        try:
            from triton._C.libtriton import native_specialize_impl as found
        except ImportError:
            return None
    return found


def _backend(kernel: Any, device: int) -> Any:
    """The backend object the kernel's binder specializes with (Triton keeps it per device)."""
    from triton.backends.compiler import BaseBackend
    return next(v for v in kernel.device_caches[device] if isinstance(v, BaseBackend))


def _pointer_specs(specialize: Any, backend: Any, dtype: torch.dtype, device: torch.device) -> dict | None:
    """Triton's specialization of a ``dtype`` pointer by 16-byte alignment, from real tensors at byte offsets
    0..95 of one allocation; None if it depends on anything else there (then no launch is made)."""
    size = torch.empty((), dtype=dtype).element_size()
    buffer = torch.empty(256, dtype=torch.uint8, device=device)
    seen: dict = {}
    for offset in range(0, 96, size):
        t = buffer[offset:offset + 64].view(dtype)
        spec = specialize(backend, t, False, True, True)
        if seen.setdefault(t.data_ptr() % 16 == 0, spec) != spec:
            return None
    return seen if len(seen) == 2 else None


def make_launch(kernel: Any, grid: tuple, first: torch.Tensor, second: torch.Tensor, runtime_args: tuple,
                constants: dict, compiled: Any, stats: dict) -> Launch | None:
    """The launch of one configuration of ``kernel`` — whose first two parameters take tensors like ``first``
    and ``second`` (same dtypes, device), the next ``runtime_args``, the rest ``constants`` — just launched
    as ``compiled = kernel[grid](first, second, *runtime_args, **constants)``; None where this Triton or
    these arguments do not allow one.  ``launch(a, b)`` launches on new tensors and returns True, or returns
    False (launching nothing) where the normal path must run: a pre-run hook, another current device."""
    device = triton.runtime.driver.active.get_current_device()
    if device != first.get_device() or setup_problem(kernel, device, stats):
        return None
    if compiled is None or getattr(compiled, "function", None) is None:
        return None
    if any(not hasattr(compiled, attr) for attr in ("run", "packed_metadata", "launch_metadata")):
        return None
    specialize = _specialize_function()
    backend = _backend(kernel, device)
    specs = []
    for dtype in (first.dtype, second.dtype):
        if (device, dtype) not in _POINTER_SPECS:
            _POINTER_SPECS[(device, dtype)] = _pointer_specs(specialize, backend, dtype, first.device)
        specs.append(_POINTER_SPECS[(device, dtype)])
    first_specs, second_specs = specs
    if first_specs is None or second_specs is None:
        stats["problem"] = "Triton specializes pointers on more than their 16-byte alignment"
        return None

    # Every argument of Triton's launch but the two pointers, fixed for this configuration.
    names = list(kernel.arg_names)  # the kernel's parameters in order; constants may also hold options
    runtime_names = names[2:2 + len(runtime_args)]
    if (any(name in constants for name in runtime_names)
            or sorted(names[2 + len(runtime_args):]) != sorted(k for k in constants if k in names)):
        return None
    values = dict(zip(runtime_names, runtime_args), **{k: v for k, v in constants.items() if k in names})
    rest = tuple(values[name] for name in names[2:])  # bound_args.values() after the two pointers
    grid_0, grid_1, grid_2 = (tuple(grid) + (1, 1))[:3]
    get_device = triton.runtime.driver.active.get_current_device
    if get_device is torch.cuda.current_device and hasattr(torch._C, "_cuda_getDevice"):
        get_device = torch._C._cuda_getDevice  # the same, without the lazy-init check
    get_stream = triton.runtime.driver.active.get_current_stream
    runtime = triton.knobs.runtime
    try:
        from triton.knobs import HookChain
    except ImportError:
        HookChain = None
    pre_run_hooks = getattr(kernel, "pre_run_hooks", ())  # the live list: hooks added later are seen
    normal = _NORMAL

    def entry(compiled: Any, a: torch.Tensor, b: torch.Tensor) -> Any:
        """What a later call with this alignment launches: (run, function, packed metadata, kernel), or _NORMAL
        where Triton's specialization of these pointers is not the one the alignment predicts."""
        if compiled is None or getattr(compiled, "function", None) is None:
            return _NORMAL
        if (specialize(backend, a, False, True, True) != first_specs[a.data_ptr() % 16 == 0]
                or specialize(backend, b, False, True, True) != second_specs[b.data_ptr() % 16 == 0]):
            return _NORMAL
        return compiled.run, compiled.function, compiled.packed_metadata, compiled

    kernels = [None, None, None, None]  # by alignment: 2 * (first 16-byte aligned) + (second 16-byte aligned)
    kernels[2 * (first.data_ptr() % 16 == 0) + (second.data_ptr() % 16 == 0)] = entry(compiled, first, second)

    def launch(a: torch.Tensor, b: torch.Tensor) -> bool:
        if pre_run_hooks or get_device() != device:
            return False
        alignment = 2 * (a.data_ptr() % 16 == 0) + (b.data_ptr() % 16 == 0)
        known = kernels[alignment]
        if known is None or known is normal:  # Triton's own launch (and, the first time, keep its kernel)
            compiled = kernel[grid](a, b, *runtime_args, **constants)
            stats["normal"] += 1
            if known is None:
                kernels[alignment] = entry(compiled, a, b)
            return True
        run, function, packed, compiled = known
        enter, leave = runtime.launch_enter_hook, runtime.launch_exit_hook
        stream = get_stream(device)
        if ((enter is None or enter.__class__ is HookChain and not enter.calls)
                and (leave is None or leave.__class__ is HookChain and not leave.calls)):
            run(grid_0, grid_1, grid_2, stream, function, packed, None, None, None, a, b, *rest)
        else:  # as JITFunction.run: metadata for the hooks, the hooks themselves
            metadata = compiled.launch_metadata(grid, stream, a, b, *rest)
            run(grid_0, grid_1, grid_2, stream, function, packed, metadata, enter, leave, a, b, *rest)
        return True

    return launch
