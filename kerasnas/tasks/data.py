"""Data adapters: numpy arrays, `tf.data.Dataset`s and image folders, as one `ImageData`.

Its step of "data to Keras": reading each kind of input (numpy, a Dataset, a folder)
into one `ImageData`, in memory or as a stream; `reading.py` decides which kind the
user passed and calls it, `feeds.py` takes the `ImageData` on towards Keras.

In memory or streamed, the rule: a Dataset or a folder is read into memory
(numpy) while its decoded images take at most `in_memory_bytes()` (256 MB by
default; the environment variable `KERASNAS_IN_MEMORY_MB` changes it). In
memory, training holds the images again as float32 and Keras copies those, so
memory is a multiple of the decoded size (measured: docs/design-notes.md).
Reading stops as soon as the threshold is passed (so it never
holds more than the threshold); such data is then streamed from its source in
every epoch, and memory stays bounded by a few batches (a parallel decode and
a prefetch of 2) and, for folders, a shuffle of the file names.

Folders follow `keras.utils.image_dataset_from_directory`: one subfolder per
class (its name is the label), images found in it and below it, files ending
in .bmp, .gif, .jpeg, .jpg or .png (any case). For prediction a folder of
images without class subfolders works as well. Every file's header is read
first (Pillow), so that a corrupt or unreadable image stops with one error
that names it, before anything trains; a header can be sound over garbage
pixels, so what Keras will train on is also decoded once by TensorFlow (a folder
read into memory is; a streamed one gets a pass that keeps nothing,
`check_decodable`), and `predict` names such a file when it meets one
(`naming_undecodable`). The size and colour policy for a
folder: images are read at `resize_shape` if given, else at the most common
(height, width) in the folder (ties: the larger), resized with bilinear
interpolation; in colour (3 channels, alpha dropped) if any image is in
colour, else in grayscale (1 channel); as uint8.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os

import numpy as np

from kerasnas.pipelines import untuned

IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
DEFAULT_IN_MEMORY_MB = 256
SAMPLE_SIZE = 5000  # images kept for the preprocessing statistics of streamed data
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def in_memory_bytes():
    """Bytes of decoded images read into memory at most; more is streamed."""
    text = os.environ.get("KERASNAS_IN_MEMORY_MB")
    if not text:
        return DEFAULT_IN_MEMORY_MB << 20
    try:
        megabytes = float(text)
    except ValueError:
        megabytes = -1.0
    if not megabytes > 0:
        raise ValueError(
            f"Expected the environment variable KERASNAS_IN_MEMORY_MB to be a positive number "
            f"of megabytes (e.g. 1024); got {text!r}."
        )
    return int(megabytes * (1 << 20))


@dataclasses.dataclass
class ImageData:
    """Images (and labels), in memory or streamed.

    Attributes:
        images: (N, H, W, C) array when in memory, else None.
        labels: the labels, one per image, in the user's encoding (class
            names for folders and Datasets with `class_names`), or None.
        make_stream: when streamed, a function returning a fresh unbatched
            `tf.data.Dataset` of `(image (H, W, C), label)`, or of images
            when `labels` is None; else None.
        raw_shape: one image as the user gives it: (H, W) or (H, W, C).
        dtype: the images' dtype.
        sample: up to `SAMPLE_SIZE` images (N, H, W, C) for statistics.
        count: the number of images (None for a stream without labels).
        source: what the images came from, for messages.
        files: the image files of a folder, in order, else None.
    """

    images: np.ndarray | None
    labels: np.ndarray | None
    make_stream: object
    raw_shape: tuple
    dtype: str
    sample: np.ndarray
    count: int
    source: str = "x"
    files: list | None = None
    folder: tuple | None = None  # (size, channels) a folder is read at

    @property
    def streamed(self):
        return self.images is None

    @property
    def shape(self):
        """(H, W, C)."""
        return self.raw_shape if len(self.raw_shape) == 3 else (*self.raw_shape, 1)


def is_dataset(x):
    return type(x).__module__.startswith("tensorflow") and hasattr(x, "as_numpy_iterator")


def is_folder(x):
    return isinstance(x, (str, os.PathLike)) and not isinstance(x, bytes)


# ---------------------------------------------------------------------- folders


def list_folder(path, name="x", need_classes=True):
    """`(files, labels, class_names)` of an image folder; labels are None without classes."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ValueError(
            f"Expected `{name}` to be a folder of images (one subfolder per class); "
            f"{path!r} is not a folder."
        )
    entries = sorted(os.listdir(path))
    classes = [e for e in entries if os.path.isdir(os.path.join(path, e))]
    direct = [os.path.join(path, e) for e in entries if e.lower().endswith(IMAGE_SUFFIXES)]
    files, labels = [], []
    for label in classes:
        for root, dirs, names in os.walk(os.path.join(path, label), followlinks=True):
            dirs.sort()
            for file in sorted(names):
                if file.lower().endswith(IMAGE_SUFFIXES):
                    files.append(os.path.join(root, file))
                    labels.append(label)
    if files:
        return files, np.array(labels), classes
    if direct and not need_classes:
        return direct, None, None
    raise ValueError(
        f"Expected `{name}` to hold images in class subfolders; {path} holds no images there "
        f"(expected {path}/<class>/<image>.png, extensions {', '.join(IMAGE_SUFFIXES)})."
    )


def scan_images(files, name="x"):
    """`(sizes, colour)`: each file's (height, width), and whether any is in colour.

    Raises:
        ValueError: naming every file that is not a readable image.
    """
    from PIL import Image

    sizes, colour, bad = [], False, []
    for file in files:
        try:
            with Image.open(file) as image:
                width, height = image.size
                mode = image.mode
                if file.lower().endswith(".png"):
                    image.verify()  # checks the chunks' checksums without decoding
        except Exception as e:  # Pillow raises several kinds for a damaged file
            bad.append(f"{file} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
            continue
        sizes.append((height, width))
        colour = colour or mode not in _GRAY_MODES
    if bad:
        raise ValueError(unreadable_message(name, bad))
    return sizes, colour


def unreadable_message(name, bad):
    """The error for the unreadable files `bad` ("file (reason)" each), five shown at most."""
    shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
    return (
        f"Expected `{name}` to hold readable images; cannot read {len(bad)} file(s): "
        f"{shown}. Remove or replace them, then call again."
    )


def undecodable(files, size, channels):
    """The files among `files` whose pixels TensorFlow cannot decode as `folder_stream`
    does (a header Pillow reads can still hide garbage), each as "file (reason)".

    All files are decoded once, in parallel, and none is kept; the reasons come from
    decoding the bad ones again, alone.
    """
    import tensorflow as tf

    decode = tf.autograph.experimental.do_not_convert(_decode_fn(size, channels))
    paths = np.asarray([os.fspath(f) for f in files], dtype=str)
    # A value computed from the pixels, so that no decode can be optimised away.
    checked = (
        tf.data.Dataset.from_tensor_slices(paths)
        .map(
            lambda path: (path, tf.reduce_max(decode(path))),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=False,
        )
        .ignore_errors()
        .batch(1024)
    )
    good = set()
    for batch, _ in untuned(checked).as_numpy_iterator():
        good.update(path.decode("utf-8") for path in batch)
    bad = []
    for path in paths:
        if path not in good:
            try:
                decode(tf.constant(path))
                reason = "could not be decoded"
            except tf.errors.OpError as e:
                reason = f"{type(e).__name__}: {(e.message or '').splitlines()[0]}"
            bad.append(f"{path} ({reason})")
    return bad


def check_decodable(data, name="x"):
    """Decodes every image of a streamed folder once, before anything trains on it.

    Raises:
        ValueError: naming the files TensorFlow cannot decode (see `undecodable`).
    """
    if data.streamed and data.files is not None:
        bad = undecodable(data.files, *data.folder)
        if bad:
            raise ValueError(unreadable_message(name, bad))


@contextlib.contextmanager
def naming_undecodable(data, name="x"):
    """Turns TensorFlow's error for an image file it cannot decode, met while reading the
    streamed folder `data`, into a `ValueError` that names the file (see `undecodable`)."""
    try:
        yield
    except Exception as e:
        if data.files is None or not type(e).__module__.startswith("tensorflow"):
            raise
        bad = undecodable(data.files, *data.folder)
        if not bad:
            raise
        raise ValueError(unreadable_message(name, bad)) from None


def folder_size(sizes):
    """The most common (height, width) among `sizes` (ties: the larger)."""
    counts = collections.Counter(sizes)
    return max(counts, key=lambda s: (counts[s], s[0] * s[1], s))


def _decode_fn(size, channels):
    import tensorflow as tf

    height, width = size

    def decode(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=0, expand_animations=False)
        have = tf.shape(image)[-1]
        image = tf.cond(
            tf.logical_or(tf.equal(have, 2), tf.equal(have, 4)),
            lambda: image[..., :-1],  # drop alpha
            lambda: image,
        )
        if channels == 3:
            image = tf.cond(
                tf.equal(tf.shape(image)[-1], 1),
                lambda: tf.image.grayscale_to_rgb(image),
                lambda: image,
            )
        else:
            image = tf.cond(
                tf.equal(tf.shape(image)[-1], 3),
                lambda: tf.cast(
                    tf.round(tf.image.rgb_to_grayscale(tf.cast(image, "float32"))), "uint8"
                ),
                lambda: image,
            )
        same = tf.reduce_all(tf.equal(tf.shape(image)[:2], [height, width]))
        image = tf.cond(
            same,
            lambda: image,
            lambda: tf.cast(
                tf.clip_by_value(tf.round(tf.image.resize(image, (height, width))), 0, 255),
                "uint8",
            ),
        )
        image.set_shape((height, width, channels))
        return image

    return decode


def folder_stream(files, labels, size, channels, shuffle_seed=None):
    """A function returning an unbatched Dataset of a folder's (image, label), or images."""
    import tensorflow as tf

    decode = tf.autograph.experimental.do_not_convert(_decode_fn(size, channels))
    files = np.asarray(files, dtype=str)

    def make():
        if labels is None:
            dataset = tf.data.Dataset.from_tensor_slices(files)
            if shuffle_seed is not None:
                dataset = dataset.shuffle(len(files), seed=shuffle_seed)
            return dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        dataset = tf.data.Dataset.from_tensor_slices((files, np.asarray(labels)))
        if shuffle_seed is not None:  # the file names only: cheap, and a full shuffle
            dataset = dataset.shuffle(len(files), seed=shuffle_seed, reshuffle_each_iteration=True)
        return dataset.map(
            tf.autograph.experimental.do_not_convert(lambda p, y: (decode(p), y)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    return make


def from_folder(path, name="x", size=None, channels=None, need_labels=True, decode_all=False):
    """`ImageData` of a folder (see the module docstring for the size and colour policy).

    Args:
        path: the folder.
        name: the argument's name, for messages.
        size: (height, width) to read the images at. Defaults to None (the policy).
        channels: 1 or 3. Defaults to None (the policy).
        need_labels: whether class subfolders are required. Defaults to True.
        decode_all: when the folder is streamed, decode every image once now (see
            `check_decodable`), as reading it into memory does, so that training never
            meets a file it cannot decode. Defaults to False.

    Raises:
        ValueError: naming the files that cannot be read (every header is read; every
            image decoded when in memory or `decode_all`).
    """
    files, labels, _ = list_folder(path, name, need_classes=need_labels)
    sizes, colour = scan_images(files, name)
    size = tuple(size) if size is not None else folder_size(sizes)
    channels = channels or (3 if colour else 1)
    make = folder_stream(files, labels, size, channels)

    def explain(error):  # which file TensorFlow could not decode
        bad = undecodable(files, size, channels)
        return unreadable_message(name, bad) if bad else None

    data = _read(
        make, labels is not None, name=name, source=os.fspath(path), known=labels, explain=explain
    )
    data.files = files
    data.folder = (size, channels)
    if decode_all:
        check_decodable(data, name)
    return data


# ---------------------------------------------------------------------- Datasets


def _is_batched(spec_shape, image, label):
    """Whether a dataset's elements are batches, from its spec and its first element.

    A batch of grayscale images (B, H, W) and one RGB image (H, W, C) have the
    same rank; a batch made with `drop_remainder=True` has a fixed B in its
    spec. The labels tell: a batch has one per image.
    """
    if spec_shape.rank is not None and spec_shape.rank > 0 and spec_shape[0] is None:
        return True
    if image.ndim != 3:
        return image.ndim == 4
    if label is None:
        return image.shape[-1] > 4  # (B, H, W) grayscale, unless it looks like channels
    label = np.asarray(label)
    if label.ndim == 0 or label.shape[0] != image.shape[0]:
        return False
    one_hot_row = label.ndim == 1 and np.isin(label, (0, 1)).all() and label.sum() == 1
    return label.ndim == 2 or image.shape[-1] > 4 or not one_hot_row


def unbatched(dataset, name="x", labelled=None):
    """`(unbatched dataset, has labels)` of a Dataset of images or (image, label) pairs."""
    spec = dataset.element_spec
    pair = isinstance(spec, tuple)
    if pair and len(spec) != 2:
        raise ValueError(
            f"Expected `{name}` to be a tf.data.Dataset of (image, label) pairs or of images; "
            f"got elements of {len(spec)} parts ({spec}). For sample weights pass "
            "`sample_weight` with numpy arrays, or `class_weight`."
        )
    if labelled and not pair:
        raise ValueError(
            f"Expected `{name}` to be a tf.data.Dataset of (image, label) pairs; got elements "
            f"{spec} (images only). Zip the labels in: tf.data.Dataset.zip((images, labels))."
        )
    first = next(iter(untuned(dataset.take(1)).as_numpy_iterator()), None)
    if first is None:
        raise ValueError(f"Expected `{name}` to hold at least one image; the dataset is empty.")
    image, label = first if pair else (first, None)
    shape = spec[0].shape if pair else spec.shape
    if _is_batched(shape, np.asarray(image), label):
        dataset = dataset.unbatch()
    return dataset, pair


def class_names_of(dataset):
    names = getattr(dataset, "class_names", None)
    return None if names is None else [str(n) for n in names]


def from_dataset(dataset, name="x", labelled=True, resize_shape=None):
    """`ImageData` of a Dataset of (image, label) pairs (or images when not `labelled`).

    Labels of a Dataset with `class_names` (as `image_dataset_from_directory`
    makes) become those names. Images of several sizes need `resize_shape`.
    """
    import tensorflow as tf

    names = class_names_of(dataset)
    elements, pair = unbatched(dataset, name, labelled=labelled)
    if not labelled and pair:
        elements = elements.map(lambda image, label: image)
    image_spec = elements.element_spec[0] if labelled else elements.element_spec
    if image_spec.shape.rank not in (2, 3):
        raise ValueError(
            f"Expected the images of `{name}` to have 2 or 3 dimensions (H, W[, C]) each; "
            f"got {image_spec.shape}."
        )
    if resize_shape is not None and not image_spec.shape[:2].is_fully_defined():
        height, width = resize_shape

        def resize(image):
            image = image if image.shape.rank == 3 else image[..., None]
            return tf.cast(tf.image.resize(image, (height, width)), image_spec.dtype)

        elements = elements.map(
            tf.autograph.experimental.do_not_convert(
                (lambda x, y: (resize(x), y)) if labelled else resize
            )
        )
    if labelled and names is not None:
        table = tf.constant(names)

        def to_name(image, label):
            index = label if label.shape.rank == 0 else tf.argmax(label, axis=-1)
            if label.shape.rank == 1 and label.shape[0] == 1:  # "binary" labels
                index = tf.cast(tf.round(label[0]), "int64")
            return image, tf.gather(table, tf.cast(index, "int64"))

        elements = elements.map(tf.autograph.experimental.do_not_convert(to_name))
    return _read(lambda: elements, labelled, name=name, source=f"`{name}`")


def _read(make, labelled, name, source, known=None, explain=None):
    """Reads a stream into memory while it fits in `in_memory_bytes()`; else keeps it streamed.

    `explain(error)`, if given, says what a TensorFlow error met while reading means (or
    None to fall back on the error's own text)."""
    limit = in_memory_bytes()
    images, labels, used = [], [], 0
    streamed = False
    try:
        for element in untuned(make().batch(256)).as_numpy_iterator():
            batch, label = element if labelled else (element, None)
            images.append(batch)
            if labelled:
                labels.append(label)
            used += batch.nbytes
            if used > limit:
                streamed = True
                break
    except Exception as e:
        if type(e).__module__.startswith("tensorflow"):
            message = explain(e) if explain is not None else None
            raise ValueError(message or _decoding_error(e, source)) from None
        raise
    if not images:
        raise ValueError(f"Expected `{name}` to hold at least one image; {source} is empty.")
    if streamed:  # keep a sample, and let the rest go without copying it
        step = max(1, sum(len(b) for b in images) // SAMPLE_SIZE)
        images = [b[(-start) % step :: step] for start, b in _offsets(images)]
    try:
        sample = np.concatenate(images)
    except ValueError as e:
        raise ValueError(
            f"The images of `{name}` differ in shape ({e}); make them one shape (e.g. with "
            "keras.layers.Resizing in a .map), or pass `resize_shape`."
        ) from None
    del images
    raw_shape = tuple(int(d) for d in sample.shape[1:])
    dtype = str(sample.dtype)
    full = sample if sample.ndim == 4 else sample[..., None]
    if not streamed:
        y = _decoded_labels(np.concatenate(labels)) if labelled else None
        return ImageData(full, y, None, raw_shape, dtype, full, len(full), source)
    sample = full[:SAMPLE_SIZE]
    del full
    y, count = None, None
    if known is not None:
        y, count = np.asarray(known), len(known)
    elif labelled:  # the labels of everything: small, and needed for classes and counts
        parts = [
            np.asarray(batch)
            for batch in untuned(
                make().map(lambda image, label: label).batch(4096)
            ).as_numpy_iterator()
        ]
        y = _decoded_labels(np.concatenate(parts))
        count = len(y)
    if count is not None:  # so that Keras knows an epoch's length (unbatch() hides it)
        import tensorflow as tf

        unknown = make
        make = lambda: unknown().apply(tf.data.experimental.assert_cardinality(count))  # noqa: E731
    return ImageData(None, y, make, raw_shape, dtype, sample, count, source)


def _offsets(batches):
    """`(index of its first image, batch)` for each batch."""
    start = 0
    for batch in batches:
        yield start, batch
        start += len(batch)


def _decoded_labels(y):
    if y.dtype.kind in "SO":
        return np.array([v.decode("utf-8") if isinstance(v, bytes) else v for v in y.ravel()])
    return y


def _decoding_error(error, source):
    """A one-line message for images TensorFlow failed to read."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return f"Cannot read the images of {source}: {text}"


def count_batches(count, batch_size):
    return -(-int(count) // int(batch_size))
