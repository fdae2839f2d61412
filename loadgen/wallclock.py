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
from dccsim.core._jit import jit
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

    non_device, future = np.uint8(CLS["non_device"]), np.uint8(CLS["future_dated"])

    def classify(batch: RequestBatch) -> npt.NDArray[np.uint8]:
        out = np.empty(len(batch), np.uint8)
        _classify(batch.srv, batch.execution_ns, table, non_device, future, out)
        return out

    return classify


@jit
def _classify(srv, execution_ns, table, non_device, future, out):  # type: ignore[no-untyped-def]
    for i in range(len(srv)):
        c = table[srv[i]]
        out[i] = future if execution_ns[i] != 0 and c != non_device else c


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

    def __call__(
        self, batch: RequestBatch, cls: npt.NDArray[np.uint8]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
        n = len(batch)
        z = self.rng.standard_normal(n)
        u = self.rng.random(n)
        base = self.pop.ids[0] if len(self.pop) else np.uint64(0)
        latency = np.empty(n, np.int64)
        fault = np.empty(n, np.uint8)
        _device_leg(
            batch.device,
            base,
            self.pop.smets1,
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
            latency,
            fault,
        )
        return latency, fault


@jit
def _device_leg(device, base, smets1, z, u, mu2, mu1, sg2, sg1, e20_2, e20_1, e21_2, e21_1, latency, fault):  # type: ignore[no-untyped-def]
    """Latency (virtual ns) and fault of each row from its draws ``z`` (normal) and ``u`` (uniform).

    One pass instead of a dozen whole-array numpy operations: a micro-batch is a few hundred
    rows, where numpy's per-call cost was most of the time. A device outside the population
    (``device - base`` out of range) is taken as SMETS2.
    """
    npop = np.uint64(len(smets1))
    for i in range(len(device)):
        d = device[i]
        s1 = d >= base and d - base < npop and smets1[d - base]
        if s1:
            latency[i] = np.int64(np.exp(mu1 + sg1 * z[i]) * NS)
            a, b = e20_1, e21_1
        else:
            latency[i] = np.int64(np.exp(mu2 + sg2 * z[i]) * NS)
            a, b = e20_2, e21_2
        fault[i] = FAULT_E20 if u[i] < a else (FAULT_E21 if u[i] < a + b else 0)
