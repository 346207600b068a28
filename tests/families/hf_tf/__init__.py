"""The hf-tf family (transformers' own TF layout): its CLI roads, per-group and head tests, golden check reports,
fixture makers and specs."""
