"""The readings cache for SRVs 4.6.1, 4.8.1 and 4.8.3: 25-72 h retention at GB scale."""

__all__: list[str] = []
