"""Request bodies of ``POST /execute`` parsed as they arrive: image bytes go straight into reused,
already-faulted arrays (no temporary file, no growing buffer), fields into small capped buffers."""
