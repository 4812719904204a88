"""Sample photos (artefact ``photos``): natural images that work with no network.

Sources (see data_manifests/photos.yaml): images bundled inside installed Python packages
(scikit-image ``skimage/data``, scikit-learn ``load_sample_image``, matplotlib's
``grace_hopper.jpg``; kind ``bundled``, falling back to the same files from the pinned wheels on
PyPI, kind ``pypi``) and the photos of the Debian package ``darknet`` (``data/*.jpg``; fetched with
``apt-get download`` + ``dpkg -x``, never installed). They are copied into the cache
``<VISXAI_DATA>/photos/`` and verified by sha256, so every machine sees the same bytes.

The artefact is fetched automatically and quietly on the first :func:`load_photo`.
"""

from __future__ import annotations

from PIL import Image

from .manifest import artefact_path, ensure, load_manifest

# name -> file in the artefact; what it shows (ImageNet class where there is an obvious one)
PHOTOS: dict[str, tuple[str, str]] = {
    "chelsea": ("chelsea.png", "Chelsea the cat (skimage)"),
    "coffee": ("coffee.png", "a cup of coffee (skimage)"),
    "astronaut": ("astronaut.png", "astronaut Eileen Collins (skimage)"),
    "rocket": ("rocket.jpg", "a rocket launch (skimage)"),
    "motorcycle": ("motorcycle.png", "a motorcycle, left stereo view (skimage stereo_motorcycle)"),
    "grass": ("grass.png", "grass texture, grayscale (skimage)"),
    "gravel": ("gravel.png", "gravel texture, grayscale (skimage)"),
    "brick": ("brick.png", "brick wall texture, grayscale (skimage)"),
    "china": ("china.jpg", "a Chinese temple (scikit-learn sample image)"),
    "flower": ("flower.jpg", "a flower (scikit-learn sample image)"),
    "grace_hopper": ("grace_hopper.jpg", "Grace Hopper portrait (matplotlib sample data)"),
    "dog": ("dog.jpg", "dog, bicycle and truck (darknet)"),
    "eagle": ("eagle.jpg", "an eagle (darknet)"),
    "giraffe": ("giraffe.jpg", "giraffe and zebra (darknet)"),
    "horses": ("horses.jpg", "horses (darknet)"),
    "person": ("person.jpg", "a person, a dog and a horse (darknet)"),
    "kite": ("kite.jpg", "people flying kites (darknet)"),
}


def list_photos() -> list[str]:
    """Names accepted by :func:`load_photo`, in a fixed order."""
    return list(PHOTOS)


def photo_path(name: str):
    """Path of photo ``name`` in the cache (fetching the ``photos`` artefact if needed)."""
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; available: {', '.join(PHOTOS)}")
    ensure("photos", quiet=True)
    return artefact_path("photos", PHOTOS[name][0])


def load_photo(name: str) -> Image.Image:
    """Photo ``name`` as an RGB ``PIL.Image`` (grayscale textures are replicated to 3 channels)."""
    with Image.open(photo_path(name)) as im:
        return im.convert("RGB")


def describe_photo(name: str) -> str:
    """One line saying what the photo shows and where it comes from."""
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; available: {', '.join(PHOTOS)}")
    return PHOTOS[name][1]


def _check_manifest_consistency() -> list[str]:
    """Photo files this module expects that the manifest does not list (for tests)."""
    listed = {f.path for f in load_manifest("photos").files}
    return [f for f, _ in PHOTOS.values() if f not in listed]
