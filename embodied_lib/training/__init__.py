"""Training loops, one module per model."""
