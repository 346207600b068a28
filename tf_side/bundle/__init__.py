"""A TensorFlow-free reader and writer of TensorFlow tensor-bundle checkpoints (the "V2" format).

A checkpoint with prefix ``P`` is ``P.index`` (an SSTable, see :mod:`tf_side.sstable`)
plus data shards ``P.data-%05d-of-%05d``.  The index maps ``""`` to a
``BundleHeaderProto`` and every tensor name to a ``BundleEntryProto`` that says where
its raw bytes lie (shard, offset, size) and their masked CRC32C.  Opening reads the
index only (and, for TF2 object-based checkpoints, the small object-graph string);
values are read on demand from memory-mapped shards and checksummed on every read.

The same bundle is the ``variables/variables`` of a SavedModel or TF1 Hub module.

One module per layer, each importing only those before it: :mod:`~tf_side.bundle.locate` (which prefix a path
means), :mod:`~tf_side.bundle.index` (the index's protos), :mod:`~tf_side.bundle.read` (shards, checksums, values),
:mod:`~tf_side.bundle.slices` (partitioned variables), :mod:`~tf_side.bundle.checkpoint` (the bundle as a
``Checkpoint``: the readers the format registry names) and :mod:`~tf_side.bundle.write` (TF1 checkpoints out).
"""
