"""Camera model from sensor_msgs/CameraInfo fields (ROS-free), after image_geometry.

Pixels: x right, y down; 3D: the camera's optical frame (x right, y down, z forward), metres.

* Raw images (``image_raw``): intrinsics ``K`` and distortion ``D``.
* Rectified images (``image_rect*``, image_proc): the projection matrix ``P`` (fx', fy',
  cx', cy' = P[0,0], P[1,1], P[0,2], P[1,2]) and no distortion: image_proc publishes the
  rectified image with the *raw* CameraInfo (D != 0), so using K and D there would undistort
  twice. ``P``'s Tx/Ty (stereo baseline) and ``R`` (stereo rectification rotation) are
  ignored: a monocular rectified camera has Tx = Ty = 0 and R = I.
* Distortion models: ``plumb_bob`` (k1 k2 p1 p2 k3) and ``rational_polynomial`` (k1 k2 p1 p2
  k3 k4 k5 k6) through cv2.projectPoints / cv2.undistortPointsIter (OpenCV's model, 4, 5, 8,
  12 or 14 coefficients); ``equidistant`` (fisheye, k1..k4) through cv2.fisheye.*.
* Binning and ROI (REP-104): the sensor image is cropped to ``roi`` (full-resolution,
  unbinned pixels), then binned, so the image is (roi.width // binning_x) x
  (roi.height // binning_y) and cx' = (cx - roi.x_offset) / binning_x, fx' = fx / binning_x
  (likewise y), exactly as image_geometry and rviz's depth cloud do (no half-pixel shift).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


class CameraModelError(ValueError):
    """CameraInfo that cannot describe a usable camera (the message says what and how to fix it)."""


# distortion_model -> accepted numbers of coefficients
DISTORTION_MODELS: dict[str, tuple[int, ...]] = {
    "plumb_bob": (0, 4, 5, 8, 12, 14),  # OpenCV order; ROS publishes 5
    "rational_polynomial": (0, 4, 5, 8, 12, 14),  # ROS publishes 8
    "equidistant": (0, 4),  # fisheye k1..k4
}
# plausible focal length, in units of the image's larger side (hfov ~179.4 deg .. ~0.06 deg)
FOCAL_RANGE = (0.005, 1000.0)
# plausible principal point: within one image size outside the sensor image on each side
PRINCIPAL_MARGIN = 1.0
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)


def _fmt(a) -> str:
    return np.array2string(np.asarray(a, np.float64).reshape(-1), precision=6, separator=", ",
                           max_line_width=10_000)


def _check_intrinsics(M: np.ndarray, name: str, width: int, height: int) -> None:
    """M: 3 x 3 (K, or P's left 3 x 3) of a width x height (full sensor) image."""
    if not np.isfinite(M).all():
        raise CameraModelError(f"CameraInfo {name} contains NaN/inf ({_fmt(M)}); the driver "
                               "published a broken calibration: recalibrate or fix its camera_info_url")
    if M[0, 0] <= 0 or M[1, 1] <= 0:
        if name == "K":
            raise CameraModelError("camera not calibrated: CameraInfo K has fx/fy <= 0 (all zeros?); "
                                   "calibrate the camera or publish its intrinsics")
        raise CameraModelError(f"rectified input needs CameraInfo P, but P has fx/fy <= 0 ({_fmt(M)}); "
                               "publish P (camera_calibration writes it) or set rectified:=false "
                               "if the image is not rectified")
    if not np.allclose(M[2], (0, 0, 1), atol=1e-6):
        raise CameraModelError(f"CameraInfo {name}'s last row is {_fmt(M[2])}, must be [0, 0, 1]")
    size = max(width, height)
    lo, hi = FOCAL_RANGE[0] * size, FOCAL_RANGE[1] * size
    if not (lo <= M[0, 0] <= hi and lo <= M[1, 1] <= hi):
        raise CameraModelError(f"CameraInfo {name} has implausible focal lengths fx={M[0, 0]:.6g}, "
                               f"fy={M[1, 1]:.6g} px for a {width}x{height} image (expected "
                               f"{lo:.3g}..{hi:.3g} px); check the calibration is in pixels of "
                               "this resolution and width/height are right")
    m = PRINCIPAL_MARGIN
    if not (-m * width <= M[0, 2] <= (1 + m) * width and -m * height <= M[1, 2] <= (1 + m) * height):
        raise CameraModelError(f"CameraInfo {name} principal point (cx={M[0, 2]:.6g}, "
                               f"cy={M[1, 2]:.6g}) is far outside the {width}x{height} image; "
                               "check the calibration")


@dataclass(frozen=True)
class PinholeCamera:
    """The camera that took one image (roi and binning already applied).

    width, height: the image's size in px. K: (3, 3) float64 intrinsics of this image (K or
    P's left 3 x 3, adjusted for roi and binning). D: (N,) float64 distortion coefficients
    (empty or zeros: none). distortion_model: plumb_bob | rational_polynomial | equidistant.
    rectified: the image is rectified (K came from P, D is empty). binning: (bx, by) >= 1;
    roi: (x_offset, y_offset, width, height) in full-resolution pixels (informational).
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    distortion_model: str = "plumb_bob"
    rectified: bool = False
    binning: tuple[int, int] = (1, 1)
    roi: tuple[int, int, int, int] = (0, 0, 0, 0)

    @classmethod
    def from_camera_info(cls, width: int, height: int, k, d, distortion_model: str = "plumb_bob",
                         p=None, binning_x: int = 0, binning_y: int = 0, roi=(0, 0, 0, 0),
                         rectified: bool = False) -> PinholeCamera:
        """Build the model from CameraInfo fields (see the module docstring for the rules).

        width, height: CameraInfo width/height (full sensor resolution, unbinned). k: 9
        values (row-major K), d: distortion coefficients, p: 12 values (row-major P; needed
        only when ``rectified``). roi: (x_offset, y_offset, width, height), zeros = full.
        Raises CameraModelError with the reason and the fix.
        """
        if width <= 0 or height <= 0:
            raise CameraModelError(f"CameraInfo has zero size ({width}x{height})")
        try:
            K = np.asarray(k, np.float64).reshape(3, 3)
        except ValueError:
            raise CameraModelError(f"CameraInfo K has {np.size(k)} values, need 9") from None
        D = np.asarray(d, np.float64).reshape(-1)
        model = distortion_model or ""
        _check_intrinsics(K, "K", width, height)
        if rectified:
            pass  # D describes the raw image: not used for a rectified one
        elif not np.isfinite(D).all():
            raise CameraModelError(f"CameraInfo D contains NaN/inf ({_fmt(D)}); the driver published "
                                   "a broken calibration: recalibrate or fix its camera_info_url")
        elif np.any(D != 0):
            if model not in DISTORTION_MODELS:
                raise CameraModelError(f"distortion model {model!r} unsupported; use "
                                       f"{', '.join(DISTORTION_MODELS)} (or a rectified image)")
            if D.size not in DISTORTION_MODELS[model]:
                need = " or ".join(str(n) for n in DISTORTION_MODELS[model] if n)
                raise CameraModelError(f"CameraInfo D has {D.size} coefficients; {model} needs {need}")
        bx, by = max(int(binning_x), 1), max(int(binning_y), 1)
        x0, y0, rw, rh = (int(v) for v in roi)
        if rw == 0 or rh == 0:
            x0, y0, rw, rh = 0, 0, width, height
        if x0 < 0 or y0 < 0 or x0 + rw > width or y0 + rh > height:
            raise CameraModelError(f"CameraInfo roi (x_offset={x0}, y_offset={y0}, {rw}x{rh}) is "
                                   f"not inside the {width}x{height} sensor image")
        if rectified:
            if p is None or np.size(p) != 12:
                raise CameraModelError("rectified input needs CameraInfo P (12 values); publish P "
                                       "or set rectified:=false")
            M = np.asarray(p, np.float64).reshape(3, 4)[:, :3].copy()
            _check_intrinsics(M, "P", width, height)
            D = np.zeros(0)
        else:
            M = K.copy()
        # roi crop, then binning (REP-104; as image_geometry / rviz DepthCloud)
        M[0, 2] -= x0
        M[1, 2] -= y0
        M[0] /= bx
        M[1] /= by
        return cls(rw // bx, rh // by, M, D, model, bool(rectified), (bx, by), (x0, y0, rw, rh))

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def distorted(self) -> bool:
        """True when pixels need undistortion (non-zero D on an unrectified image)."""
        return bool(self.D.size and np.any(self.D != 0))

    @property
    def fisheye(self) -> bool:
        """True for a distorted equidistant (fisheye) model: use cv2.fisheye.*."""
        return self.distorted and self.distortion_model == "equidistant"

    def describe(self) -> str:
        """One line for logs: size, source of the intrinsics, model, binning / roi."""
        src = "P (rectified)" if self.rectified else f"K + D ({self.distortion_model or 'none'})" \
            if self.distorted else "K (no distortion)"
        extra = "" if self.binning == (1, 1) else f", binning {self.binning[0]}x{self.binning[1]}"
        if self.roi[2] and self.roi[:2] != (0, 0):
            extra += f", roi offset ({self.roi[0]}, {self.roi[1]})"
        return f"{self.width}x{self.height}, {src}, fx={self.fx:.1f} fy={self.fy:.1f}{extra}"

    def normalized(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels (N, 2) float (this image) -> undistorted normalised coordinates (N, 2): X/Z, Y/Z."""
        pts = np.ascontiguousarray(np.asarray(pixels, np.float64).reshape(-1, 1, 2))
        if len(pts) == 0:
            return np.zeros((0, 2))
        try:
            if not self.distorted:
                h = np.concatenate([pts.reshape(-1, 2), np.ones((len(pts), 1))], 1)
                return np.linalg.solve(self.K, h.T).T[:, :2]
            if self.fisheye:
                D = self.D.reshape(4, 1)
                try:
                    out = cv2.fisheye.undistortPoints(pts, self.K, D, criteria=_UNDISTORT_CRITERIA)
                except TypeError:  # OpenCV < 4.7 has no criteria argument
                    out = cv2.fisheye.undistortPoints(pts, self.K, D)
                return out.reshape(-1, 2)
            return cv2.undistortPointsIter(pts, self.K, self.D, None, None, _UNDISTORT_CRITERIA).reshape(-1, 2)
        except cv2.error as exc:
            raise CameraModelError(f"undistorting pixels failed with {self.describe()}: "
                                   f"{str(exc).strip().splitlines()[-1]}") from None

    def backproject(self, pixels: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Pixels (N, 2) with depth Z (N,) metres (along the optical axis) -> 3D (N, 3) metres, optical frame."""
        xy = self.normalized(pixels)
        z = np.asarray(depth, np.float64).reshape(-1)
        return np.column_stack([xy * z[:, None], z])

    def project(self, points: np.ndarray) -> np.ndarray:
        """3D points (N, 3) metres, optical frame -> pixels (N, 2) of this image (distortion
        applied); NaN for points not in front of the camera (Z <= 0)."""
        pts = np.asarray(points, np.float64).reshape(-1, 3)
        out = np.full((len(pts), 2), np.nan)
        front = pts[:, 2] > 0
        if not front.any():
            return out
        p = np.ascontiguousarray(pts[front].reshape(-1, 1, 3))
        r0 = np.zeros(3)
        try:
            if not self.distorted:
                h = p.reshape(-1, 3) @ self.K.T
                out[front] = h[:, :2] / h[:, 2:3]
            elif self.fisheye:
                px, _ = cv2.fisheye.projectPoints(p, r0, r0, self.K, self.D.reshape(4, 1))
                out[front] = px.reshape(-1, 2)
            else:
                px, _ = cv2.projectPoints(p, r0, r0, self.K, self.D)
                out[front] = px.reshape(-1, 2)
        except cv2.error as exc:
            raise CameraModelError(f"projecting points failed with {self.describe()}: "
                                   f"{str(exc).strip().splitlines()[-1]}") from None
        return out


def rectified_from_topic(topic: str) -> bool:
    """``rectified: auto``: is the image topic a rectified one (image_proc's naming)?

    True when a ``/``-separated segment of the resolved topic has a ``_``-separated word
    starting with ``rect``: /cam/image_rect, /cam/image_rect_color/compressed,
    /stereo/rectified/image. Not /direct_cam/image_raw ("direct" is not a word "rect...").
    """
    return any(word.startswith("rect") for seg in topic.split("/") for word in seg.split("_"))


def intrinsics_match(a: PinholeCamera, b: PinholeCamera, focal_tol: float = 0.01,
                     centre_tol: float = 0.01) -> str | None:
    """Why two cameras do not describe the same image geometry, or None if they do.

    Same size, fx/fy within ``focal_tol`` (relative), cx/cy within ``centre_tol`` x the image
    size (at least 1 px). Used to check that a depth image is aligned to the colour image.
    """
    if (a.width, a.height) != (b.width, b.height):
        return f"size {b.width}x{b.height} vs {a.width}x{a.height}"
    df = max(abs(a.fx - b.fx) / a.fx, abs(a.fy - b.fy) / a.fy)
    tol_c = max(centre_tol * max(a.width, a.height), 1.0)
    dc = max(abs(a.cx - b.cx), abs(a.cy - b.cy))
    if df > focal_tol or dc > tol_c:
        return (f"fx={b.fx:.1f} fy={b.fy:.1f} cx={b.cx:.1f} cy={b.cy:.1f} vs fx={a.fx:.1f} "
                f"fy={a.fy:.1f} cx={a.cx:.1f} cy={a.cy:.1f}")
    return None


def default_camera(width: int, height: int, hfov_deg: float = 60.0) -> PinholeCamera:
    """Plausible intrinsics for an uncalibrated webcam / photo: centred, square pixels."""
    f = (width / 2) / np.tan(np.radians(hfov_deg) / 2)
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])
    return PinholeCamera(width, height, K, np.zeros(5))
