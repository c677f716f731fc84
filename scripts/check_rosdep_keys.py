#!/usr/bin/env python3
"""Check every dependency key of package.xml against rosdistro (what `rosdep install` resolves).

* ROS package keys (rclpy, tf2_ros, ...) must be released in each distribution's
  ``<distro>/distribution.yaml`` (Humble, Jazzy, Kilted by default).
* System keys (python3-numpy, ...) must exist in ``rosdep/base.yaml`` or ``rosdep/python.yaml``
  and resolve on Ubuntu 22.04 (jammy: Humble, JetPack 6) and 24.04 (noble: Jazzy, Kilted) to
  apt packages, not to a pip install into the system Python.

Usage: ``python3 scripts/check_rosdep_keys.py /path/to/rosdistro`` (a checkout of
github.com/ros/rosdistro). Prints one line per key; exit status 1 when a key does not resolve.
"""
from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
UBUNTU = {"jammy": "22.04", "noble": "24.04"}


def package_keys(package_xml: Path) -> dict[str, str]:
    """key -> tag (depend, exec_depend, ...) for every dependency of a format-3 package.xml."""
    root = ET.parse(package_xml).getroot()
    return {e.text.strip(): e.tag for e in root if e.tag.endswith("depend") and e.text}


def resolve_system_key(rules: dict, release: str) -> str | None:
    """What rosdep installs for a system key on Ubuntu ``release``: "apt: a b", "pip: x" or None."""
    ubuntu = rules.get("ubuntu")
    if isinstance(ubuntu, dict) and not ({"apt", "pip", "packages"} & set(ubuntu)):
        ubuntu = ubuntu.get(release, ubuntu.get("*"))
    if ubuntu is None:
        return None
    if isinstance(ubuntu, list):
        return "apt: " + " ".join(ubuntu)
    if isinstance(ubuntu, dict):
        for installer in ("apt", "pip"):
            if installer in ubuntu:
                pk = ubuntu[installer].get("packages", []) if isinstance(ubuntu[installer], dict) else []
                return f"{installer}: " + " ".join(pk)
        if "packages" in ubuntu:
            return "apt: " + " ".join(ubuntu["packages"])
    return None


def released_packages(rosdistro: Path, distro: str) -> set[str]:
    data = yaml.safe_load((rosdistro / distro / "distribution.yaml").read_text())
    out: set[str] = set()
    for name, repo in (data.get("repositories") or {}).items():
        rel = repo.get("release")
        if rel:
            out.update(rel.get("packages") or [name])
    return out


def check(rosdistro: Path, package_xml: Path, distros: list[str]) -> list[tuple[str, bool, str]]:
    """(key, ok, how it resolves) for every dependency key of ``package_xml``."""
    rules: dict = {}
    for f in ("base.yaml", "python.yaml"):
        rules.update(yaml.safe_load((rosdistro / "rosdep" / f).read_text()))
    released = {d: released_packages(rosdistro, d) for d in distros}
    rows = []
    for key, tag in sorted(package_keys(package_xml).items()):
        if key in rules:
            how = {rel: resolve_system_key(rules[key], rel) for rel in UBUNTU}
            ok = all(h is not None and h.startswith("apt:") for h in how.values())
            rows.append((key, ok, f"{tag}, rosdep: " + "; ".join(f"{rel} -> {h}" for rel, h in how.items())))
        else:
            missing = [d for d in distros if key not in released[d]]
            ok = not missing
            rows.append((key, ok, f"{tag}, ROS package: " + (
                f"released in {', '.join(distros)}" if ok else f"NOT released in {', '.join(missing)}")))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rosdistro", type=Path, help="checkout of github.com/ros/rosdistro")
    ap.add_argument("--package-xml", type=Path, default=ROOT / "package.xml")
    ap.add_argument("--distros", default="humble,jazzy,kilted")
    a = ap.parse_args(argv)
    rows = check(a.rosdistro, a.package_xml, a.distros.split(","))
    for key, ok, how in rows:
        print(f"{'ok  ' if ok else 'FAIL'} {key}: {how}")
    bad = [k for k, ok, _ in rows if not ok]
    print(f"{len(rows) - len(bad)} of {len(rows)} keys resolve" + (f"; failing: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
