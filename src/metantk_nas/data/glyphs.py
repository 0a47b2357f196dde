"""The embedded few-shot dataset ``glyphs``: letters and digits rendered from matplotlib's fonts.

Why: the workflow must run end to end without downloading ImageNet. A class is one
character (Latin, Greek, Cyrillic letter or ASCII digit) that every chosen font covers;
an image is that character in one of 16 fonts (DejaVu Sans/Serif/Mono and STIX General,
all four styles) under a seeded random affine jitter with random stroke and background
colours. Characters whose shapes coincide with an earlier character (homoglyphs such as
Latin ``a`` / Cyrillic ``а``, ``l`` / ``I``) are dropped so every class is learnable.

Everything random comes from ``seed``: the class split and, per class, the font, jitter
and colours of each image (``np.random.default_rng([seed, code point])``), so a class's
images do not depend on which other classes exist.
"""

from __future__ import annotations

import functools
import os
import unicodedata
from collections.abc import Callable
from pathlib import Path

import numpy as np

from metantk_nas.data.store import check_store_target, write_store
from metantk_nas.seeding import derive_seed

FONT_FAMILIES = ("DejaVuSans", "DejaVuSansMono", "DejaVuSerif", "STIXGeneral")
SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")
SPLIT_FRACTIONS = {"train": 0.64, "val": 0.16}

#: Homoglyph test: normalised renderings (ink box fitted into 24×24, aspect kept) whose RMS
#: difference is below ``DEDUP_RMSE`` in at least ``DEDUP_FONT_FRACTION`` of the fonts are
#: the same class. The comparison is scale-invariant on purpose (conservative: it also merges
#: pairs such as ``Á``/``À`` whose only difference is a small mark that jitter blurs).
DEDUP_RMSE = 0.12
DEDUP_FONT_FRACTION = 0.25
_DEDUP_CANVAS, _DEDUP_FONT_SIZE, _DEDUP_BOX = 64, 36, 24

#: Affine jitter ranges (degrees, scale factor, x-shear, translation as a fraction of the size).
ROTATION_DEG = 15.0
SCALE_RANGE = (0.85, 1.1)
SHEAR = 0.2
TRANSLATE = 0.08
#: Stroke colours are drawn from the dark range, backgrounds from the light range (random hues,
#: one polarity): with random polarity a network must first learn colour/polarity invariance,
#: which a CPU-sized training budget cannot afford; the shape is what a class is about.
STROKE_RANGE = (0.0, 120.0)
BACKGROUND_RANGE = (135.0, 255.0)
#: Minimum luminance difference (0..255) between stroke and background.
MIN_CONTRAST = 100.0
#: Accepted ranges of ``image_size`` and ``images_per_class`` (the dataset is built in memory).
IMAGE_SIZE_RANGE = (8, 512)
IMAGES_PER_CLASS_RANGE = (1, 10_000)
#: Font size as a fraction of the canvas; glyphs wider than ``_MAX_EXTENT`` are shrunk to fit.
_FONT_FRACTION = 0.55
_MAX_EXTENT = 0.8


def font_paths() -> list[Path]:
    """The TrueType fonts used, from matplotlib's data folder (symbol-only and display subsets excluded)."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    paths = sorted(
        path for path in folder.glob("*.ttf")
        if path.stem.split("-")[0] in FONT_FAMILIES or path.stem.startswith("STIXGeneral")
    )
    if len(paths) != 16:
        raise FileNotFoundError(f"{folder}: expected the 16 DejaVu Sans/Serif/Mono and STIX General fonts, "
                                f"found {[p.name for p in paths]}")
    return paths


def _is_class_character(code: int) -> bool:
    char = chr(code)
    category = unicodedata.category(char)
    if category == "Nd":
        return code < 128
    name = unicodedata.name(char, "")
    return category in ("Lu", "Ll") and name.startswith(SCRIPTS) and "LIGATURE" not in name


def candidate_characters(fonts: list[Path]) -> list[str]:
    """Letters of the chosen scripts and ASCII digits that every font maps, in code-point order."""
    from fontTools.ttLib import TTFont

    common: set[int] | None = None
    for path in fonts:
        cmap = set(TTFont(path, lazy=True).getBestCmap())
        common = cmap if common is None else common & cmap
    return [chr(code) for code in sorted(common or ()) if _is_class_character(code)]


@functools.lru_cache(maxsize=64)
def _font(path: str, size: int):
    from PIL import ImageFont

    return ImageFont.truetype(path, size)


def render_mask(font_path: Path, char: str, canvas: int) -> np.ndarray:
    """The glyph as a float32 coverage mask (canvas×canvas), centred on its ink box."""
    from PIL import Image, ImageDraw

    size = max(4, round(_FONT_FRACTION * canvas))
    font = _font(str(font_path), size)
    left, top, right, bottom = font.getbbox(char)
    extent = max(right - left, bottom - top)
    if extent > _MAX_EXTENT * canvas:  # a very wide glyph (e.g. Ш in STIX): shrink it to fit
        size = max(4, int(size * _MAX_EXTENT * canvas / extent))
        font = _font(str(font_path), size)
        left, top, right, bottom = font.getbbox(char)
    image = Image.new("L", (canvas, canvas))
    ImageDraw.Draw(image).text((canvas / 2 - (left + right) / 2, canvas / 2 - (top + bottom) / 2),
                               char, font=font, fill=255)
    return np.asarray(image, dtype=np.float32) / 255.0


def _normalised(font_path: Path, char: str) -> np.ndarray:
    """Rendering with its ink box fitted into a fixed box (aspect kept): the homoglyph signature."""
    from PIL import Image

    mask = Image.fromarray((render_mask(font_path, char, _DEDUP_CANVAS) * 255).astype(np.uint8))
    box = mask.getbbox()
    if box is None:
        raise ValueError(f"{font_path}: character U+{ord(char):04X} renders empty")
    crop = mask.crop(box)
    scale = (_DEDUP_BOX - 2) / max(crop.size)
    crop = crop.resize((max(1, round(crop.size[0] * scale)), max(1, round(crop.size[1] * scale))),
                       Image.Resampling.BILINEAR)
    out = Image.new("L", (_DEDUP_BOX, _DEDUP_BOX))
    out.paste(crop, ((_DEDUP_BOX - crop.size[0]) // 2, (_DEDUP_BOX - crop.size[1]) // 2))
    return np.asarray(out, dtype=np.float32).ravel() / 255.0


def drop_homoglyphs(chars: list[str], fonts: list[Path]) -> tuple[list[str], dict[str, str]]:
    """Keep the first of every group of look-alike characters.

    Returns the kept characters and, for each dropped one, the kept character it duplicates.
    """
    signatures = np.stack([np.stack([_normalised(font, char) for char in chars]) for font in fonts])
    squared = np.square(signatures).sum(-1)
    gram = signatures @ signatures.transpose(0, 2, 1)
    rmse = np.sqrt(np.maximum(squared[:, :, None] + squared[:, None, :] - 2 * gram, 0) / signatures.shape[-1])
    close = (rmse < DEDUP_RMSE).mean(axis=0) >= DEDUP_FONT_FRACTION
    kept: list[int] = []
    dropped: dict[str, str] = {}
    for index, char in enumerate(chars):
        twin = next((k for k in kept if close[index, k]), None)
        if twin is None:
            kept.append(index)
        else:
            dropped[char] = chars[twin]
    return [chars[k] for k in kept], dropped


@functools.lru_cache(maxsize=1)
def glyph_classes() -> tuple[tuple[str, ...], tuple[Path, ...]]:
    """The deduplicated class characters and the fonts (independent of seed and image size)."""
    fonts = font_paths()
    kept, _ = drop_homoglyphs(candidate_characters(fonts), fonts)
    return tuple(kept), tuple(fonts)


def class_name(char: str) -> str:
    """Stable, readable class name, e.g. ``U+0041 LATIN CAPITAL LETTER A``."""
    return f"U+{ord(char):04X} {unicodedata.name(char)}"


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Dark stroke on a light background (random hues) with at least ``MIN_CONTRAST`` luminance difference."""
    weights = np.array([0.299, 0.587, 0.114])
    while True:
        stroke = rng.uniform(*STROKE_RANGE, size=3)
        background = rng.uniform(*BACKGROUND_RANGE, size=3)
        if abs(float((stroke - background) @ weights)) >= MIN_CONTRAST:
            return stroke, background


def _affine_coefficients(rng: np.random.Generator, canvas: int) -> tuple[float, ...]:
    """PIL AFFINE coefficients (output → input) of a random rotation·shear·scale about the centre plus a shift."""
    angle = np.deg2rad(rng.uniform(-ROTATION_DEG, ROTATION_DEG))
    scale = rng.uniform(*SCALE_RANGE)
    shear = rng.uniform(-SHEAR, SHEAR)
    shift = rng.uniform(-TRANSLATE, TRANSLATE, size=2) * canvas
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    forward = rotation @ np.array([[1.0, shear], [0.0, 1.0]]) * scale
    inverse = np.linalg.inv(forward)
    centre = np.full(2, canvas / 2)
    offset = centre - inverse @ (centre + shift)
    return (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])


def render_class(char: str, fonts: tuple[Path, ...], image_size: int, count: int, seed: int) -> np.ndarray:
    """``count`` jittered RGB images (uint8 count×S×S×3) of one character.

    Each glyph is rendered once per font at twice the output size; the affine warp runs on
    that mask and a 2×2 box average gives the output (anti-aliased, and fast).
    """
    from PIL import Image

    canvas = 2 * image_size
    masks = [Image.fromarray((render_mask(font, char, canvas) * 255).round().astype(np.uint8)) for font in fonts]
    rng = np.random.default_rng([seed, ord(char)])
    out = np.empty((count, image_size, image_size, 3), dtype=np.uint8)
    for index in range(count):
        mask = masks[int(rng.integers(len(fonts)))]
        warped = mask.transform((canvas, canvas), Image.Transform.AFFINE, _affine_coefficients(rng, canvas),
                                resample=Image.Resampling.BILINEAR)
        cover = np.asarray(warped, dtype=np.float32).reshape(image_size, 2, image_size, 2).mean(axis=(1, 3)) / 255.0
        stroke, background = _colours(rng)
        rgb = background + (stroke - background) * cover[..., None]
        out[index] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return out


def split_classes(chars: tuple[str, ...], seed: int) -> dict[str, list[str]]:
    """Seeded 64/16/20 % split of the classes; each split sorted by code point."""
    order = np.random.default_rng(derive_seed(seed, "glyphs-split") % 2**63).permutation(len(chars))
    n_train = round(SPLIT_FRACTIONS["train"] * len(chars))
    n_val = round(SPLIT_FRACTIONS["val"] * len(chars))
    parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    return {split: sorted((chars[i] for i in idx), key=ord) for split, idx in parts.items()}


def check_glyph_arguments(image_size: int, images_per_class: int, seed: int) -> None:
    """Refuse sizes outside the accepted ranges, or a dataset larger than the memory available.

    Checked before any work, so ``--image-size 100000`` is one clear line, not a ``MemoryError``.
    """
    for name, value, (low, high) in (("image_size", image_size, IMAGE_SIZE_RANGE),
                                     ("images_per_class", images_per_class, IMAGES_PER_CLASS_RANGE)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
            raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    needed = _dataset_bytes(image_size, images_per_class)
    available = _available_memory()
    if available is not None and needed > available:
        raise ValueError(f"image_size {image_size} with {images_per_class} images per class needs "
                         f"{needed / 2**30:.1f} GiB of memory for the images, only {available / 2**30:.1f} GiB "
                         "is available; choose a smaller --image-size or --images-per-class")


def _dataset_bytes(image_size: int, images_per_class: int) -> int:
    """Upper bound of the images held in memory (~401 classes; the class list is not computed here)."""
    return 450 * images_per_class * image_size * image_size * 3


def _available_memory() -> int | None:
    """Bytes of memory available now (Linux ``MemAvailable``), or None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def generate_glyphs(
    out_dir: str | os.PathLike,
    image_size: int = 84,
    images_per_class: int = 60,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    overwrite: bool = False,
) -> Path:
    """Generate the glyph dataset as a store at ``out_dir`` (atomic) and return its path.

    ``progress`` is called with the number of classes finished since the last call.
    ``out_dir`` may be absent, empty, or (with ``overwrite``) a store written before
    (``store.check_store_target``); that is checked before rendering.
    """
    check_glyph_arguments(image_size, images_per_class, seed)
    check_store_target(out_dir, overwrite)
    chars, fonts = glyph_classes()
    splits = {}
    try:
        for split, members in split_classes(chars, seed).items():
            images = np.empty((len(members) * images_per_class, image_size, image_size, 3), dtype=np.uint8)
            for class_id, char in enumerate(members):
                start = class_id * images_per_class
                images[start:start + images_per_class] = render_class(char, fonts, image_size, images_per_class,
                                                                      seed)
                if progress:
                    progress(1)
            labels = np.repeat(np.arange(len(members), dtype=np.int64), images_per_class)
            splits[split] = (images, labels, [class_name(char) for char in members])
    except MemoryError:
        raise ValueError(f"{out_dir}: not enough memory for {len(chars) * images_per_class} glyph images of "
                         f"{image_size}×{image_size}; choose a smaller --image-size or --images-per-class") from None
    config = {"format": "glyphs", "image_size": image_size, "images_per_class": images_per_class, "seed": seed}
    return write_store(out_dir, "glyphs", "glyphs", splits, {split: list(fonts) for split in splits},
                       expected_per_class=images_per_class, config=config, seed=seed, overwrite=overwrite)
