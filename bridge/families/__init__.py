"""One folder per family of checkpoints: everything the project knows about that family, on the floors its parts
belong to.

``pack.py`` (and ``config.py`` where the config mapping stands apart) is the family's
:class:`~bridge.core.packs.RulePack` on the rules floor (the core and :mod:`bridge.rules` only);
``reference_tf.py`` is its TensorFlow reference forward, a TF adapter (TensorFlow imported inside functions);
``forward_check.py`` is the forward comparison ``verify`` runs, on the front floor; ``hooks.py`` is the pack's way
up to them: small typed functions that import the module above only when called.  :func:`bridge.rules.packs`
lists the packs.
"""
