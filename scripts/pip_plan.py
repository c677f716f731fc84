#!/usr/bin/env python3
"""The pip requirement list and constraints for one Python version, with or without a ROS distro.

Two jobs, both pure logic (no install happens here):

* **Marker evaluation for another Python.** pip evaluates environment markers
  (``numpy==2.2.6; python_version < "3.11"``) against the interpreter that runs pip, even with
  ``--python-version`` (pypa/pip#11010, #13296). To check the pins for Python 3.10 or 3.12 from a
  3.11 machine (``pip install --dry-run --python-version ...``, test/test_requirements.py), the
  top-level markers are evaluated here for the target version and the result is written without
  markers.
* **Distro mode.** With a ROS distro sourced, the venv sees the distro's packages
  (``--system-site-packages``). cv_bridge and other compiled extensions are built against the
  distro's numpy, so a pip numpy in the venv must never shadow it. Every package in
  :data:`DISTRO_PROVIDES` that the distro already provides is dropped from the requirements and,
  where its version is known, pinned in the constraints (``numpy==1.21.5``), so pip either finds
  versions of the remaining packages that work with it or fails naming the conflict, instead of
  silently installing a second numpy. When no such versions exist (Ubuntu 22.04's numpy 1.21.5
  against onnxruntime's ``numpy>=1.21.6``), the compat constraints allow a newer numpy of the
  same major version only (ABI-compatible with the distro's compiled extensions).

Usage (setup_env.sh's distro mode)::

    python scripts/pip_plan.py --detect -r requirements/distro.txt -r requirements/dev.txt \\
        --out-requirements req.txt --out-constraints cons.txt
    pip install -r req.txt -c cons.txt

``--provided numpy=1.21.5 --provided cv2`` replaces the detection (what a distro would provide;
used by the tests to model Humble / Jazzy on this machine).
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

try:
    from packaging.markers import Marker
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version
except ImportError:  # a bare venv: pip always carries packaging
    from pip._vendor.packaging.markers import Marker  # type: ignore[no-redef]
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement  # type: ignore[no-redef]
    from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[no-redef]
    from pip._vendor.packaging.version import InvalidVersion, Version  # type: ignore[no-redef]

# pip distribution name -> (import name, whether the import's __version__ is the pip version):
# compiled against numpy or platform builds (JetPack's torch), and the rosdep keys of package.xml.
# A distro copy of any of these wins over the requirement files. OpenCV's pip wheels are named
# opencv-python(-headless) while the distro's cv2 has no pip metadata of that name, so cv2 only
# drops the requirement and is never pinned (the same for onnxruntime-gpu's onnxruntime module).
DISTRO_PROVIDES: dict[str, tuple[str, bool]] = {
    "numpy": ("numpy", True),
    "scipy": ("scipy", True),
    "opencv-python-headless": ("cv2", False),
    "opencv-python": ("cv2", False),
    "torch": ("torch", True),
    "matplotlib": ("matplotlib", True),
    "scikit-image": ("skimage", True),
    "pyyaml": ("yaml", True),
    "transforms3d": ("transforms3d", True),
    "tqdm": ("tqdm", True),
    "flatbuffers": ("flatbuffers", True),
    # any onnxruntime build (Jetson: NVIDIA's onnxruntime-gpu wheel) provides the module: keep it
    "onnxruntime": ("onnxruntime", False),
}

# NumPy's C ABI is backward compatible within a major version: extensions built against the
# distro's numpy 1.21 (cv_bridge, ...) run with numpy 1.26, never with 2.x. Ubuntu 22.04 (Humble,
# JetPack 6) ships numpy 1.21.5 while every onnxruntime release for Python 3.10 asks for >= 1.21.6
# (test/test_requirements.py), so there the fallback is a newer numpy 1.x, never 2.x.
ABI_COMPATIBLE_UPGRADE = {"numpy"}


def marker_environment(python_version: str) -> dict[str, str]:
    """PEP 508 marker environment of this machine with the Python version replaced.

    ``python_version`` is "3.10" or "3.10.12"; ``python_full_version`` becomes "3.10.0" when no
    micro version is given (markers here only compare major.minor).
    """
    parts = python_version.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"python version {python_version!r}: expected e.g. 3.10 or 3.10.12")
    env = {
        "implementation_name": sys.implementation.name,
        "implementation_version": python_version,
        "os_name": "posix" if sys.platform != "win32" else "nt",
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": ".".join((parts + ["0"])[:3]),
        "python_version": ".".join(parts[:2]),
        "sys_platform": sys.platform,
    }
    return env


def read_lines(path: str | Path, _seen: set[Path] | None = None) -> list[str]:
    """Requirement lines of ``path`` (comments and blanks removed, ``-r other.txt`` followed)."""
    path = Path(path).resolve()
    seen = _seen if _seen is not None else set()
    if path in seen:
        return []
    seen.add(path)
    out: list[str] = []
    for raw in path.read_text().splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        m = re.match(r"^(-r|--requirement)\s*(\S+)$", line)
        if m:
            out += read_lines(path.parent / m.group(2), seen)
        elif line.startswith("-"):
            raise ValueError(f"{path}: option lines are not supported here: {line!r}")
        else:
            out.append(line)
    return out


@dataclass
class Plan:
    """What to hand pip: ``pip install -r requirements -c constraints``."""

    requirements: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    # the same with the distro's numpy widened to its major version (``numpy>=1.21.5,<2``): the
    # fallback when a package needs a newer numpy than the distro's (see ABI_COMPATIBLE_UPGRADE)
    compat_constraints: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # provided by the distro, with the reason

    @staticmethod
    def text(lines: list[str]) -> str:
        return "".join(f"{x}\n" for x in lines)


def _applies(req: Requirement, env: dict[str, str]) -> bool:
    return req.marker is None or Marker(str(req.marker)).evaluate(env)


def _plain(req: Requirement) -> str:
    """The requirement without its (already evaluated) marker."""
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras}{req.specifier}"


def plan(requirements: list[str], python_version: str, provided: dict[str, str | None] | None = None,
         constraints: list[str] = ()) -> Plan:
    """Evaluate markers for ``python_version`` and keep the distro's packages.

    requirements / constraints: requirement lines (PEP 508, markers allowed).
    provided: pip name (or import name, e.g. "cv2") -> installed version (None: importable, version
        unknown) of packages the distro already provides; None or {} for the bare-machine mode.
    Returns the marker-free requirement and constraint lines. A provided package's requirement is
    dropped (even when the distro's version is outside its range: the platform build wins, e.g.
    JetPack's torch; ``dropped`` says so) and, when its version is known and valid, it is pinned
    with ``==``; constraint lines naming a provided package are replaced by that pin. Raises
    ValueError for a line pip would also reject.
    """
    env = marker_environment(python_version)
    provided = provided or {}
    by_import = {imp: name for name, (imp, _) in DISTRO_PROVIDES.items()}
    have: dict[str, str | None] = {}  # canonical pip name -> version
    for key, ver in provided.items():
        names = [n for n, (imp, _) in DISTRO_PROVIDES.items() if imp == key] if key in by_import else [key]
        for n in names:
            have[canonicalize_name(n)] = ver
    out = Plan()
    pinned: set[str] = set()

    def pin(name: str) -> None:
        ver = have[name]
        version_is_pip = DISTRO_PROVIDES.get(name, (None, True))[1]
        if name in pinned or ver is None or not version_is_pip:
            return
        try:
            Version(ver)
        except InvalidVersion:
            return
        pinned.add(name)
        out.constraints.append(f"{name}=={ver}")
        if name in ABI_COMPATIBLE_UPGRADE:
            out.compat_constraints.append(f"{name}>={ver},<{Version(ver).major + 1}")
        else:
            out.compat_constraints.append(f"{name}=={ver}")

    def parse(line: str) -> Requirement:
        try:
            return Requirement(line)
        except InvalidRequirement as exc:
            raise ValueError(f"bad requirement line {line!r}: {exc}") from exc

    for line in requirements:
        req = parse(line)
        if not _applies(req, env):
            continue
        name = canonicalize_name(req.name)
        if name in have:
            ver = have[name]
            note = f"{_plain(req)} (distro provides {ver or 'it'})"
            if ver is not None and DISTRO_PROVIDES.get(name, (None, True))[1] and req.specifier \
                    and not req.specifier.contains(ver, prereleases=True):
                # e.g. JetPack's torch 2.5.0a0+nv24.08 against torch==2.13.0: the platform build wins
                note += f"; outside {req.specifier}, kept anyway: compiled ROS packages depend on it"
            out.dropped.append(note)
            pin(name)
            continue
        out.requirements.append(_plain(req))
    for line in constraints:
        req = parse(line)
        if not _applies(req, env):
            continue
        name = canonicalize_name(req.name)
        if name in have:
            pin(name)
        else:
            out.constraints.append(_plain(req))
            out.compat_constraints.append(_plain(req))
    for name in sorted(have):  # pin what the distro has even when only a dependency needs it
        pin(name)
    return out


def detect_provided() -> dict[str, str | None]:
    """Packages of :data:`DISTRO_PROVIDES` importable by this interpreter, with their versions.

    The version comes from the pip metadata (Debian's python3-* packages ship it) or else from
    the module's ``__version__``; None when neither exists.
    """
    found: dict[str, str | None] = {}
    for name, (module, version_is_pip) in DISTRO_PROVIDES.items():
        if importlib.util.find_spec(module) is None:
            continue
        ver = None
        if version_is_pip:
            try:
                ver = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                try:
                    ver = getattr(__import__(module), "__version__", None)
                except Exception:  # a broken install: importable, version unknown
                    ver = None
        found[name if version_is_pip else module] = ver
    return found


def _provided_arg(text: str) -> tuple[str, str | None]:
    name, _, ver = text.partition("=")
    return name.strip(), (ver.strip() or None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-r", "--requirement", action="append", default=[], help="requirement file")
    ap.add_argument("-c", "--constraint", action="append", default=[], help="constraint file")
    ap.add_argument("--python-version", default=f"{sys.version_info[0]}.{sys.version_info[1]}",
                    help="target Python (default: this one)")
    ap.add_argument("--detect", action="store_true",
                    help="keep what this interpreter already imports (distro mode)")
    ap.add_argument("--provided", action="append", default=[], metavar="NAME[=VERSION]",
                    help="a package the distro provides (instead of --detect), e.g. numpy=1.21.5 or cv2")
    ap.add_argument("--out-requirements", required=True)
    ap.add_argument("--out-constraints", required=True)
    ap.add_argument("--out-compat-constraints",
                    help="also write the fallback constraints (the distro's numpy widened to its major)")
    a = ap.parse_args(argv)
    provided = detect_provided() if a.detect else {}
    provided.update(dict(_provided_arg(p) for p in a.provided))
    reqs = [x for f in a.requirement for x in read_lines(f)]
    cons = [x for f in a.constraint for x in read_lines(f)]
    try:
        p = plan(reqs, a.python_version, provided, cons)
    except ValueError as exc:
        print(f"pip_plan: {exc}", file=sys.stderr)
        return 2
    Path(a.out_requirements).write_text(Plan.text(p.requirements))
    Path(a.out_constraints).write_text(Plan.text(p.constraints))
    if a.out_compat_constraints:
        Path(a.out_compat_constraints).write_text(Plan.text(p.compat_constraints))
    for d in p.dropped:
        print(f"pip_plan: keeping the distro's copy: {d}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
