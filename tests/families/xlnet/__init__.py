"""The zihangdai/xlnet family: its CLI road, torch-free targets, golden check reports, fixture maker."""
