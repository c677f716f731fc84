"""demo_source: publish a real photo, an image / video file or a camera as Image + CameraInfo.

source: ``astronaut`` / ``camera`` (scikit-image's real photos), a path to an image or a
video file, or ``v4l2:N`` / ``N`` for a camera through OpenCV. Intrinsics are plausible
(centred principal point, ``hfov_deg`` horizontal field of view) unless the camera is
calibrated elsewhere; the optical frame is ``frame_id``.
"""
from __future__ import annotations

if __name__ == "__main__":  # `python -m`: a Ctrl-C while the modules below import exits quietly
    from pose_ros.ros.run import quiet_sigint

    quiet_sigint()

import sys
from pathlib import Path

import cv2
import numpy as np
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from pose_ros.core.camera import default_camera

from .convert import camera_info_msg, rgb_to_image
from .qos import SENSOR_QOS
from .run import run_node

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


class FrameSource:
    """Yields RGB uint8 frames from a photo name, a file or a camera index."""

    def __init__(self, source: str, loop: bool = True, width: int = 0, height: int = 0):
        self.loop = loop
        self.size = (width, height)
        self.cap = None
        self.still = None
        if source in ("astronaut", "camera"):
            import skimage.data

            img = getattr(skimage.data, source)()
            self.still = np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]
        elif source.startswith("v4l2:") or source.isdigit():
            self.cap = cv2.VideoCapture(int(source.split(":")[-1]))
            if not self.cap.isOpened():
                raise ValueError(f"cannot open camera {source!r}")
        else:
            path = Path(source).expanduser()
            if not path.is_file():
                raise ValueError(f"source {source!r} is not astronaut, camera, a camera index or a file")
            if path.suffix.lower() in VIDEO_SUFFIXES:
                self.cap = cv2.VideoCapture(str(path))
                if not self.cap.isOpened():
                    raise ValueError(f"cannot open video {path}")
            else:
                bgr = cv2.imread(str(path))
                if bgr is None:
                    raise ValueError(f"cannot read image {path}")
                self.still = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if self.still is not None:
            self.still = self._resize(np.ascontiguousarray(self.still))

    def _resize(self, img: np.ndarray) -> np.ndarray:
        w, h = self.size
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA) if w > 0 and h > 0 else img

    def read(self) -> np.ndarray | None:
        if self.still is not None:
            return self.still
        ok, bgr = self.cap.read()
        if not ok and self.loop:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self.cap.read()
        return self._resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)) if ok else None


class DemoSource(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("demo_source", **kwargs)
        d = self.declare_parameter
        source = d("source", "astronaut", ParameterDescriptor(
            description="astronaut | camera | image or video path | v4l2:N", read_only=True)).value
        rate = d("rate", 10.0, ParameterDescriptor(
            description="publish rate, Hz", floating_point_range=[FloatingPointRange(
                from_value=0.1, to_value=240.0)])).value
        self.frame_id = d("frame_id", "camera_color_optical_frame",
                          ParameterDescriptor(description="optical frame of the images")).value
        self.hfov = d("hfov_deg", 60.0, ParameterDescriptor(description="horizontal field of view")).value
        loop = d("loop", True, ParameterDescriptor(description="loop a video file")).value
        width = d("width", 0, ParameterDescriptor(description="resize to this width (0: keep)")).value
        height = d("height", 0, ParameterDescriptor(description="resize to this height (0: keep)")).value
        self.encoding = d("encoding", "rgb8", ParameterDescriptor(description="rgb8 or bgr8")).value
        self.src = FrameSource(source, loop, width, height)
        self.pub_image = self.create_publisher(Image, "image", SENSOR_QOS)
        self.pub_info = self.create_publisher(CameraInfo, "camera_info", SENSOR_QOS)
        self.count = 0
        self.create_timer(1.0 / rate, self._tick)

    def _tick(self) -> None:
        rgb = self.src.read()
        if rgb is None:
            self.get_logger().info("end of video", once=True)
            return
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.frame_id)
        img = rgb_to_image(rgb if self.encoding == "rgb8" else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), header)
        img.encoding = self.encoding
        info = camera_info_msg(default_camera(rgb.shape[1], rgb.shape[0], self.hfov), header)
        self.pub_info.publish(info)  # info first: the pose node pairs them by stamp
        self.pub_image.publish(img)
        self.count += 1


def main(argv: list[str] | None = None) -> int:
    # scikit-image's photo reader imports lazily (skimage.io, scipy, PIL) on first use: import it
    # here, while a Ctrl-C still means "exit quietly", not inside the node's construction
    import skimage.data
    import skimage.io  # noqa: F401

    return run_node(DemoSource, "demo_source", argv)


if __name__ == "__main__":
    sys.exit(main())
