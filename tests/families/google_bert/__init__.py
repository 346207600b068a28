"""The google-research BERT family: its torch-free targets and golden check reports (fixture: examples/tiny-bert)."""
