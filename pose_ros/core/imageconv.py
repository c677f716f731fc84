"""sensor_msgs/Image fields -> numpy, without cv_bridge (ROS-free: takes plain fields).

Zero-copy where the layout allows it: the message buffer is viewed with ``np.frombuffer``
and row padding (``step``) is skipped with strides, not copied. Every malformed input raises
:class:`ImageFormatError` with a message that says what is wrong and how to fix it.
"""
from __future__ import annotations

import cv2
import numpy as np

MAX_PIXELS = 4096 * 4096  # larger frames are rejected (memory / latency guard)
# plausible depth range, metres (pose_node parameters min_depth / max_depth): 1e-40 m or 1 mm
# is not a real depth of a person, nor is 1 km
MIN_DEPTH, MAX_DEPTH = 0.1, 20.0


class ImageFormatError(ValueError):
    """An image message that cannot be interpreted."""


class DepthInvalidError(ImageFormatError):
    """A depth image without a single usable pixel (the caller can fall back to monocular 3D)."""


# encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3), "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4), "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1), "8UC1": (np.dtype(np.uint8), 1),
    "8UC3": (np.dtype(np.uint8), 3),
    "mono16": (np.dtype(np.uint16), 1), "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
    "yuv422": (np.dtype(np.uint8), 2), "uyvy": (np.dtype(np.uint8), 2),
    "yuv422_yuy2": (np.dtype(np.uint8), 2), "yuyv": (np.dtype(np.uint8), 2),
}


_YUV422 = ("yuv422", "uyvy", "yuv422_yuy2", "yuyv")


def image_array(encoding: str, width: int, height: int, step: int, is_bigendian: bool,
                data, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """View an Image message's buffer as (height, width[, channels]) in the encoding's dtype.

    data: the message's ``data`` (bytes, bytearray, array.array or memoryview). The result
    shares memory with ``data`` unless a byte swap was needed.
    """
    if encoding not in ENCODINGS:
        raise ImageFormatError(f"unsupported image encoding {encoding!r}; supported: "
                               f"{', '.join(ENCODINGS)}")
    if width <= 0 or height <= 0:
        raise ImageFormatError(f"image has zero size ({width}x{height})")
    if width * height > max_pixels:
        raise ImageFormatError(f"image {width}x{height} exceeds the {max_pixels} pixel limit; "
                               "resize it upstream (e.g. image_proc/resize)")
    dtype, ch = ENCODINGS[encoding]
    if encoding in _YUV422 and width % 2:
        raise ImageFormatError(f"{encoding} image has an odd width ({width}); 4:2:2 YUV packs two "
                               "pixels per U/V pair, so the width must be even: fix the driver's "
                               "resolution or crop to an even width")
    row = width * ch * dtype.itemsize
    if step < row:
        raise ImageFormatError(f"step {step} is smaller than width*channels*bytes = {row} "
                               f"for {encoding} {width}x{height}")
    buf = np.frombuffer(memoryview(data).cast("B"), np.uint8)
    if buf.size < step * (height - 1) + row:
        raise ImageFormatError(f"data has {buf.size} bytes, need step*height = {step * height} "
                               f"for {encoding} {width}x{height}")
    if step % dtype.itemsize == 0:  # zero-copy: typed view, row padding skipped by strides
        typed = buf[: buf.size // dtype.itemsize * dtype.itemsize].view(dtype)
        out = np.lib.stride_tricks.as_strided(typed, (height, width * ch), (step, dtype.itemsize),
                                              writeable=False)
    else:  # odd step: copy the rows out
        rows = np.lib.stride_tricks.as_strided(buf, (height, row), (step, 1), writeable=False)
        out = np.ascontiguousarray(rows).view(dtype)
    if dtype.itemsize > 1 and bool(is_bigendian) != (np.little_endian is False):
        out = out.byteswap().view(dtype.newbyteorder("="))  # copy, native order
    out = out.reshape(height, width, ch) if ch > 1 else out.reshape(height, width)
    return out


def to_rgb8(encoding: str, array: np.ndarray) -> np.ndarray:
    """Any supported colour/mono encoding -> RGB uint8 (H, W, 3) for the pose model."""
    if encoding in ("rgb8", "8UC3"):
        return array
    if encoding == "bgr8":
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    if encoding == "rgba8":
        return cv2.cvtColor(array, cv2.COLOR_RGBA2RGB)
    if encoding == "bgra8":
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGB)
    if encoding in ("mono8", "8UC1"):
        return cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
    if encoding in ("mono16", "16UC1"):
        return cv2.cvtColor((array >> 8).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    if encoding == "32FC1":
        raise ImageFormatError("32FC1 is a depth encoding; the colour input needs rgb8, bgr8, "
                               "mono8, yuv422 ... (remap `image` to a colour topic)")
    if encoding in ("yuv422", "uyvy"):
        return cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_YUV2RGB_UYVY)
    if encoding in ("yuv422_yuy2", "yuyv"):
        return cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_YUV2RGB_YUYV)
    raise ImageFormatError(f"encoding {encoding!r} cannot be converted to RGB")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic ...): not DHT (C4),
# JPG (C8) or DAC (CC), which share the C0-CF range
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def compressed_size(data) -> tuple[int, int]:
    """(width, height) from a JPEG's SOF segment or a PNG's IHDR chunk, read from the header
    without decoding. ImageFormatError for anything else (or a header that says nothing)."""
    if data[:8] == _PNG_SIGNATURE:
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageFormatError("PNG without an IHDR header chunk")
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 4 <= len(data):
            if data[i] != 0xFF:
                raise ImageFormatError(f"corrupt JPEG header (no marker at byte {i})")
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers, no length
                i += 2
                continue
            if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
                break
            length = int.from_bytes(data[i + 2:i + 4], "big")
            if marker in _JPEG_SOF and i + 9 <= len(data):
                height = int.from_bytes(data[i + 5:i + 7], "big")
                width = int.from_bytes(data[i + 7:i + 9], "big")
                return width, height
            i += 2 + length
        raise ImageFormatError("JPEG without a frame (SOF) header")
    raise ImageFormatError(f"neither JPEG nor PNG (starts with {bytes(data[:8])!r}); "
                           "use image_transport's compressed format (jpeg or png)")


def decode_compressed(data, fmt: str = "", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/CompressedImage data (jpeg/png) -> RGB uint8 (H, W, 3).

    The size is read from the header first: an image claiming more than ``max_pixels``
    (e.g. a 631-byte JPEG saying 30000x30000) is rejected before OpenCV allocates for it."""
    buf = np.frombuffer(memoryview(data).cast("B"), np.uint8)
    if buf.size == 0:
        raise ImageFormatError("compressed image has no data")
    try:
        width, height = compressed_size(memoryview(buf))
    except ImageFormatError as exc:
        raise ImageFormatError(f"compressed image ({fmt or 'unknown format'}, {buf.size} bytes) could not "
                               f"be decoded: {exc}") from None
    if width * height > max_pixels:
        raise ImageFormatError(f"compressed image header says {width}x{height}, over the {max_pixels} "
                               "pixel limit; resize it upstream (the header is read before decoding)")
    if width == 0 or height == 0:
        raise ImageFormatError(f"compressed image header says {width}x{height} (zero size)")
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise ImageFormatError(f"compressed image ({fmt or 'unknown format'}, {buf.size} bytes) "
                               "could not be decoded as jpeg/png")
    if img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise ImageFormatError(f"decoded image {img.shape[1]}x{img.shape[0]} exceeds the pixel limit")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def depth_to_metres(encoding: str, array: np.ndarray, min_depth: float = MIN_DEPTH,
                    max_depth: float = MAX_DEPTH) -> np.ndarray:
    """Depth image (H, W) -> float32 (H, W) metres, NaN where invalid.

    16UC1 / mono16 are millimetres (REP-118), 32FC1 is metres. Invalid: 0, NaN, inf and any
    value outside the plausible range [min_depth, max_depth] metres (1e-40 m or 1 mm is not a
    real depth). A unit check rejects the common mix-up: a 32FC1 image whose valid values look
    like millimetres, or a 16UC1 image whose values look like metres (ImageFormatError).
    Raises DepthInvalidError when no pixel is left (the message says why).
    """
    if encoding in ("16UC1", "mono16"):
        d = array.astype(np.float32) * 1e-3
        valid = array > 0
        if valid.any() and np.median(array[valid]) < 20:
            raise ImageFormatError("16UC1 depth looks like metres (median < 20 mm); 16UC1 must "
                                   "be millimetres (REP-118), metres belong in 32FC1")
    elif encoding == "32FC1":
        d = array.astype(np.float32, copy=True)
        valid = np.isfinite(d) & (d > 0)
        if valid.any() and np.median(d[valid]) > 100:
            raise ImageFormatError("32FC1 depth looks like millimetres (median > 100); 32FC1 "
                                   "must be metres (REP-118), millimetres belong in 16UC1")
    else:
        raise ImageFormatError(f"depth encoding {encoding!r} unsupported; use 16UC1 (mm) or 32FC1 (m)")
    if not valid.any():
        raise DepthInvalidError("depth image has no valid pixels (all 0 / NaN / inf)")
    plausible = valid & (d >= min_depth) & (d <= max_depth)
    if not plausible.any():
        v = d[valid]
        raise DepthInvalidError(
            f"depth image has no pixel in the plausible range [{min_depth:g}, {max_depth:g}] m "
            f"(its valid values span {float(v.min()):.3g}..{float(v.max()):.3g} m): not a real "
            "depth; check the driver's depth units/scale, or the min_depth / max_depth parameters")
    d[~plausible] = np.nan
    return d
