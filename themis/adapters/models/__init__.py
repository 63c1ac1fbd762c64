"""Model adapters: implementations of `ModelPort`."""
