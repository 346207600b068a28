"""KerasHub presets (``save_to_preset`` directories) <-> transformers 5, one data table per KerasHub family."""
