"""Stateful, streamable processors. See :mod:`engine.processors.base` for the protocol."""
