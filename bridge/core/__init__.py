"""The core: the neutral named-array model and everything that works on it alone.

``model`` (Checkpoint, TensorRecord: lazy values), ``dtypes`` (the one dtype vocabulary), ``naming`` (slot and
counter grammar), ``scopes`` (scope folding), ``transforms`` (named invertible transforms), ``plan`` (plan items,
target specs, verdicts), ``match`` (spec + rule pack -> plan), ``stream`` (planned tensors, prefetching),
``atomic`` (temporary directory + rename), ``errors`` (one exception family), ``factory`` (user
``FILE.py:FACTORY`` specs), ``unused`` (the `bridge unused` reports: ``report``, ``restore``).

The core imports no framework, no adapter (``tf_side``, ``pt_side``) and no front module; ``bridge.rules``
(the rule packs: data) sits on it.  ``tests/core/test_layers.py`` holds the contract.
"""
