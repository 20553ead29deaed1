"""What the benchmark scripts share: the plain Keras convnet, data, peak memory, the machine.

Not a benchmark itself. The scripts in this folder import it as `common` (a script's own
folder is first on its path). Heavy imports wait until a function needs them, so a
script's `--help` stays fast.
"""

from __future__ import annotations

import os
import platform
import resource

DATASETS = ("mnist", "fashion", "digits", "fashion-colour")
COLOUR_SIDE = 32  # `fashion-colour`: Fashion-MNIST enlarged to 32x32 and coloured


def load_dataset(name):
    """`(x_train, y_train), (x_test, y_test)`: uint8 images (N, H, W) or (N, H, W, 3) and
    int labels.

    Args:
        name: `"mnist"` (the real 60,000/10,000, from `kerasnas.datasets.load_mnist`),
            `"fashion"` (Fashion-MNIST's 60,000/10,000, from
            `kerasnas.datasets.load_fashion_mnist`; see there for its split when it
            comes from npm) or `"digits"` (scikit-learn's bundled 8x8 digits: 1,347 to
            train, 450 to test, split with the seed 0; needs `pip install scikit-learn`),
            or `"fashion-colour"` (Fashion-MNIST's split as `coloured` makes it: 32x32
            RGB, a colour task larger than 28x28 grey that no benchmark is tuned on).
    """
    if name not in DATASETS:
        raise ValueError(f"Expected `name` to be one of {DATASETS}. Received: name={name!r}")
    if name == "mnist":
        from kerasnas.datasets import load_mnist

        return load_mnist()
    if name in ("fashion", "fashion-colour"):
        from kerasnas.datasets import load_fashion_mnist

        (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
        if name == "fashion":
            return (x_train, y_train), (x_test, y_test)
        return (coloured(x_train, seed=1), y_train), (coloured(x_test, seed=2), y_test)
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype("uint8")  # 0-16 -> 0-255
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=450, random_state=0, stratify=digits.target
    )
    return (x_train, y_train), (x_test, y_test)


def coloured(images, seed, side=COLOUR_SIDE):
    """Grey images enlarged to `side` x `side` and painted in two random colours.

    Each image is resized (bilinear) and gets its own foreground and background
    colour, drawn with `seed` whatever its class, so colour says nothing of the
    label: a model must learn shapes in colour at a size the defaults were not set on.

    Args:
        images: uint8 grey images (N, H, W).
        seed: the colours' seed.
        side: the output side in pixels. Defaults to `COLOUR_SIDE`.

    Returns:
        uint8 images (N, side, side, 3).
    """
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    foreground = rng.integers(0, 256, (len(images), 1, 1, 3)).astype("float32")
    background = rng.integers(0, 256, (len(images), 1, 1, 3)).astype("float32")
    out = np.empty((len(images), side, side, 3), "uint8")
    for start in range(0, len(images), 4096):  # bounded memory for 60,000 images
        part = slice(start, start + 4096)
        grey = images[part, :, :, None].astype("float32") / 255.0
        ink = tf.image.resize(grey, (side, side), antialias=True).numpy().clip(0.0, 1.0)
        painted = ink * foreground[part] + (1.0 - ink) * background[part]
        out[part] = np.round(painted).astype("uint8")
    return out


def scaled(x):
    """uint8 images as the convnet reads them: float32 in [0, 1], (N, H, W, C), grey
    (N, H, W) images with one channel."""
    x = x.astype("float32") / 255.0
    return x[..., None] if x.ndim == 3 else x


def labels_of(model):
    """`predict(images)` giving int labels from a model trained on `scaled` images."""
    return lambda images: model.predict(scaled(images), verbose=0).argmax(axis=1)


def with_channels(shape):
    """An image shape as a model input: (height, width) grey gets its one channel."""
    return tuple(shape) if len(shape) == 3 else (*shape, 1)


def convnet(shape, classes):
    """The classic Keras MNIST convnet: conv 32, pool, conv 64, pool, dropout, dense.

    Images under 16x16 get `same` padding (8x8 would shrink to nothing).

    Args:
        shape: the images' (height, width), grey, or (height, width, channels).
        classes: the number of classes.
    """
    import keras

    padding = "valid" if min(shape[:2]) >= 16 else "same"
    return keras.Sequential(
        [
            keras.Input(with_channels(shape)),
            keras.layers.Conv2D(32, 3, activation="relu", padding=padding),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu", padding=padding),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )


def fit_convnet(x, y, callbacks, epochs):
    """Trains `convnet` on uint8 images `x` and int labels `y` and returns it.

    Adam, batch 128, the last 10% of the images held out for validation, quiet.

    Args:
        x: uint8 images (N, H, W) or (N, H, W, C).
        y: int labels 0 to C-1.
        callbacks: Keras callbacks (a `TimeBudget` to stop it at a deadline).
        epochs: the most epochs to train.
    """
    model = convnet(x.shape[1:], int(y.max()) + 1)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(
        scaled(x),
        y,
        batch_size=128,
        epochs=epochs,
        validation_split=0.1,
        callbacks=callbacks,
        verbose=0,
    )
    return model


def peak_rss_mb():
    """The peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def machine(**extra):
    """What ran the benchmark: processor, cores, memory, GPU and the packages' versions.

    Args:
        **extra: more entries (another package's version, say), added last.
    """
    import keras
    import keras_tuner
    import tensorflow as tf

    cpu = platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(memory, 1),
        "gpu": bool(tf.config.list_physical_devices("GPU")),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_tuner": keras_tuner.__version__,
        **extra,
    }
