"""A scenario's pieces for the wall-clock server: request classes and the device leg.

In virtual time the workload knows each request's class and the driver draws its device
latency and fault. Requests that arrive over the network carry neither, so the server is given
these two functions, built from the scenario:

- :func:`classifier`: non-device SRVs -> ``non_device``; a request with an ExecutionDateTime ->
  ``future_dated``; the MHHS reads (4.6.1, 4.8.1, 4.8.3) -> ``mhhs_read``; the rest ->
  ``on_demand``.
- :class:`DeviceLegModel`: lognormal WAN+device latency and ``E20``/``E21`` faults by SMETS
  generation, as the virtual-time driver draws them, from one seeded generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from dccsim.core.catalogue import catalogue
from dccsim.core.columns import RequestBatch
from dccsim.core.pipeline import FAULT_E20, FAULT_E21

from .population import Population
from .scenario import Scenario
from .workload import CLS, NS

__all__ = ["classifier", "DeviceLegModel"]


def classifier() -> Callable[[RequestBatch], npt.NDArray[np.uint8]]:
    """The capacity class of each request of a batch (see the module docstring)."""
    cat = catalogue()
    table = np.full(len(cat.srvs), CLS["on_demand"], np.uint8)
    table[cat.non_device] = CLS["non_device"]
    table[cat.cacheable] = CLS["mhhs_read"]

    def classify(batch: RequestBatch) -> npt.NDArray[np.uint8]:
        cls = table[batch.srv]
        return np.where((batch.execution_ns != 0) & (cls != CLS["non_device"]), np.uint8(CLS["future_dated"]), cls)

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

    def __call__(self, batch: RequestBatch, cls: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
        n = len(batch)
        idx = (batch.device - self.pop.ids[0]).astype(np.int64) if len(self.pop) else np.zeros(n, np.int64)
        known = (idx >= 0) & (idx < len(self.pop))
        s1 = np.zeros(n, np.bool_)
        s1[known] = self.pop.smets1[idx[known]]
        mu = np.where(s1, self.mu[1], self.mu[0])
        sigma = np.where(s1, self.sigma[1], self.sigma[0])
        latency = (np.exp(mu + sigma * self.rng.standard_normal(n)) * NS).astype(np.int64)
        u = self.rng.random(n)
        e20 = np.where(s1, self.e20[1], self.e20[0])
        e21 = np.where(s1, self.e21[1], self.e21[0])
        fault = np.where(u < e20, FAULT_E20, np.where(u < e20 + e21, FAULT_E21, 0)).astype(np.uint8)
        return latency, fault
