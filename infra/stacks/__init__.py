"""The tonematch stacks, one module each."""
