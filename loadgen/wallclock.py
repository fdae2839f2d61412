"""A scenario's pieces for the wall-clock server: request classes and the device leg.

In virtual time the workload knows each request's class and the driver draws its device
latency and fault. Requests that arrive over the network carry neither, so the server is given
these two functions, built from the scenario:

- :func:`classifier`: non-device SRVs -> ``non_device``; a request with an ExecutionDateTime ->
  ``future_dated``; the MHHS reads (4.6.1, 4.8.1, 4.8.3) -> ``mhhs_read``; the rest ->
  ``on_demand``.
- :class:`DeviceLegModel`: lognormal WAN+device latency and ``E20``/``E21`` faults by SMETS
  generation and the device's persistent contact state, as the virtual-time driver draws
  them, from one seeded generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from dccsim.core.catalogue import catalogue
from dccsim.core.columns import RequestBatch

from . import _kernels as K
from .population import Population
from .scenario import Scenario
from .workload import CLS

__all__ = ["classifier", "DeviceLegModel"]


def classifier() -> Callable[[RequestBatch], npt.NDArray[np.uint8]]:
    """The capacity class of each request of a batch (see the module docstring)."""
    cat = catalogue()
    table = np.full(len(cat.srvs), CLS["on_demand"], np.uint8)
    table[cat.non_device] = CLS["non_device"]
    table[cat.cacheable] = CLS["mhhs_read"]

    non_device, future = np.uint8(CLS["non_device"]), np.uint8(CLS["future_dated"])

    def classify(batch: RequestBatch) -> npt.NDArray[np.uint8]:
        out = np.empty(len(batch), np.uint8)
        K.classify(batch.srv, batch.execution_ns, table, non_device, future, out)
        return out

    return classify


class DeviceLegModel:
    """Latency (virtual ns) and fault per request, drawn like the virtual-time driver does."""

    def __init__(self, s: Scenario, pop: Population, seed: int | None = None):
        self.pop = pop
        self.rng = np.random.default_rng([s.seed if seed is None else seed, 5, 1 << 20])
        p2, p1 = s.population.smets2, s.population.smets1
        self.mu = (math.log(p2.median_s), math.log(p1.median_s))
        self.sigma = (p2.sigma, p1.sigma)
        self.e20 = (p2.e20_share, p1.e20_share)
        self.e21 = (p2.e21_share, p1.e21_share)
        self.flaky_p = (p2.flaky_failure_prob, p1.flaky_failure_prob)

    def __call__(
        self, batch: RequestBatch, cls: npt.NDArray[np.uint8]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
        n = len(batch)
        z = self.rng.standard_normal(n)
        u = self.rng.random(n)
        base = self.pop.ids[0] if len(self.pop) else np.uint64(0)
        latency = np.empty(n, np.int64)
        fault = np.empty(n, np.uint8)
        K.device_leg(
            batch.device,
            base,
            self.pop.smets1,
            self.pop.contact,
            z,
            u,
            self.mu[0],
            self.mu[1],
            self.sigma[0],
            self.sigma[1],
            self.e20[0],
            self.e20[1],
            self.e21[0],
            self.e21[1],
            self.flaky_p[0],
            self.flaky_p[1],
            latency,
            fault,
        )
        return latency, fault
