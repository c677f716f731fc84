# The colcon-installed `pose_ros` package is the one rosidl generates (holding pose_ros.msg);
# this file is not installed. When the source tree shadows it (python -m from the repo root),
# merge the two so pose_ros.msg still resolves.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
