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
