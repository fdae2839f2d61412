"""Load generation: scenarios, device populations, workloads and replay drivers."""

__all__: list[str] = []
