"""TensorFlow side of `bridge unused`: ``trace`` (a Keras model or ``tf.Module`` run on its batch, the restore
walk), ``watch`` (a tape loop or ``model.fit``) and ``meta_graph`` (a TF1 graph's backward closure, no TensorFlow)."""
