"""The device population: columns of devices, which double as the device registry.

Devices are numbered ``0..n-1``; their EUI-64 is ``DEVICE_PREFIX | index`` so that an index
and an id convert without a lookup. Kinds, SMETS generation, export capability and CSP region
are drawn from the scenario's shares with a seeded generator, so a scenario and a seed give
the same population.

Each device also has a persistent **contact** state, drawn once from its own generator (so
no other draw moves) with its generation's shares (``dead_share``, ``flaky_share``):
``CONTACT_OK`` (transient faults only, as drawn per request), ``CONTACT_NONE`` (out of
contact all day: every request E21 at the time-out) or ``CONTACT_FLAKY`` (each request fails
with ``flaky_failure_prob``). :func:`draw_faults` turns a request's uniform draw into its fault
the same way for the virtual-time driver and the wall-clock device leg.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from dccsim.core.catalogue import DEVICE_KINDS
from dccsim.core.pipeline import FAULT_E20, FAULT_E21, FAULT_NONE
from dccsim.core.validation import DeviceRegistry

from . import _kernels as K
from ._kernels import CONTACT_FLAKY, CONTACT_NONE, CONTACT_OK  # the persistent contact states of a device
from .scenario import Scenario

__all__ = [
    "Population",
    "build_population",
    "contact_states_reference",
    "draw_faults",
    "DEVICE_PREFIX",
    "UNKNOWN_DEVICE_PREFIX",
    "CONTACT_OK",
    "CONTACT_NONE",
    "CONTACT_FLAKY",
]

#: EUI-64 of device i is DEVICE_PREFIX | i.
DEVICE_PREFIX = np.uint64(0x00DB_0000_0000_0000)
#: Prefix of ids that are never in the registry (for "unknown device" traffic).
UNKNOWN_DEVICE_PREFIX = np.uint64(0x00DC_0000_0000_0000)
ESME = DEVICE_KINDS.index("ESME")
GSME = DEVICE_KINDS.index("GSME")


@dataclass(frozen=True)
class Population:
    """Devices as columns; ``kind`` indexes ``DEVICE_KINDS``; ``smets1`` is a bool column."""

    ids: npt.NDArray[np.uint64]
    kind: npt.NDArray[np.uint8]
    smets1: npt.NDArray[np.bool_]
    export: npt.NDArray[np.bool_]
    region: npt.NDArray[np.uint8]
    #: ``CONTACT_*`` per device (all ``CONTACT_OK`` when not given)
    contact: npt.NDArray[np.uint8] | None = None

    def __post_init__(self) -> None:
        if self.contact is None:
            object.__setattr__(self, "contact", np.zeros(len(self.ids), np.uint8))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def esme(self) -> npt.NDArray[np.int64]:
        """Indices of electricity meters."""
        return np.flatnonzero(self.kind == ESME)

    def registry(self) -> DeviceRegistry:
        """The device registry validation uses (ids are already sorted)."""
        return DeviceRegistry(ids=self.ids, kind=self.kind, in_service=np.ones(len(self.ids), np.bool_))


def build_population(s: Scenario) -> Population:
    """Draw the population; each attribute has its own seeded generator, drawn side by side."""
    n = s.meters
    p = s.population

    def share(purpose: int, value: float) -> npt.NDArray[np.bool_]:
        return np.random.default_rng([s.seed, 1, purpose]).random(n) < value

    def regions() -> npt.NDArray[np.uint8]:
        rng = np.random.default_rng([s.seed, 1, 4])
        return rng.choice(len(p.regions), size=n, p=np.asarray(p.region_shares)).astype(np.uint8)

    def contact(s1: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint8]:
        u = np.random.default_rng([s.seed, 1, 5]).random(n)
        out = np.empty(n, np.uint8)
        K.contact_states(u, s1, p.smets2.dead_share, p.smets1.dead_share, p.smets2.flaky_share, p.smets1.flaky_share,
                         out)  # fmt: skip
        return out

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="population") as pool:
        esme = pool.submit(share, 1, p.esme_share)
        smets1 = pool.submit(share, 2, p.smets1_share)
        export = pool.submit(share, 3, p.export_share)
        region = pool.submit(regions)
        is_esme = esme.result()
        kind = np.where(is_esme, ESME, GSME).astype(np.uint8)
        s1 = smets1.result()
        return Population(ids=DEVICE_PREFIX + np.arange(n, dtype=np.uint64), kind=kind, smets1=s1,
                          export=is_esme & export.result(), region=region.result(), contact=contact(s1))


def contact_states_reference(
    u: npt.NDArray[np.float64], smets1: npt.NDArray[np.bool_], dead: tuple[float, float], flaky: tuple[float, float]
) -> npt.NDArray[np.uint8]:
    """The whole-array definition of the devices' contact states (``dead`` and ``flaky``: the
    shares of SMETS2 and SMETS1), which a differential test compares the kernel with."""
    d = np.where(smets1, dead[1], dead[0])
    f = d + np.where(smets1, flaky[1], flaky[0])
    return np.where(u < d, CONTACT_NONE, np.where(u < f, CONTACT_FLAKY, CONTACT_OK)).astype(np.uint8)


def draw_faults(
    contact: npt.NDArray[np.uint8],
    u: npt.NDArray[np.float64],
    e20: npt.NDArray[np.float64],
    e21: npt.NDArray[np.float64],
    flaky_p: npt.NDArray[np.float64],
) -> npt.NDArray[np.uint8]:
    """The fault of each request from its device's contact state and one uniform draw ``u``
    (the other arguments per request, by the device's generation).

    In contact: E20 below ``e20``, E21 below ``e20 + e21`` (today's transient faults); out of
    contact: always E21; flaky: fails below ``flaky_p``, split E20/E21 as ``e20 : e21`` (all
    E21 when both are 0).
    """
    transient = np.where(u < e20, FAULT_E20, np.where(u < e20 + e21, FAULT_E21, FAULT_NONE))
    both = e20 + e21
    cut = flaky_p * np.divide(e20, both, out=np.zeros_like(both), where=both > 0)
    flaky = np.where(u < cut, FAULT_E20, np.where(u < flaky_p, FAULT_E21, FAULT_NONE))
    out = np.where(contact == CONTACT_NONE, FAULT_E21, np.where(contact == CONTACT_FLAKY, flaky, transient))
    return out.astype(np.uint8)
