"""Message model, wire formats, SRV catalogue, validation, columns, capacity model, pipeline."""

__all__: list[str] = []
