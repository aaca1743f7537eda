"""Entities, value objects, URIs and errors: pure, no I/O."""
