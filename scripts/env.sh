# Sourced by scripts/run.sh: activate the project environment and keep DDS on loopback.
# shellcheck shell=bash
POSE_ROS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091
. "$POSE_ROS_ROOT/.venv/bin/activate"
if [ -z "${ROS_DISTRO:-}" ]; then
  export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
fi
# colcon's setup scripts reference unset variables; relax nounset while sourcing.
case $- in *u*) _pr_u=1; set +u;; *) _pr_u=0;; esac
# shellcheck disable=SC1091
. "$POSE_ROS_ROOT/install/setup.bash"
[ "$_pr_u" = 1 ] && set -u
# Loopback-only DDS: never send traffic off this machine.
#  * The Fast DDS profile restricts UDP to 127.0.0.1 (+ SHM), builtin transports off,
#    initial peer 127.0.0.1.
#  * ROS_AUTOMATIC_DISCOVERY_RANGE: LOCALHOST is the right choice without a profile, but
#    measured here rmw_fastrtps (Kilted, 9.3.3) then *appends* its own un-whitelisted
#    UDPv4 transport to the participant, which binds a socket on the machine's non-loopback
#    address (ss -uanp shows eth0-ip:port). With our profile in force, SYSTEM_DEFAULT makes
#    rmw leave the transports alone, so every socket stays on 127.0.0.1 (test_loopback.py
#    checks this with ss). Set POSE_ROS_DISCOVERY_RANGE to override.
export FASTDDS_DEFAULT_PROFILES_FILE="$POSE_ROS_ROOT/config/fastdds_loopback.xml"
export ROS_AUTOMATIC_DISCOVERY_RANGE=${POSE_ROS_DISCOVERY_RANGE:-SYSTEM_DEFAULT}
case "${ROS_DISTRO:-}" in
  humble|iron)  # Fast DDS 2.x reads the old variable name; rmw whitelists 127.0.0.1
    export ROS_LOCALHOST_ONLY=1
    export FASTRTPS_DEFAULT_PROFILES_FILE="$FASTDDS_DEFAULT_PROFILES_FILE";;
esac
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
# A per-run domain id so parallel runs on one machine never see each other.
if [ -z "${POSE_ROS_KEEP_DOMAIN:-}" ]; then
  ROS_DOMAIN_ID=$(( (RANDOM % 100) + 1 ))
  export ROS_DOMAIN_ID
fi
export ROS_LOG_DIR="${ROS_LOG_DIR:-$POSE_ROS_ROOT/build/ros_log}"
export PYTHONDONTWRITEBYTECODE=1
