"""The google-research ELECTRA family: its CLI road, torch-free targets, golden check reports, fixture maker."""
