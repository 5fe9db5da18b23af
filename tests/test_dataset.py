"""The procedural shapes dataset: deterministic, labelled, with flat and detailed regions."""

from __future__ import annotations

import numpy as np

from arsample.lab.dataset import CLASSES, IMAGE_SIZE, NUM_CLASSES, make_batch, to_model_range


def test_same_seed_and_index_give_the_same_image():
    a, la = make_batch(range(30), seed=5)
    b, lb = make_batch(range(30), seed=5)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    c, _ = make_batch(range(30), seed=6)
    assert not np.array_equal(a, c)
    # an image does not depend on the batch it is made in
    single, _ = make_batch([17], seed=5)
    assert np.array_equal(single[0], a[17])


def test_labels_shapes_and_ranges():
    images, labels = make_batch(range(25), seed=0)
    assert images.shape == (25, IMAGE_SIZE, IMAGE_SIZE, 3) and images.dtype == np.uint8
    assert labels.tolist() == [i % NUM_CLASSES for i in range(25)]
    assert NUM_CLASSES >= 10 and len(set(CLASSES)) == NUM_CLASSES
    from arsample.models.embedded import CLASS_NAMES

    assert CLASSES == CLASS_NAMES  # the shipped model's names are the data's classes, in label order
    forced, forced_labels = make_batch(range(4), seed=0, labels=[3, 3, 3, 3])
    assert forced_labels.tolist() == [3, 3, 3, 3]
    x = to_model_range(images)
    assert x.shape == (25, 3, IMAGE_SIZE, IMAGE_SIZE) and x.min() >= -1 and x.max() <= 1


def test_images_mix_flat_regions_and_detail():
    images, _ = make_batch(range(200), seed=0)
    diff = np.abs(np.diff(images.astype(np.int16), axis=2)).sum(-1)  # horizontal neighbour differences
    flat_share = (diff <= 6).mean(axis=(1, 2))
    sharp_share = (diff > 60).mean(axis=(1, 2))
    assert np.median(flat_share) > 0.5  # mostly smooth backgrounds
    assert (sharp_share > 0.01).mean() > 0.95  # nearly every image has sharp edges (the shape)


def test_classes_differ_in_what_they_draw():
    # Same randomness, different class → different picture (the class is the shape).
    a, _ = make_batch([7] * NUM_CLASSES, seed=0, labels=list(range(NUM_CLASSES)))
    assert len({img.tobytes() for img in a}) == NUM_CLASSES
