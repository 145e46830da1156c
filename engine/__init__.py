"""tonematch engine: analyse → invert → render, pure numpy/scipy. See docs/ARCHITECTURE.md."""
