"""Independent runs as tasks: worker processes on one machine, or Ray tasks on a cluster.

Sweep settings, ``--find`` rounds, throttle-tuning grid points and seed replicates are
independent runs: each is a call ``fn(arg)`` that writes what it writes (its own run folder)
and returns something small and picklable (a :class:`~dccsim.bench.results.summary.RunSummary`
read back from its ``summary.json``, a few columns), never its logs.

- :func:`run_tasks` runs ``fn`` over a list of arguments and returns the results in the
  order of the arguments, whatever order they finished in;
- :class:`TaskRunner` does the same for several batches on one pool or one Ray connection
  (a search's rounds), so workers start, and load the compiled kernels, once.

Backends (:data:`BACKENDS`):

``local``
    Worker processes (:class:`concurrent.futures.ProcessPoolExecutor`, the platform's
    default start method: fork on Linux, so workers inherit the imported modules and the
    ``shared`` value without copying it). One worker, or one task, runs in this process.
``ray``
    Ray tasks of one CPU each (``dccsim[ray]``; Ray is imported only here and only then):
    on the cluster at ``address`` (``ray.init(address=...)``), or on a local Ray instance
    of ``workers`` CPUs when no address is given; a Ray already initialised in this process
    (a test's, a notebook's) is used as it is and left running. ``shared`` goes into the
    object store once (NumPy arrays are read from it without a copy on each node). At most
    ``workers`` tasks are in flight (all of them when ``workers`` is None: the cluster's
    CPUs decide). Each task's paths are those of the node it runs on: give absolute paths
    and, on several nodes, a shared folder (or collect the run folders afterwards).

What runs, and so what comes back, does not depend on the backend or on ``workers``: only
how many run at once does.

>>> run_tasks(abs, [-1, 2, -3], workers=2)                                # doctest: +SKIP
[1, 2, 3]
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from dccsim.core.errors import ConfigError

__all__ = ["BACKENDS", "RAY_HINT", "TaskBackendError", "TaskRunner", "check_backend", "default_workers", "run_tasks"]

#: the backends :func:`run_tasks` knows
BACKENDS = ("local", "ray")
#: what to do when Ray is asked for but missing
RAY_HINT = "Ray installed: pip install 'dccsim[ray]'"

#: ``progress(done, total)``: tasks finished so far, out of ``total`` (0 first, then after each)
Progress = Callable[[int, int], None]

_NO_SHARED = object()


class TaskBackendError(RuntimeError):
    """The backend failed under a task (a worker process died, a Ray node went away): the
    batch is lost; says which backend and why."""


def default_workers() -> int:
    """The CPUs this process may run on: the local backend's worker count unless told."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def check_backend(backend: str, address: str | None = None) -> None:
    """Check ``backend`` (and ``address``) before any work: :class:`ConfigError` naming the
    key for an unknown backend, an address without Ray, Ray asked for but not installed, or
    a ``HOST:PORT`` address that takes no connection."""
    if backend not in BACKENDS:
        raise ConfigError(key="backend", value=backend, expected=f"one of {', '.join(BACKENDS)}")
    if address is not None and backend != "ray":
        raise ConfigError(key="address", value=address, expected="no address: it applies with backend 'ray'")
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise ConfigError(key="backend", value="ray", expected=RAY_HINT)
    if address is not None:
        _reachable(address)


def run_tasks(
    fn: Callable[..., Any],
    args_list: Sequence[Any],
    *,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: Progress | None = None,
    shared: Any = _NO_SHARED,
) -> list[Any]:
    """``[fn(a) for a in args_list]`` as parallel tasks, in the order of ``args_list``.

    ``fn`` is a module-level function (workers import it by name); its arguments and results
    are pickled, so keep them small. With ``shared``, each call is ``fn(shared, a)`` and
    ``shared`` (a large read-only value: a trace's columns) travels once per worker, not
    once per task. ``workers``: tasks at once (local default: the CPUs; Ray default: as the
    cluster allows). ``progress(done, total)`` is called with 0 first, then after each task,
    in this thread. The first task to fail cancels those not started and its exception is
    raised here (its own type: a Ray task's error is unwrapped); :class:`TaskBackendError`
    when the backend itself failed.
    """
    with TaskRunner(backend, workers=workers, address=address, shared=shared) as runner:
        return runner.map(fn, args_list, progress=progress)


class TaskRunner:
    """Runs batches of tasks on one backend: a context manager (:func:`run_tasks` for one
    batch). The local pool, or the Ray connection, opens with the first batch that needs it
    and closes with the runner."""

    def __init__(
        self, backend: str = "local", *, workers: int | None = None, address: str | None = None,
        shared: Any = _NO_SHARED,
    ) -> None:  # fmt: skip
        check_backend(backend, address)
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ConfigError(key="workers", value=workers, expected="an integer >= 1")
        self.backend, self.workers, self.address, self.shared = backend, workers, address, shared
        self._pool: ProcessPoolExecutor | None = None
        self._ray: _Ray | None = None

    def __enter__(self) -> TaskRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (the local pool; a Ray instance this runner started)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        ray, self._ray = self._ray, None
        if ray is not None:
            ray.close()

    def slots(self) -> int:
        """Tasks that can run at once: ``workers`` if given, else this machine's CPUs (local)
        or the Ray cluster's (connecting to it)."""
        if self.workers is not None:
            return self.workers
        if self.backend == "local":
            return default_workers()
        if self._ray is None:
            self._ray = _Ray(self.workers, self.address, self.shared)
        return max(1, int(self._ray.ray.cluster_resources().get("CPU", 1)))

    def map(self, fn: Callable[..., Any], args_list: Sequence[Any], *, progress: Progress | None = None) -> list[Any]:
        """``fn`` over ``args_list`` as tasks (see :func:`run_tasks`); results in input order."""
        args = list(args_list)
        if progress is not None:
            progress(0, len(args))
        if not args:
            return []
        if self.backend == "ray":
            if self._ray is None:
                self._ray = _Ray(self.workers, self.address, self.shared)
            return self._ray.map(fn, args, progress)
        workers = default_workers() if self.workers is None else self.workers
        if workers <= 1 or len(args) == 1:
            return self._here(fn, args, progress)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=workers, initializer=_set_shared, initargs=(self.shared,))
        return self._local(fn, args, progress)

    def _here(self, fn: Callable[..., Any], args: list[Any], progress: Progress | None) -> list[Any]:
        results = []
        for a in args:
            results.append(fn(a) if self.shared is _NO_SHARED else fn(self.shared, a))
            if progress is not None:
                progress(len(results), len(args))
        return results

    def _local(self, fn: Callable[..., Any], args: list[Any], progress: Progress | None) -> list[Any]:
        assert self._pool is not None
        with_shared = self.shared is not _NO_SHARED
        futures: dict[Future[Any], int] = {}
        try:
            for i, a in enumerate(args):
                futures[self._pool.submit(_call_shared, fn, a, with_shared)] = i
            results: list[Any] = [None] * len(args)
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in sorted(done, key=futures.__getitem__):
                    results[futures[f]] = f.result()  # the task's own exception, if it raised
                if progress is not None:
                    progress(len(args) - len(pending), len(args))
            return results
        except BrokenProcessPool as exc:
            self._pool = None
            raise TaskBackendError(f"local: a worker process died ({exc})") from exc
        except BaseException:
            for f in futures:
                f.cancel()
            raise


# ---------------------------------------------------------------------------- local workers

_shared: Any = _NO_SHARED


def _set_shared(value: Any) -> None:
    """The pool's initialiser: the batch's shared value, once per worker."""
    global _shared
    _shared = value


def _call_shared(fn: Callable[..., Any], arg: Any, with_shared: bool) -> Any:
    try:
        return fn(_shared, arg) if with_shared else fn(arg)
    except Exception as exc:
        raise _portable(exc) from None


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives pickling (the trip back from a worker), else the nearest of its
    base classes that does, built from its text: an error class with required keyword
    arguments cannot be rebuilt from its pickle, and would break the pool."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        pass
    for base in type(exc).__mro__[1:]:
        if not issubclass(base, Exception):
            break
        try:
            other = base(str(exc))
            pickle.loads(pickle.dumps(other))
            return other
        except Exception:
            continue
    return RuntimeError(f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------- Ray


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _ray_call(fn: Callable[..., Any], shared: Any, arg: Any, with_shared: bool) -> Any:
    """What a Ray task runs (``shared`` arrives resolved from the object store)."""
    try:
        return fn(shared, arg) if with_shared else fn(arg)
    except Exception as exc:
        raise _portable(exc) from None


def _reachable(address: str, timeout_s: float = 5.0) -> None:
    """A ``HOST:PORT`` address that takes no TCP connection in ``timeout_s`` is a
    :class:`ConfigError` at once (Ray itself retries for minutes); other forms (``auto``,
    ``ray://...``) are left to Ray."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not host or "/" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(
            key="address", value=address,
            expected=f"a Ray head node taking connections there ({exc.strerror or exc})",
        ) from None  # fmt: skip


class _Ray:
    """One Ray connection (or local instance) for a runner's batches."""

    def __init__(self, workers: int | None, address: str | None, shared: Any) -> None:
        import ray

        self.ray = ray
        self.workers = workers
        self.owned = False
        if not ray.is_initialized():
            quiet = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
            try:
                if address is not None:
                    ray.init(address=address, **quiet)
                else:
                    ray.init(num_cpus=workers or default_workers(), **quiet)
            except (ConnectionError, TimeoutError, ValueError, RuntimeError) as exc:
                raise ConfigError(
                    key="address", value=address or "(a local Ray instance)",
                    expected=f"a Ray cluster to connect to ({_first_line(exc)})",
                ) from None  # fmt: skip
            self.owned = True
        self.with_shared = shared is not _NO_SHARED
        self.shared = ray.put(shared) if self.with_shared else None
        self.remote = ray.remote(num_cpus=1, max_retries=0)(_ray_call)

    def map(self, fn: Callable[..., Any], args: list[Any], progress: Progress | None) -> list[Any]:
        ray = self.ray
        limit = self.workers or len(args)
        results: list[Any] = [None] * len(args)
        in_flight: dict[Any, int] = {}
        nxt = done = 0
        try:
            while done < len(args):
                while nxt < len(args) and len(in_flight) < limit:
                    in_flight[self.remote.remote(fn, self.shared, args[nxt], self.with_shared)] = nxt
                    nxt += 1
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    i = in_flight.pop(ref)
                    results[i] = self._get(ref)
                    done += 1
                if progress is not None:
                    progress(done, len(args))
            return results
        except BaseException:
            for ref in in_flight:
                ray.cancel(ref, force=True)
            raise

    def _get(self, ref: Any) -> Any:
        from ray.exceptions import RayError, RayTaskError

        try:
            return self.ray.get(ref)
        except RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None
            raise
        except RayError as exc:  # a worker or node died, the object was lost, ...
            raise TaskBackendError(f"ray: {_first_line(exc)}") from exc

    def close(self) -> None:
        if self.owned:
            self.ray.shutdown()
