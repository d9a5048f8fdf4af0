"""Execution routing: pid -> version bindings, zero-downtime switching, image decoding, result checks."""
