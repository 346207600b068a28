"""Tests of the families, one folder each (beside ``bridge/families/<family>/``)."""
