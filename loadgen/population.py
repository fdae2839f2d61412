"""The device population: columns of devices, which double as the device registry.

Devices are numbered ``0..n-1``; their EUI-64 is ``DEVICE_PREFIX | index`` so that an index
and an id convert without a lookup. Kinds, SMETS generation, export capability and CSP region
are drawn from the scenario's shares with a seeded generator, so a scenario and a seed give
the same population.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from dccsim.core.catalogue import DEVICE_KINDS
from dccsim.core.validation import DeviceRegistry

from .scenario import Scenario

__all__ = ["Population", "build_population", "DEVICE_PREFIX", "UNKNOWN_DEVICE_PREFIX"]

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

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="population") as pool:
        esme = pool.submit(share, 1, p.esme_share)
        smets1 = pool.submit(share, 2, p.smets1_share)
        export = pool.submit(share, 3, p.export_share)
        region = pool.submit(regions)
        is_esme = esme.result()
        kind = np.where(is_esme, ESME, GSME).astype(np.uint8)
        return Population(ids=DEVICE_PREFIX + np.arange(n, dtype=np.uint64), kind=kind, smets1=smets1.result(),
                          export=is_esme & export.result(), region=region.result())
