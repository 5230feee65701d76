"""Raw task checks and producers: integrity verification, converters, synthetic demo task."""
