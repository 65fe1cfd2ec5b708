"""Running exported models: ``runtimes`` (any artifact behind its own runtime, parity by how outputs are
judged), ``latency`` (batch-1 timing of every runtime, Python and native)."""
