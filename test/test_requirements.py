"""The requirement files resolve for Python 3.10 and 3.12, distro mode keeps the distro's numpy,
and package.xml, setup.py and requirements/ agree.

The resolution tests ask the registry (``pip install --dry-run --ignore-installed
--only-binary=:all: --python-version X --report``): nothing is installed. Python 3.11 is the
version `make env` installs these files into for real (with ``pip check``), so it is not repeated.
pip evaluates environment markers against the interpreter running it, never against
``--python-version`` (pypa/pip#11010), so the top-level markers are evaluated by
scripts/pip_plan.py for the target version first (markers of transitive dependencies are still
evaluated for this 3.11 interpreter: e.g. pytest's ``tomli; python_version < "3.11"`` is not
checked for 3.10).
"""
from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from packaging.specifiers import SpecifierSet

from conftest import ROOT

REQ = ROOT / "requirements"
_spec = importlib.util.spec_from_file_location("pip_plan", ROOT / "scripts" / "pip_plan.py")
pip_plan = importlib.util.module_from_spec(_spec)
sys.modules["pip_plan"] = pip_plan  # dataclasses look their module up
_spec.loader.exec_module(pip_plan)

# What rosdep installs on Ubuntu for the keys of package.xml, as far as the resolution depends on
# it (numpy: jammy 1.21.5, noble 1.26.4; scipy: jammy 1.8.0, noble 1.11.4). The other packages
# are only importable (dropped from the pip step, not pinned), as on a real distro.
DISTRO_ONLY_IMPORTABLE = ["cv2", "skimage", "matplotlib", "yaml", "tqdm", "transforms3d", "flatbuffers"]
HUMBLE = {"numpy": "1.21.5", "scipy": "1.8.0", **dict.fromkeys(DISTRO_ONLY_IMPORTABLE)}
JAZZY = {"numpy": "1.26.4", "scipy": "1.11.4", **dict.fromkeys(DISTRO_ONLY_IMPORTABLE)}
SDIST_ONLY = ("empy",)  # pure Python, no wheel on PyPI: built once into a local wheel
PYPI_FILES = ["core.txt", "torch.txt", "dev.txt", "ros-pypi.txt"]
DISTRO_FILES = ["distro.txt", "dev.txt"]  # + torch.txt, whose resolution the pypi runs cover


def _lines(*names: str) -> list[str]:
    return [x for n in names for x in pip_plan.read_lines(REQ / n)]


def _scenarios() -> dict[str, tuple[str, list[str], list[str]]]:
    """name -> (python version, requirement lines, constraint lines), markers evaluated."""
    out = {}
    for v in ("3.10", "3.12"):
        p = pip_plan.plan(_lines(*PYPI_FILES), v, {}, _lines("constraints.txt"))
        out[f"pypi-{v}"] = (v, p.requirements, p.constraints)
    hum = pip_plan.plan(_lines(*DISTRO_FILES), "3.10", HUMBLE)
    out["humble-exact"] = ("3.10", hum.requirements, hum.constraints)
    out["humble-compat"] = ("3.10", hum.requirements, hum.compat_constraints)
    jaz = pip_plan.plan(_lines(*DISTRO_FILES), "3.12", JAZZY)
    out["jazzy-exact"] = ("3.12", jaz.requirements, jaz.constraints)
    return out


@pytest.fixture(scope="module")
def resolved(tmp_path_factory):
    """name -> (pip exit code, {package: version} from the report, pip's output,
    {package: Requires-Python}).

    All dry runs go concurrently (they wait on the network; the registry here serves no PEP 658
    metadata, so pip downloads every wheel: about 1-2 min in all, mostly the pypi runs).
    """
    tmp = tmp_path_factory.mktemp("dryrun")
    wheels = tmp / "wheels"
    cons = _lines("constraints.txt")
    for name in SDIST_ONLY:
        pin = next(c for c in cons if c.lower().startswith(name + "=="))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), pin],
                       check=True, capture_output=True, timeout=300)
    procs = {}
    for name, (v, reqs, cons) in _scenarios().items():
        (tmp / f"{name}.req").write_text(pip_plan.Plan.text(reqs))
        (tmp / f"{name}.con").write_text(pip_plan.Plan.text(cons))
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
               "--only-binary=:all:", "--python-version", v, "--target", str(tmp / f"target-{name}"),
               "--find-links", str(wheels), "--disable-pip-version-check",
               "--report", str(tmp / f"{name}.json"),
               "-r", str(tmp / f"{name}.req"), "-c", str(tmp / f"{name}.con")]
        log = open(tmp / f"{name}.log", "w")
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log)
    out = {}
    for name, (proc, log) in procs.items():
        rc = proc.wait(timeout=1200)
        log.close()
        text = "\n".join(x for x in (tmp / f"{name}.log").read_text().splitlines()
                         if "Downloading" not in x and "━" not in x and "is ignored" not in x)
        report = tmp / f"{name}.json"
        got, needs = {}, {}
        if rc == 0:
            for i in json.loads(report.read_text())["install"]:
                key = pip_plan.canonicalize_name(i["metadata"]["name"])
                got[key] = i["metadata"]["version"]
                needs[key] = i["metadata"].get("requires_python") or ""
        out[name] = (rc, got, text[-4000:], needs)
    return out


# Ubuntu 22.04 (Humble, JetPack 6) and 24.04 (Jazzy, Kilted) Pythons
FULL_VERSION = {"3.10": "3.10.12", "3.12": "3.12.3"}


def _python_ok(needs: dict[str, str], version: str) -> None:
    """pip does not check a pure-Python wheel's Requires-Python against --python-version when the
    index omits it (this one does): check the report's metadata here."""
    bad = {k: v for k, v in needs.items()
           if v and not SpecifierSet(v).contains(FULL_VERSION[version], prereleases=True)}
    assert not bad, f"Requires-Python excludes {version}: {bad}"


def _pins(lines: list[str]) -> dict[str, str]:
    return {pip_plan.canonicalize_name(x.split("==")[0]): x.split("==")[1] for x in lines if "==" in x}


@pytest.mark.parametrize("version", ["3.10", "3.12"])
def test_bare_machine_pins_resolve(resolved, version):
    rc, got, log, needs = resolved[f"pypi-{version}"]
    assert rc == 0, f"requirements/ do not resolve for Python {version}:\n{log}"
    _python_ok(needs, version)
    v, reqs, cons = _scenarios()[f"pypi-{version}"]
    for name, ver in _pins(reqs).items():  # every pin is what gets installed
        assert got[name] == ver or got[name].startswith(ver + "+"), (name, ver, got.get(name))
    assert got["numpy"].startswith("2.")  # the bare machine has no distro numpy to respect


def test_jazzy_keeps_the_distro_numpy(resolved):
    """Ubuntu 24.04's numpy 1.26.4 stays: the exact pin resolves (onnxruntime, onnx, LiteRT ...)."""
    rc, got, log, needs = resolved["jazzy-exact"]
    assert rc == 0, log
    _python_ok(needs, "3.12")
    assert got["numpy"] == "1.26.4" and got.get("scipy", "1.11.4") == "1.11.4"
    assert "onnxruntime" in got and "onnx" in got and "tflite" in got
    for provided in ("opencv-python-headless", "opencv-python", "scikit-image", "matplotlib", "pyyaml"):
        assert provided not in got, provided  # the distro's copy is used


def test_humble_numpy_needs_the_same_major_fallback(resolved):
    """Ubuntu 22.04's numpy 1.21.5 is older than what onnxruntime (>= 1.21.6 in every release for
    3.10) and ai-edge-litert ask for: the exact pin cannot resolve (pip names the package), the
    fallback installs a numpy 1.x, never 2.x."""
    rc, _, log, _ = resolved["humble-exact"]
    assert rc != 0 and re.search(r"\S+ \S+ depends on numpy\S*>=1\.2", log), log
    assert "numpy==1.21.5" in log
    rc, got, log, needs = resolved["humble-compat"]
    assert rc == 0, log
    _python_ok(needs, "3.10")
    major, minor = (int(x) for x in got["numpy"].split(".")[:2])
    assert major == 1 and minor >= 21, got["numpy"]
    assert got.get("scipy", "1.8.0") == "1.8.0" and "opencv-python-headless" not in got


# --- scripts/pip_plan.py: pure logic ------------------------------------------------------------

def test_markers_are_evaluated_for_the_target_python():
    lines = ['numpy==2.2.6; python_version < "3.11"', 'numpy==2.4.6; python_version >= "3.11"', "tqdm==4.70.1"]
    assert pip_plan.plan(lines, "3.10").requirements == ["numpy==2.2.6", "tqdm==4.70.1"]
    assert pip_plan.plan(lines, "3.12").requirements == ["numpy==2.4.6", "tqdm==4.70.1"]
    assert pip_plan.plan(lines, "3.11.4").requirements == ["numpy==2.4.6", "tqdm==4.70.1"]
    with pytest.raises(ValueError, match="python version"):
        pip_plan.plan(lines, "3")


def test_distro_packages_are_dropped_and_pinned():
    jetpack_torch = "2.5.0a0+872d972e41.nv24.08"  # NVIDIA's JetPack 6.1 wheel
    p = pip_plan.plan(["numpy>=1.21", "opencv-python-headless>=4.5.4,<5", "onnxruntime>=1.16", "torch==2.13.0"],
                      "3.10", {"numpy": "1.21.5", "cv2": "4.5.4", "torch": jetpack_torch},
                      constraints=["numpy==2.2.6", "protobuf==7.36.2"])
    assert p.requirements == ["onnxruntime>=1.16"]
    # numpy and the platform torch pinned exactly; cv2 is no pip distribution: never pinned
    assert sorted(p.constraints) == sorted(["numpy==1.21.5", "protobuf==7.36.2", f"torch=={jetpack_torch}"])
    assert "numpy>=1.21.5,<2" in p.compat_constraints and f"torch=={jetpack_torch}" in p.compat_constraints
    assert not any(c.startswith("opencv") for c in p.constraints + p.compat_constraints)
    assert len(p.dropped) == 3
    # Jetson: NVIDIA's onnxruntime-gpu provides the `onnxruntime` module; never add the CPU wheel
    p = pip_plan.plan(["onnxruntime>=1.16", "onnx>=1.14"], "3.10", {"onnxruntime": "1.23.0"})
    assert p.requirements == ["onnx>=1.14"] and p.constraints == []


def test_the_platform_build_wins_over_a_pin():
    p = pip_plan.plan(["torch==2.13.0", "numpy>=2"], "3.10", {"torch": "2.5.0a0+872d972e41.nv24.08",
                                                              "numpy": "1.21.5"})
    assert p.requirements == []
    assert any("torch==2.13.0" in d and "kept anyway" in d for d in p.dropped)
    assert any("numpy>=2" in d and "kept anyway" in d for d in p.dropped)


def test_detect_reads_this_interpreters_packages():
    import cv2
    import numpy
    found = pip_plan.detect_provided()
    assert found["numpy"] == numpy.__version__
    assert "cv2" in found and cv2.__version__  # importable, no pip pin
    assert "opencv-python-headless" not in found


def test_cli_writes_the_three_files(tmp_path):
    req = tmp_path / "r.txt"
    req.write_text("-r inc.txt\nscipy>=1.8  # comment\n")
    (tmp_path / "inc.txt").write_text('numpy>=1.21\nonnx==1.23.2; python_version >= "3.11"\n')
    out = [tmp_path / n for n in ("req", "exact", "compat")]
    rc = subprocess.run([sys.executable, str(ROOT / "scripts" / "pip_plan.py"), "-r", str(req),
                         "--python-version", "3.10", "--provided", "numpy=1.26.4",
                         "--out-requirements", str(out[0]), "--out-constraints", str(out[1]),
                         "--out-compat-constraints", str(out[2])], capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr
    assert out[0].read_text() == "scipy>=1.8\n"
    assert out[1].read_text() == "numpy==1.26.4\n" and out[2].read_text() == "numpy>=1.26.4,<2\n"
    assert "keeping the distro's copy: numpy>=1.21" in rc.stderr


# --- package.xml, setup.py and requirements/ agree -----------------------------------------------

def _package_keys() -> dict[str, str]:
    root = ET.parse(ROOT / "package.xml").getroot()
    return {e.text.strip(): e.tag for e in root if e.tag.endswith("depend")}


def test_package_xml_keys_follow_rosdep_conventions():
    """System keys are rosdep's apt keys (python3-..., never a *-pip key, which would pip-install
    into the system Python); torch is not a hard dependency. scripts/check_rosdep_keys.py checks
    the keys against rosdistro itself (README)."""
    keys = _package_keys()
    for key in keys:
        assert re.fullmatch(r"[a-z][a-z0-9_]*|python3-[a-z0-9][a-z0-9-]*", key), key
        assert not key.endswith("-pip"), key
    assert not {"python3-torch", "python3-pytorch-pip"} & set(keys)
    for need in ("python3-numpy", "python3-opencv", "python3-scipy", "python3-yaml", "python3-tqdm",
                 "python3-flatbuffers", "python3-transforms3d"):
        assert keys.get(need) == "exec_depend", need


def test_setup_py_matches_the_distro_requirements():
    call = next(n for n in ast.walk(ast.parse((ROOT / "setup.py").read_text()))
                if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg in ("install_requires", "extras_require")}
    assert sorted(kw["install_requires"]) == sorted(_lines("distro.txt"))
    assert not any(r.lower().startswith("torch") for r in kw["install_requires"])
    assert any(r.startswith("torch") for r in kw["extras_require"]["torch"])


def test_every_runtime_package_is_pinned_for_the_bare_machine():
    def names(lines):
        return {pip_plan.canonicalize_name(pip_plan.Requirement(x).name) for x in lines}
    assert names(_lines("distro.txt")) == names(_lines("core.txt"))
    assert names(_lines("torch.txt")) == {"torch", "smplx"}  # smplx: the SMPL parity reference, needs torch
    # pip-only packages (no apt rosdep key) come from distro.txt for distro users
    assert {"onnxruntime", "onnx", "tflite"} <= names(_lines("distro.txt"))
