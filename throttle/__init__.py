"""Alert Storm Protection: throttling policies, Numba kernels, throttle metadata, tuning."""

__all__: list[str] = []
