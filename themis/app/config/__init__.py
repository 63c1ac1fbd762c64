"""Experiment configs: loading TOML, `--set` overrides, structuring into specs, dataset files."""
