"""One place that sizes every thread pool (numpy's and scipy's BLAS, OpenMP, torch) and picks the device.

numpy and scipy each bring their own OpenBLAS pool and torch its own OpenMP pool; left alone, each
starts one thread per core, and their idle threads spin. Beside another busy process (Slicer, a
shared server) the threads then wait for each other on a core they do not get, and a 1 s Fréchet
distance takes a minute. :func:`set_threads` gives all pools the same size at once (threadpoolctl
for the libraries already loaded, the environment for those loaded later, ``torch.set_num_threads``)
and :func:`prepare_environment` asks OpenMP to sleep rather than spin while idle. The default,
:func:`auto_threads`, is the number of cores not busy with other runnable processes right now.

Metric values must not depend on that number: OpenBLAS picks other kernels for other thread counts
(on AVX-512 machines a single-threaded small-matrix path), so a Fréchet distance differs in its
last digits between 1 and 2 threads, between a loaded and an idle machine, and between a Dask worker
and the main process. :func:`metric_blas` therefore runs metric arithmetic on one BLAS and one torch thread, and torch's MKL runs in its
strict reproducibility mode (``MKL_CBWR=AUTO,STRICT``, set when the package is imported), so encoder
features carry the same bits at any thread count.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager

from .errors import ParameterError

MAX_THREADS = 512
_POOL_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
_default_device: str | None = None
_limits = None  # the threadpoolctl limiter kept alive (its limits hold while it exists)


def prepare_environment() -> None:
    """Before numpy, scipy or torch load their pools: idle OpenMP and OpenBLAS threads sleep instead of spinning."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("KMP_BLOCKTIME", "0")
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")  # torch's MKL: the same bits at any thread count


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def other_runnable() -> int:
    """Processes other than this one that are running or ready to run now (Linux ``/proc/stat``), else 0."""
    try:
        with open("/proc/stat") as handle:
            for line in handle:
                if line.startswith("procs_running"):
                    return max(0, int(line.split()[1]) - 1)
    except (OSError, ValueError, IndexError):
        pass
    return 0


def auto_threads() -> int:
    """The cores not taken by other runnable processes (at least 1): no pool waits on a core it cannot get."""
    cores = available_cores()
    return max(1, min(cores, cores - other_runnable()))


def set_threads(threads: int | None = None) -> int:
    """Size numpy/scipy BLAS, OpenMP and torch pools to ``threads`` (default :func:`auto_threads`); returns it."""
    global _limits
    n = auto_threads() if threads is None else check_threads(threads)
    for name in _POOL_VARIABLES:
        os.environ[name] = str(n)
    import scipy.linalg  # noqa: F401 - loads scipy's own OpenBLAS so that the limit below reaches it
    from threadpoolctl import threadpool_limits

    _limits = threadpool_limits(limits=n)
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(n)
    return n


@contextmanager
def metric_blas():
    """A context in which numpy's and scipy's BLAS and torch's CPU pool run on one thread: metric values
    bit-identical whatever ``--threads``, the machine's load or the process (Dask worker or not).

    torch counts too: metrics that run torch on the CPU (FLS's float64 ``cdist``) go through MKL,
    whose small double products give other last bits at another thread count (seen on an AMD EPYC
    even with ``MKL_CBWR=AUTO,STRICT``)."""
    import scipy.linalg  # noqa: F401 - scipy's own OpenBLAS must be loaded for the limit to reach it
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    with threadpool_limits(limits=1, user_api="blas"):
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def check_threads(threads) -> int:
    """``threads`` as an int in 1..MAX_THREADS, else ``ParameterError``."""
    if isinstance(threads, bool):
        raise ParameterError(f"--threads: {threads!r} is not a whole number")
    try:
        value = int(threads)
    except (TypeError, ValueError):
        raise ParameterError(f"--threads: {threads!r} is not a whole number") from None
    if value != threads and not isinstance(threads, str) or not 1 <= value <= MAX_THREADS:
        raise ParameterError(f"--threads: {threads!r} is not a whole number in 1..{MAX_THREADS}")
    return value


def check_device(device: str | None) -> str | None:
    """``auto``/None -> None (cuda when present at use, else cpu); ``cpu``; ``cuda``/``cuda:N`` only when present."""
    if device is None or str(device).strip().lower() == "auto":
        return None
    text = str(device).strip().lower()
    if text == "cpu":
        return "cpu"
    if text != "cuda" and not (text.startswith("cuda:") and text[5:].isdigit()):
        raise ParameterError(f"--device {device!r}: use auto, cpu, cuda or cuda:N")
    import torch

    if not torch.cuda.is_available():
        raise ParameterError(f"--device {device}: CUDA is not available to this torch ({torch.__version__}); "
                             "use --device cpu or auto")
    index = int(text[5:]) if ":" in text else 0
    if index >= torch.cuda.device_count():
        raise ParameterError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) present")
    return text


def set_default_device(device: str | None) -> None:
    """The device used where a caller gives none (``None``: cuda when present, else cpu)."""
    global _default_device
    _default_device = check_device(device)


def default_device() -> str | None:
    """The device set by :func:`set_default_device` (None: decide at use)."""
    return _default_device


def _threads_arg(text: str) -> int:
    try:
        return check_threads(text)
    except ParameterError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--threads: ")) from None


def add_compute_options(parser: argparse.ArgumentParser, *, threads_default: int | None = None) -> None:
    """``--device`` and ``--threads`` for a command that computes (validated before any work)."""
    parser.add_argument("--device", default=None, metavar="DEVICE",
                        help="auto (default: cuda when present, else cpu), cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=_threads_arg, default=threads_default, metavar="N",
                        help="CPU threads for every pool (BLAS, OpenMP, torch); default: the cores not busy "
                        "with other processes")


def apply_compute_options(args: argparse.Namespace) -> None:
    """Validate and apply a parsed command's ``--device`` and ``--threads`` (every command gets sized pools)."""
    set_default_device(None)  # a previous command's device never carries over
    if hasattr(args, "device"):
        args.device = check_device(args.device)
        set_default_device(args.device)
    set_threads(getattr(args, "threads", None))
