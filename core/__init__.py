"""Message model, wire formats, SRV catalogue, validation, columns, capacity model, pipeline.

The public names are re-exported here, lazily (PEP 562): importing the package (as every
``from dccsim.core.errors import ...`` does) loads no module, so ``dccsim --help`` does not pay
for numba and pyarrow. The work lives in the modules beside this file; importing one compiles
nothing and reads no file.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CapacityClass": ".capacity",
    "CapacityConfig": ".capacity",
    "CapacityConfigError": ".capacity",
    "CapacityInputError": ".capacity",
    "CapacityModel": ".capacity",
    "CapacityResult": ".capacity",
    "CapacityStats": ".capacity",
    "interval_aggregates": ".capacity",
    "reference_process": ".capacity",
    "CACHEABLE_SRVS": ".catalogue",
    "DEVICE_KINDS": ".catalogue",
    "Catalogue": ".catalogue",
    "SrvInfo": ".catalogue",
    "catalogue": ".catalogue",
    "COLUMN_DTYPES": ".columns",
    "RequestBatch": ".columns",
    "ConfigError": ".errors",
    "DccsimError": ".errors",
    "MessageError": ".errors",
    "array_to_euis": ".eui",
    "eui_to_int": ".eui",
    "euis_to_array": ".eui",
    "int_to_eui": ".eui",
    "DCCAlert": ".messages",
    "DeviceAlert": ".messages",
    "GenericBody": ".messages",
    "Message": ".messages",
    "ReadActiveImportProfileData": ".messages",
    "ReadExportProfileData": ".messages",
    "ReadFirmwareVersion": ".messages",
    "ReadInstantaneousImportRegisters": ".messages",
    "ReadLogPeriod": ".messages",
    "RequestId": ".messages",
    "RequestRow": ".messages",
    "Response": ".messages",
    "RetrieveImportDailyReadLog": ".messages",
    "ServiceRequest": ".messages",
    "UpdateHANDeviceLog": ".messages",
    "from_ns": ".messages",
    "to_ns": ".messages",
    "ALERT_ACTIONS": ".records",
    "ALERT_COLUMNS": ".records",
    "INVALID_KINDS": ".records",
    "OUTCOMES": ".records",
    "REQUEST_CLASSES": ".records",
    "REQUEST_COLUMNS": ".records",
    "RESPONSE_CODES": ".records",
    "ROLES": ".records",
    "ROLE_UNKNOWN": ".records",
    "AlertRows": ".records",
    "Column": ".records",
    "RequestRows": ".records",
    "vocabulary": ".records",
    "DeviceRegistry": ".validation",
    "ReplayState": ".validation",
    "UserRegistry": ".validation",
    "Validator": ".validation",
    "Verdict": ".validation",
    "validate_batch": ".validation",
}

__all__ = [
    "CapacityClass", "CapacityConfig", "CapacityConfigError", "CapacityInputError", "CapacityModel",
    "CapacityResult", "CapacityStats", "interval_aggregates", "reference_process",
    "CACHEABLE_SRVS", "COLUMN_DTYPES", "DEVICE_KINDS", "RESPONSE_CODES", "ROLES", "ROLE_UNKNOWN",
    "ALERT_ACTIONS", "ALERT_COLUMNS", "INVALID_KINDS", "OUTCOMES", "REQUEST_CLASSES", "REQUEST_COLUMNS",
    "AlertRows", "Column", "RequestRows", "vocabulary",
    "Catalogue", "ConfigError", "DCCAlert", "DccsimError", "DeviceAlert", "DeviceRegistry",
    "GenericBody", "Message", "MessageError", "ReadActiveImportProfileData", "ReadExportProfileData",
    "ReadFirmwareVersion", "ReadInstantaneousImportRegisters", "ReadLogPeriod", "ReplayState",
    "RequestBatch", "RequestId", "RequestRow", "Response", "RetrieveImportDailyReadLog",
    "ServiceRequest", "SrvInfo", "UpdateHANDeviceLog", "UserRegistry", "Validator", "Verdict",
    "array_to_euis", "catalogue", "eui_to_int", "euis_to_array", "from_ns", "int_to_eui",
    "to_ns", "validate_batch",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dccsim.core' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
