"""The Service Request Variant catalogue: all 129 DUIS SRVs and the facts validation needs.

The data ships with the package (``core/data/srv_catalogue.json``) and is read on first use,
not at import. Each SRV has a small integer code (its index in the catalogue, stable for a
given catalogue version) used in columns; roles have codes too (index in :data:`ROLES`).

Facts per SRV: name, critical, on-demand, future-dated response pattern (``none``, ``dsp``,
``device``, ``dsp+device``), DCC-schedulable, non-device, the Command Variants the DUIS schema
allows (1/2/3 for device commands, 4-7 for critical signed ones, 8 for non-device requests:
a critical SRV allows only 4-7, any other none of them), eligible roles, and whether the
readings cache serves it (4.6.1, 4.8.1, 4.8.3, which the MHHS meter data retriever role MDR
may also send).

Device applicability (E11) is not in the DUIS matrix, so dccsim uses a documented coarse
rule: an SRV applies to electricity meters (ESME) if an electricity role (IS, ES, ED, MDR, LC)
may send it, to gas meters (GSME) if a gas role (GS, GT) may, to both if only OU/RSA may,
and to the Communications Hub Function (CHF) for the hub's own SRVs (8.11, 8.12.x)
and the firmware version read (11.2). Non-device SRVs target the DCC and apply to
no device.

>>> cat = catalogue()
>>> len(cat), cat["4.8.1"].cacheable, "MDR" in cat["4.8.1"].roles
(129, True, True)
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Literal

import msgspec
import numpy as np
import numpy.typing as npt

from .errors import MessageError
from .records import ROLES

__all__ = [
    "SrvInfo",
    "Catalogue",
    "catalogue",
    "DEVICE_KINDS",
    "CACHEABLE_SRVS",
    "COMMAND_VARIANTS",
]

#: Device kinds the validation layer knows; codes are indices.
DEVICE_KINDS: tuple[str, ...] = ("ESME", "GSME", "CHF")
CACHEABLE_SRVS: tuple[str, ...] = ("4.6.1", "4.8.1", "4.8.3")
COMMAND_VARIANTS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)

_ELEC_ROLES = frozenset({"IS", "ES", "ED", "MDR", "LC"})
_GAS_ROLES = frozenset({"GS", "GT"})
_CHF_REFERENCES = frozenset({"8.11", "8.12", "11.2"})


class SrvInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Facts about one Service Request Variant."""

    srv: str
    reference: str
    name: str
    critical: bool
    on_demand: bool
    future_dated: Literal["none", "dsp", "device", "dsp+device"]
    dcc_schedulable: bool
    non_device: bool
    command_variants: tuple[int, ...]
    roles: tuple[str, ...]
    cacheable: bool = False

    @property
    def device_kinds(self) -> frozenset[str]:
        """Device kinds this SRV may target (see the module docstring for the rule)."""
        if self.non_device:
            return frozenset()
        kinds = set()
        roles = set(self.roles)
        if roles & _ELEC_ROLES:
            kinds.add("ESME")
        if roles & _GAS_ROLES:
            kinds.add("GSME")
        if not kinds:
            kinds |= {"ESME", "GSME"}
        if self.reference in _CHF_REFERENCES or self.srv in _CHF_REFERENCES:
            kinds.add("CHF")
        if self.reference == "8.11":
            kinds = {"CHF"}
        return frozenset(kinds)


class _CatalogueFile(msgspec.Struct, frozen=True):
    format: str
    source: str
    srvs: list[SrvInfo]


class Catalogue:
    """All SRVs, indexable by SRV string or code, with vectorised lookup tables.

    Attributes
    ----------
    srvs:
        The SRV strings in code order.
    eligible:
        ``bool[n_srv, n_roles]``: may role r send SRV s.
    cv_valid:
        ``bool[n_srv, 9]``: is Command Variant v valid for SRV s.
    kind_valid:
        ``bool[n_srv, n_device_kinds]``: may SRV s target a device of kind k.
    non_device, cacheable:
        ``bool[n_srv]``.
    """

    def __init__(self, infos: list[SrvInfo]):
        self._infos = tuple(infos)
        self.srvs: tuple[str, ...] = tuple(i.srv for i in infos)
        self.code_of = {s: c for c, s in enumerate(self.srvs)}
        n = len(infos)
        self.eligible: npt.NDArray[np.bool_] = np.zeros((n, len(ROLES)), dtype=np.bool_)
        self.cv_valid: npt.NDArray[np.bool_] = np.zeros((n, 9), dtype=np.bool_)
        self.kind_valid: npt.NDArray[np.bool_] = np.zeros((n, len(DEVICE_KINDS)), dtype=np.bool_)
        self.non_device = np.array([i.non_device for i in infos], dtype=np.bool_)
        self.cacheable = np.array([i.cacheable for i in infos], dtype=np.bool_)
        self.on_demand = np.array([i.on_demand for i in infos], dtype=np.bool_)
        for c, info in enumerate(infos):
            for r in info.roles:
                self.eligible[c, ROLES.index(r)] = True
            for v in info.command_variants:
                self.cv_valid[c, v] = True
            for k in info.device_kinds:
                self.kind_valid[c, DEVICE_KINDS.index(k)] = True

    def __len__(self) -> int:
        return len(self._infos)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._infos)

    def __contains__(self, srv: object) -> bool:
        return srv in self.code_of

    def __getitem__(self, key: str | int) -> SrvInfo:
        if isinstance(key, str):
            return self._infos[self.code(key)]
        return self._infos[key]

    def code(self, srv: str, field: str = "header.srv") -> int:
        """The integer code of ``srv``; :class:`MessageError` if it is not a DUIS SRV."""
        try:
            return self.code_of[srv]
        except (KeyError, TypeError):
            raise MessageError(field, srv, "a DUIS Service Reference Variant such as 4.8.1") from None

    def codes(self, srvs: list[str], field: str = "srv") -> npt.NDArray[np.uint8]:
        """Codes for many SRV strings."""
        return np.fromiter((self.code(s, field) for s in srvs), dtype=np.uint8, count=len(srvs))


@functools.cache
def catalogue() -> Catalogue:
    """The shipped catalogue, loaded once on first use."""
    raw = resources.files("dccsim.core").joinpath("data/srv_catalogue.json").read_bytes()
    parsed = msgspec.json.decode(raw, type=_CatalogueFile)
    return Catalogue(parsed.srvs)
