"""The pure core: specs, identity, planning, events, the fold, scoring and statistics. No I/O."""
