"""Vision and audio models of transformers' TF layout."""

from __future__ import annotations

from bridge.rules.hf_tf_families import Family

FAMILIES: tuple[Family, ...] = ()
