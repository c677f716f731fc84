"""Default model files: MediaPipe BlazePose (Apache-2.0) from the ``mediapipe==0.10.14`` wheel.

No model hub is involved: ``pip download --no-deps mediapipe==0.10.14`` fetches the wheel
from the package registry, the two .tflite files are extracted, checked against pinned
sha256 sums and cached under ``~/.cache/pose_ros/models`` (``POSE_ROS_CACHE`` or
``cache_dir`` overrides the root).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

MEDIAPIPE_VERSION = "0.10.14"
# The .tflite files are identical in every platform wheel; ask for one fixed platform so
# the download is the same file everywhere (Jetson included).
_WHEEL_PLATFORM = ("--platform", "manylinux2014_x86_64", "--python-version", "311",
                   "--only-binary=:all:")


@dataclass(frozen=True)
class ModelFile:
    name: str
    member: str  # path inside the wheel
    sha256: str


DETECTOR = ModelFile("pose_detection.tflite", "mediapipe/modules/pose_detection/pose_detection.tflite",
                     "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c")
LANDMARK_FULL = ModelFile(
    "pose_landmark_full.tflite", "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
    "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f")
DEFAULT_MODELS = (DETECTOR, LANDMARK_FULL)


class ModelNotAvailableError(FileNotFoundError):
    """The default models are not cached and cannot be fetched."""


def cache_root(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("POSE_ROS_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pose_ros"


def models_dir(cache_dir: str | Path | None = None) -> Path:
    return cache_root(cache_dir) / "models"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cached_model(model: ModelFile, cache_dir: str | Path | None = None,
                 corrupt: list[str] | None = None) -> Path | None:
    """Path of a cached, checksum-valid model file, else None (a corrupt file is removed and
    its name appended to ``corrupt``)."""
    path = models_dir(cache_dir) / model.name
    if not path.is_file():
        return None
    if sha256_of(path) != model.sha256:
        path.unlink()
        if corrupt is not None:
            corrupt.append(model.name)
        return None
    return path


def _progress(iterable, total: int, desc: str, quiet: bool):
    if quiet:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit="file")


def fetch_models(cache_dir: str | Path | None = None, wheel: str | Path | None = None,
                 quiet: bool = False) -> dict[str, Path]:
    """Make sure the default models are cached; return {file name: path}.

    wheel: use this already-downloaded mediapipe wheel instead of running pip.
    Raises ModelNotAvailableError (with what to do) when the download fails.
    """
    have = {m.name: cached_model(m, cache_dir) for m in DEFAULT_MODELS}
    if all(have.values()):
        return have  # type: ignore[return-value]
    dest = models_dir(cache_dir)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pose_ros_fetch_") as tmp:
        if wheel is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   f"mediapipe=={MEDIAPIPE_VERSION}", *_WHEEL_PLATFORM, "-d", tmp]
            if not quiet:
                print(f"pose_ros: downloading mediapipe=={MEDIAPIPE_VERSION} from the package "
                      "registry for its BlazePose models (about 36 MB) ...", file=sys.stderr)
            proc = subprocess.run(cmd, stdout=sys.stderr if not quiet else subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
            wheels = list(Path(tmp).glob("mediapipe-*.whl"))
            if proc.returncode != 0 or not wheels:
                raise ModelNotAvailableError(
                    "could not download the default pose models (mediapipe=="
                    f"{MEDIAPIPE_VERSION} wheel): {proc.stderr.strip()[-400:]}\n"
                    "Fix: run `pose-ros fetch-models` on a machine with access to the package "
                    f"registry (or copy {dest} from one), pass `--wheel PATH` with a downloaded "
                    "mediapipe wheel, or give your own model files with --detector-model / "
                    "--landmark-model (.tflite or .onnx).")
            wheel = wheels[0]
        with zipfile.ZipFile(wheel) as zf:
            for model in _progress(DEFAULT_MODELS, len(DEFAULT_MODELS), "extracting models", quiet):
                if have[model.name]:
                    continue
                part = dest / (model.name + ".part")
                with zf.open(model.member) as src, open(part, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                digest = sha256_of(part)
                if digest != model.sha256:
                    part.unlink()
                    raise ModelNotAvailableError(
                        f"{model.member} in {Path(wheel).name} has sha256 {digest}, expected "
                        f"{model.sha256}: the wheel is not the pinned mediapipe=={MEDIAPIPE_VERSION}")
                part.replace(dest / model.name)
                have[model.name] = dest / model.name
    return have  # type: ignore[return-value]


def require_models(cache_dir: str | Path | None = None) -> dict[str, Path]:
    """Cached default models, or ModelNotAvailableError naming the command to run."""
    corrupt: list[str] = []
    have = {m.name: cached_model(m, cache_dir, corrupt) for m in DEFAULT_MODELS}
    missing = [n for n, p in have.items() if p is None and n not in corrupt]
    if missing or corrupt:
        what = []
        if corrupt:
            what.append(f"{', '.join(corrupt)} in {models_dir(cache_dir)} was corrupt (sha256 "
                        "mismatch, e.g. an interrupted copy) and has been deleted")
        if missing:
            what.append(f"{', '.join(missing)} not found in {models_dir(cache_dir)}")
        raise ModelNotAvailableError(
            f"pose model file(s): {'; '.join(what)}.\n"
            "Fix: run `pose-ros fetch-models` (downloads the mediapipe==0.10.14 wheel from the "
            "package registry and extracts its BlazePose models; offline: `pose-ros fetch-models "
            "--wheel PATH` with a downloaded mediapipe-0.10.14 wheel), or pass local model files "
            "(--detector-model / --landmark-model, node parameters detector_model / "
            "landmark_model; .tflite or .onnx).")
    return have  # type: ignore[return-value]
