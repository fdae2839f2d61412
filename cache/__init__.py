"""The readings cache for SRVs 4.6.1, 4.8.1 and 4.8.3: 25-72 h retention at GB scale.

Importing compiles nothing; kernels compile on first use (or in ``ReadingsCache.warm_up``).
"""

from .errors import CacheConfigError, CacheError, CacheInputError
from .readings import (
    BYTES_PER_ENTRY,
    MAX_CAPACITY,
    MAX_RETENTION_HOURS,
    MIN_RETENTION_HOURS,
    OP_LOOKUP,
    OP_STORE,
    LookupResult,
    ReadingsCache,
)
from .reference import ReferenceCache
from .stats import CacheStats

__all__ = [
    "ReadingsCache",
    "LookupResult",
    "CacheStats",
    "ReferenceCache",
    "CacheError",
    "CacheConfigError",
    "CacheInputError",
    "OP_LOOKUP",
    "OP_STORE",
    "MIN_RETENTION_HOURS",
    "MAX_RETENTION_HOURS",
    "MAX_CAPACITY",
    "BYTES_PER_ENTRY",
]
