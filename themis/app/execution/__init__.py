"""The effect interpreter: trials, model calls and their runtime controls, the single writer."""
