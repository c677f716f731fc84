"""pose_node over real DDS: track ids stay stable across frames, and an image stamp jumping
backwards (bag replay / use_sim_time restart) or going stale resets tracks and filters (new id,
a warning on /rosout). Also the tracking parameters reach the pipeline at run time."""
from __future__ import annotations

import pytest
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import Log
from rclpy.parameter import Parameter
from std_msgs.msg import Header
from test_node import FRAME, Harness


@pytest.fixture(scope="module")
def harness(models):
    h = Harness(static_image_mode=False, stale_after=1.0)
    yield h
    h.close()


def send_at(h: Harness, t: float) -> None:
    """Publish the astronaut with header stamp ``t`` (s) on image and camera_info."""
    h.header = lambda frame_id=FRAME: Header(stamp=Time(sec=int(t), nanosec=int(round(t % 1 * 1e9))),
                                             frame_id=frame_id)
    h.send()


def ids_at(h: Harness, t: float) -> list[int]:
    """Send frames stamped ``t`` until a SkeletonArray with that stamp arrives; its ids."""
    sec = int(t)

    def got():
        with h.lock:
            return [m for m in h.got["skeletons"] if m.header.stamp.sec == sec
                    and abs(m.header.stamp.nanosec - round(t % 1 * 1e9)) < 1000]
    assert h.until(lambda: bool(got()), send=lambda: send_at(h, t), timeout=30), f"no skeletons at {t}"
    return [s.id for s in got()[-1].skeletons]


def test_ids_stable_then_reset_on_backwards_and_stale_stamps(harness):
    h = harness
    first = ids_at(h, 1000.0)
    assert len(first) == 1
    for k in range(1, 4):  # 0.1 s apart: the same person keeps the id
        assert ids_at(h, 1000.0 + 0.1 * k) == first
    n_log = len(h.got["log"])
    back = ids_at(h, 900.0)  # bag replayed from the start
    assert len(back) == 1 and back != first
    assert h.until(lambda: h.logged("time jumped backwards", Log.WARN, n_log), timeout=5)
    assert h.node.stats["time_resets"] >= 1
    assert ids_at(h, 900.1) == back
    n_log = len(h.got["log"])
    stale = ids_at(h, 905.0)  # 4.9 s without frames > stale_after 1 s
    assert len(stale) == 1 and stale != back
    assert h.until(lambda: h.logged("stale_after", Log.WARN, n_log), timeout=5)


def test_tracking_parameters_reach_the_pipeline_at_run_time(harness):
    h = harness
    res = h.node.set_parameters([Parameter("smoothing_beta", value=3.0),
                                 Parameter("track_min_hits", value=2)])
    assert all(r.successful for r in res)
    assert h.node.pipeline.cfg.smoothing_beta == 3.0 and h.node.pipeline.tracker.cfg.track_min_hits == 2
    bad = h.node.set_parameters([Parameter("smoothing_min_cutoff", value=0.0)])
    assert not bad[0].successful
    h.node.set_parameters([Parameter("smoothing_beta", value=10.0), Parameter("track_min_hits", value=1)])
