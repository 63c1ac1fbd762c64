"""What users read: rich tables and lines for people, stable JSON for `--json`, the progress bar."""
