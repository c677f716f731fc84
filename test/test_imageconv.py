"""pose_ros.core.imageconv against independent oracles: YUV 4:2:2 frames with hand-computed
BT.601 colours (the formula OpenCV documents for COLOR_YUV2RGB_*), and compressed-image
headers read by Pillow (an independent decoder) including crafted decompression bombs."""
from __future__ import annotations

import io
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from conftest import photo
from pose_ros.core.imageconv import ImageFormatError, compressed_size, decode_compressed, image_array, to_rgb8


def bt601(y: int, u: int, v: int) -> tuple[int, int, int]:
    """BT.601 video-range YUV -> RGB, by hand (OpenCV's color_yuv: Y' = 1.164 (Y - 16),
    R = Y' + 1.596 (V - 128), G = Y' - 0.391 (U - 128) - 0.813 (V - 128), B = Y' + 2.018 (U - 128))."""
    yy = 1.164 * max(y - 16, 0)
    r = yy + 1.596 * (v - 128)
    g = yy - 0.391 * (u - 128) - 0.813 * (v - 128)
    b = yy + 2.018 * (u - 128)
    return tuple(int(np.clip(round(c), 0, 255)) for c in (r, g, b))


# a 4x2 frame as (Y0, U, Y1, V) per pixel pair, row by row: both pixels of a pair share U, V
PAIRS = [[(50, 90, 180, 200), (120, 200, 235, 60)],
         [(16, 128, 100, 128), (200, 60, 81, 150)]]


def expected_rgb() -> np.ndarray:
    out = np.zeros((2, 4, 3), np.int32)
    for r, row in enumerate(PAIRS):
        for p, (y0, u, y1, v) in enumerate(row):
            out[r, 2 * p] = bt601(y0, u, v)
            out[r, 2 * p + 1] = bt601(y1, u, v)
    return out


def test_bt601_hand_values():
    # the formula itself, checked at points worked out on paper
    assert bt601(16, 128, 128) == (0, 0, 0)  # video black
    assert bt601(235, 128, 128) == (255, 255, 255)  # video white: 1.164 * 219 = 254.9
    assert bt601(81, 90, 240) == (254, 0, 0)  # BT.601 red: 1.164*65 + 1.596*112 = 254.4
    assert bt601(100, 128, 128) == (98, 98, 98)  # 1.164 * 84 = 97.8


@pytest.mark.parametrize("encoding, order", [("yuyv", "YUYV"), ("yuv422_yuy2", "YUYV"),
                                             ("uyvy", "UYVY"), ("yuv422", "UYVY")])
def test_yuv422_known_pixels(encoding, order):
    data = bytearray()
    for row in PAIRS:
        for y0, u, y1, v in row:
            data += bytes((y0, u, y1, v) if order == "YUYV" else (u, y0, v, y1))
    arr = image_array(encoding, 4, 2, 8, False, bytes(data))
    rgb = to_rgb8(encoding, arr)
    assert rgb.shape == (2, 4, 3) and rgb.dtype == np.uint8
    np.testing.assert_allclose(rgb.astype(np.int32), expected_rgb(), atol=1)


def pillow_size(data: bytes) -> tuple[int, int]:
    """(width, height) as Pillow reads it from the header (its own bomb guard switched off)."""
    limit, PILImage.MAX_IMAGE_PIXELS = PILImage.MAX_IMAGE_PIXELS, None
    try:
        return PILImage.open(io.BytesIO(data)).size
    finally:
        PILImage.MAX_IMAGE_PIXELS = limit


def _jpeg(w=16, h=16, **flags) -> bytes:
    rgb = np.ascontiguousarray(photo("astronaut")[:h, :w])
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if flags.get("progressive") else []
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    assert ok
    return buf.tobytes()


def _png(w=16, h=16) -> bytes:
    ok, buf = cv2.imencode(".png", photo("astronaut")[:h, :w])
    assert ok
    return buf.tobytes()


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG whose SOF0 frame header is patched to claim width x height."""
    b = bytearray(_jpeg())
    i = b.index(b"\xff\xc0")  # SOF0: FF C0, length(2), precision(1), height(2), width(2)
    b[i + 5:i + 9] = struct.pack(">HH", height, width)
    return bytes(b)


def png_claiming(width: int, height: int) -> bytes:
    """A real small PNG whose IHDR is patched to width x height, with a valid CRC (libpng
    checks it, so the header is believed)."""
    b = bytearray(_png())
    assert b[12:16] == b"IHDR"
    b[16:24] = struct.pack(">II", width, height)
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))
    return bytes(b)


@pytest.mark.parametrize("data", [_jpeg(200, 120), _jpeg(200, 120, progressive=True), _png(200, 120),
                                  jpeg_claiming(30000, 30000), png_claiming(20000, 20000)],
                         ids=["jpeg", "progressive", "png", "jpeg-bomb", "png-bomb"])
def test_compressed_size_matches_pillow(data):
    assert compressed_size(data) == pillow_size(data)  # Pillow reads headers only


@pytest.mark.parametrize("make, w, h", [(jpeg_claiming, 30000, 30000), (png_claiming, 20000, 20000)])
def test_decompression_bomb_rejected_before_decoding(make, w, h):
    data = make(w, h)
    assert len(data) < 2000 and pillow_size(data) == (w, h)  # a real bomb
    t0 = time.perf_counter()
    with pytest.raises(ImageFormatError, match=f"header says {w}x{h}, over the"):
        decode_compressed(data, "jpeg")
    assert time.perf_counter() - t0 < 0.1  # nothing was decoded (cv2 took seconds and GBs)


def test_decode_compressed_real_and_garbage():
    rgb = photo("astronaut")[:64, :48]
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(decode_compressed(buf.tobytes(), "png"), rgb)  # lossless round trip
    with pytest.raises(ImageFormatError, match="neither JPEG nor PNG"):
        decode_compressed(b"GIF89a" + bytes(100))
    with pytest.raises(ImageFormatError, match="JPEG without a frame"):
        decode_compressed(b"\xff\xd8\xff\xd9")
    with pytest.raises(ImageFormatError, match="no data"):
        decode_compressed(b"")
