"""The google-research ALBERT family: its CLI road, torch-free targets, golden check reports, fixture maker."""
