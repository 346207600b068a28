"""The `bridge unused` reports: ``report`` (UnusedReport: each parameter's classification, folded by scope) and
``restore`` (RestoreReport: what the user's own restore call does with a checkpoint, and the fix).  The framework
sides (``pt_side.unused``, ``tf_side.unused``) fill them in; ``bridge.report`` renders them."""
