"""Message model, wire formats, SRV catalogue, validation, columns, capacity model, pipeline.

The public names are re-exported here; the work lives in the modules beside this file.
Importing compiles nothing and reads no file.
"""

from .capacity import (
    CapacityClass,
    CapacityConfig,
    CapacityConfigError,
    CapacityInputError,
    CapacityModel,
    CapacityResult,
    CapacityStats,
    interval_aggregates,
    reference_process,
)
from .catalogue import CACHEABLE_SRVS, DEVICE_KINDS, Catalogue, SrvInfo, catalogue
from .columns import COLUMN_DTYPES, ROLE_UNKNOWN, RequestBatch
from .errors import ConfigError, DccsimError, MessageError
from .eui import array_to_euis, eui_to_int, euis_to_array, int_to_eui
from .messages import (
    ROLES,
    DCCAlert,
    DeviceAlert,
    GenericBody,
    Message,
    ReadActiveImportProfileData,
    ReadExportProfileData,
    ReadFirmwareVersion,
    ReadInstantaneousImportRegisters,
    ReadLogPeriod,
    RequestId,
    RequestRow,
    Response,
    RetrieveImportDailyReadLog,
    ServiceRequest,
    UpdateHANDeviceLog,
    from_ns,
    to_ns,
)
from .validation import (
    RESPONSE_CODES,
    DeviceRegistry,
    ReplayState,
    UserRegistry,
    Validator,
    Verdict,
    validate_batch,
)

__all__ = [
    "CapacityClass", "CapacityConfig", "CapacityConfigError", "CapacityInputError", "CapacityModel",
    "CapacityResult", "CapacityStats", "interval_aggregates", "reference_process",
    "CACHEABLE_SRVS", "COLUMN_DTYPES", "DEVICE_KINDS", "RESPONSE_CODES", "ROLES", "ROLE_UNKNOWN",
    "Catalogue", "ConfigError", "DCCAlert", "DccsimError", "DeviceAlert", "DeviceRegistry",
    "GenericBody", "Message", "MessageError", "ReadActiveImportProfileData", "ReadExportProfileData",
    "ReadFirmwareVersion", "ReadInstantaneousImportRegisters", "ReadLogPeriod", "ReplayState",
    "RequestBatch", "RequestId", "RequestRow", "Response", "RetrieveImportDailyReadLog",
    "ServiceRequest", "SrvInfo", "UpdateHANDeviceLog", "UserRegistry", "Validator", "Verdict",
    "array_to_euis", "catalogue", "eui_to_int", "euis_to_array", "from_ns", "int_to_eui",
    "to_ns", "validate_batch",
]
