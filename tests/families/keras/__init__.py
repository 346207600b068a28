"""The keras family: its pack end to end on real files, attention, golden check reports, sources and twins."""
