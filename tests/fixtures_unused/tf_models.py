"""Small real Keras / tf.Module models for `bridge unused` (factories return (model, batch[, loss_fn]))."""

from __future__ import annotations

import numpy as np


def keras_aux_branch():
    """A functional Keras model with an auxiliary head the loss ignores."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((4,), name="x")
    h = keras.layers.Dense(3, name="shared")(inp)
    out = keras.layers.Dense(2, name="head")(h)
    aux = keras.layers.Dense(5, name="aux")(keras.layers.Dense(5, name="aux_hidden")(h))
    model = keras.Model(inp, [out, aux], name="two_heads")
    batch = np.ones((2, 4), dtype="float32")

    def loss(output, batch):
        import tensorflow as tf

        return tf.reduce_mean(tf.square(output[0]))

    return model, batch, loss


def keras_never_called():
    """A subclassed Keras model holding a built layer its call() never uses, and a frozen one."""
    import keras

    class Model(keras.Model):
        def __init__(self):
            super().__init__(name="tagger")
            self.body = keras.layers.Dense(4, name="body")
            self.frozen = keras.layers.Dense(4, name="frozen_proj")
            self.spare = keras.layers.Dense(3, name="spare_head")

        def build(self, input_shape):
            self.body.build(input_shape)
            self.frozen.build((None, 4))
            self.spare.build((None, 4))
            self.frozen.trainable = False

        def call(self, x):
            return self.frozen(self.body(x))

    keras.utils.set_random_seed(0)
    model = Model()
    batch = np.ones((2, 4), dtype="float32")
    model(batch)
    return model, batch


def keras_all_used():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)], name="seq")
    return model, np.ones((2, 4), dtype="float32")


def _classifier(head: str = "head", units: int = 2):
    """A subclassed Keras model whose head sits at attribute ``head`` (checkpoint paths follow attributes)."""
    import keras

    class Classifier(keras.Model):
        def __init__(self):
            super().__init__(name="clf")
            self.encoder = keras.layers.Dense(8, activation="relu", name="encoder")
            setattr(self, head, keras.layers.Dense(units, name=head))

        def call(self, x):
            return getattr(self, head)(self.encoder(x))

    keras.utils.set_random_seed(0)
    return Classifier(), np.ones((2, 4), dtype="float32")


def keras_classifier():
    return _classifier()


def keras_classifier_renamed():
    """The same model after a refactor renamed `head` to `classifier`."""
    return _classifier(head="classifier")


def keras_classifier_wider():
    """The same model with 3 classes instead of 2."""
    return _classifier(units=3)


def keras_replica_towers(skip_on_replica=None, touch_skipped=False, data_dependent=False):
    """Two Dense towers summed; ``skip_on_replica``: the replica (``replica_id_in_sync_group``, static while each
    replica's step is traced) whose call leaves tower ``b`` out, ``touch_skipped``: it still touches ``b`` with a
    zero-weighted term; ``data_dependent``: ``b`` sits in a ``tf.cond`` branch no batch takes."""
    import keras
    import tensorflow as tf

    class Towers(keras.Model):
        def __init__(self):
            super().__init__(name="towers")
            self.a = keras.layers.Dense(2, name="a")
            self.b = keras.layers.Dense(2, name="b")

        def call(self, x, training=False):
            out = self.a(x)
            if data_dependent:
                return tf.cond(tf.reduce_sum(x) > 1e9, lambda: out + self.b(x), lambda: out)
            context = tf.distribute.get_replica_context()
            replica = tf.get_static_value(context.replica_id_in_sync_group) if context is not None else None
            if skip_on_replica is None or replica != skip_on_replica:
                return out + self.b(x)
            if touch_skipped:
                return out + 0.0 * tf.add_n([tf.reduce_sum(w) for w in self.b.trainable_weights])
            return out

    keras.utils.set_random_seed(0)
    return Towers(), np.ones((4, 4), dtype="float32")
