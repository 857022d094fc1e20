"""Tests of core.hashing: normalisation, packing, bit distances, cache."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from napari_video_extract.core.hashing import (
    CACHE_NAME,
    PackedHash,
    default_threshold,
    hamming_bits,
    hash_bits,
    hash_files,
    hash_frames,
    hash_image,
    hashes_from_hex,
    hashes_to_hex,
    pack_bits,
    sharpness,
)


def photo(seed: int = 0, size=(240, 320)) -> np.ndarray:
    """A smooth random 'photograph' (low-frequency structure, RGB uint8)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize(size[::-1], Image.Resampling.BICUBIC))


def test_distance_counts_bits_not_hex_characters():
    a = PackedHash.from_hex("0000000000000000", 64)
    one_bit = PackedHash.from_hex("0000000000000001", 64)
    four_bits = PackedHash.from_hex("000000000000000f", 64)  # one hex char, four bits
    assert one_bit - a == 1
    assert four_bits - a == 4
    spread = PackedHash.from_hex("1111111111111111", 64)  # 16 hex chars, 16 bits
    assert spread - a == 16
    assert int(hamming_bits(spread.words, four_bits.words)) == 16 - 1 + 3


def test_hex_round_trip_and_packing_multiword():
    rng = np.random.default_rng(1)
    bits = rng.random((5, 100)) < 0.5  # 100 bits -> 2 words
    words = pack_bits(bits)
    assert words.shape == (5, 2) and words.dtype == np.uint64
    hexes = hashes_to_hex(words, 100)
    assert all(len(h) == 25 for h in hexes)
    assert np.array_equal(hashes_from_hex(hexes, 100), words)
    h = PackedHash(words[0], 100)
    assert np.array_equal(h.bits(), bits[0])
    assert PackedHash.from_hex(h.to_hex(), 100) == h
    flipped = bits[0].copy()
    flipped[[3, 70, 99]] ^= True
    assert PackedHash.from_bits(flipped) - h == 3


def test_matches_imagehash_hex_for_64_bits():
    import imagehash

    image = Image.fromarray(photo(2)).convert("L")
    ours = hash_image(image, crop_borders=False)
    theirs = imagehash.phash(image)
    assert ours.to_hex() == str(theirs)


def test_threshold_scales_with_hash_size():
    assert hash_bits("phash", 8) == 64 and hash_bits("phash", 16) == 256
    assert default_threshold("phash", 16) == 4 * default_threshold("phash", 8)
    with pytest.raises(ValueError):
        hash_bits("whash", 6)
    with pytest.raises(ValueError):
        hash_bits("nope", 8)


def test_hash_frames_shapes_and_methods():
    stack = np.stack([photo(i) for i in range(3)])
    for method in ("phash", "dhash", "ahash", "whash", "colorhash"):
        out = hash_frames(stack, method=method)
        assert out.shape == (3, 1) and out.dtype == np.uint64
    gray = hash_frames(stack.mean(axis=3).astype(np.uint8))
    assert gray.shape == (3, 1)
    big = hash_frames(stack, hash_size=16)
    assert big.shape == (3, 4)
    with pytest.raises(ValueError):
        hash_frames(stack[0, :, :, 0])
    with pytest.raises(TypeError):
        hash_frames(stack.astype(np.float32))


def test_letterboxed_copy_matches_original():
    original = photo(3, size=(180, 320))
    boxed = np.zeros((240, 320, 3), np.uint8)
    boxed[30:210] = original
    pillar = np.zeros((180, 400, 3), np.uint8)
    pillar[:, 40:360] = original
    h = hash_frames(np.stack([original]))[0]
    assert int(hamming_bits(h, hash_frames(boxed[None])[0])) <= 4
    assert int(hamming_bits(h, hash_frames(pillar[None])[0])) <= 4
    # Without cropping the bars dominate the hash.
    uncropped = hash_frames(boxed[None], crop_borders=False)[0]
    assert int(hamming_bits(h, uncropped)) > int(hamming_bits(h, hash_frames(boxed[None])[0]))


def test_blank_image_is_not_cropped_away():
    blank = np.full((1, 50, 60), 128, np.uint8)
    assert hash_frames(blank).shape == (1, 1)


def test_modes_exif_and_transparency(tmp_path):
    rgb = photo(4)
    base = Image.fromarray(rgb)
    ref = hash_image(base)
    # Grey, palette, CMYK, 16-bit and RGBA versions all hash close to the original.
    base.convert("L").save(tmp_path / "l.png")
    base.convert("P").save(tmp_path / "p.png")
    base.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    gray16 = np.asarray(base.convert("L")).astype(np.uint16) * 257
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    rgba = base.convert("RGBA")
    rgba.putalpha(255)
    rgba.save(tmp_path / "rgba.png")
    for name in ("l.png", "p.png", "cmyk.jpg", "g16.png", "rgba.png"):
        assert hash_image(tmp_path / name) - ref <= 6, name
    # EXIF orientation 6: stored rotated, displayed upright.
    rotated = base.rotate(90, expand=True)  # stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated.save(tmp_path / "exif.jpg", exif=exif, quality=95)
    assert hash_image(tmp_path / "exif.jpg") - ref <= 6
    # Transparent pixels are composited on white, not read as black.
    clear = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    white = Image.new("RGB", (64, 64), (255, 255, 255))
    assert hash_image(clear, method="ahash") == hash_image(white, method="ahash")


def test_sharpness_prefers_sharp_image():
    from PIL import ImageFilter

    image = Image.fromarray(
        photo(5, size=(200, 200)) ^ (np.indices((200, 200, 3)).sum(0) % 2 * 40).astype(np.uint8)
    )
    blurred = image.filter(ImageFilter.GaussianBlur(3))
    assert sharpness(image) > 2 * sharpness(blurred)
    assert sharpness(np.zeros((2, 2))) == 0.0


def test_hash_files_cache_hits_and_invalidation(tmp_path):
    for i in range(3):
        Image.fromarray(photo(i)).save(tmp_path / f"img{i}.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    paths = sorted(tmp_path.glob("*.*"))
    first = hash_files(paths, parallel=False)
    assert (first.hashed, first.cache_hits, first.failed) == (3, 0, 1)
    assert (tmp_path / CACHE_NAME).exists()
    second = hash_files(paths, parallel=False)
    assert (second.hashed, second.cache_hits, second.failed) == (0, 3, 1)
    assert [f.hash for f in second.files] == [f.hash for f in first.files]
    # Other settings are not served from the cache...
    assert hash_files(paths, method="dhash", parallel=False).cache_hits == 0
    # ...and a changed file is hashed again.
    Image.fromarray(photo(9)).save(tmp_path / "img1.png")
    third = hash_files(paths, parallel=False)
    assert third.hashed == 1 and third.cache_hits == 2
    bad = next(f for f in third.files if f.path.name == "bad.jpg")
    assert bad.hash is None and bad.error


def test_hash_files_parallel_equals_serial(tmp_path):
    for i in range(70):
        Image.fromarray(photo(i % 7, size=(60, 80))).save(tmp_path / f"f{i:03d}.jpg")
    paths = sorted(tmp_path.glob("*.jpg"))
    serial = hash_files(paths, parallel=False, use_cache=False, write_cache=False)
    par = hash_files(paths, parallel=True, use_cache=False, write_cache=False)
    assert np.array_equal(serial.hash_array(), par.hash_array())
