"""Model fetch and cache: sha256 checks, corrupt files, offline errors that say what to do."""
from __future__ import annotations

import os
import zipfile

import pytest

from pose_ros.core.models import fetch
from pose_ros.core.pipeline import PipelineConfig, PosePipeline


def make_wheel(path, files: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_fetch_from_wheel_extracts_and_checks(models, tmp_path):
    wheel = make_wheel(tmp_path / "mediapipe-0.10.14-cp311-none-any.whl",
                       {m.member: models[m.name].read_bytes() for m in fetch.DEFAULT_MODELS})
    got = fetch.fetch_models(tmp_path / "cache", wheel=wheel, quiet=True)
    for m in fetch.DEFAULT_MODELS:
        assert fetch.sha256_of(got[m.name]) == m.sha256
        assert got[m.name].parent == tmp_path / "cache" / "models"


def test_wrong_wheel_content_is_rejected(tmp_path):
    wheel = make_wheel(tmp_path / "mediapipe-bad.whl", {m.member: b"not a model" for m in fetch.DEFAULT_MODELS})
    with pytest.raises(fetch.ModelNotAvailableError, match="sha256"):
        fetch.fetch_models(tmp_path / "cache", wheel=wheel, quiet=True)
    assert not list((tmp_path / "cache" / "models").glob("*.tflite"))


def test_corrupt_cache_file_is_dropped(models, tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    (d / fetch.DETECTOR.name).write_bytes(models[fetch.DETECTOR.name].read_bytes()[:-10])
    assert fetch.cached_model(fetch.DETECTOR, tmp_path) is None
    assert not (d / fetch.DETECTOR.name).exists()


def test_offline_without_cache_says_what_to_do(tmp_path, monkeypatch):
    # no registry: pip reads no config, has no index and no find-links
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    with pytest.raises(fetch.ModelNotAvailableError) as err:
        fetch.fetch_models(tmp_path, quiet=True)
    msg = str(err.value)
    assert "pose-ros fetch-models" in msg and "--detector-model" in msg


def test_pipeline_without_models_names_the_command(tmp_path):
    with pytest.raises(fetch.ModelNotAvailableError, match="pose-ros fetch-models"):
        PosePipeline(PipelineConfig(cache_dir=str(tmp_path)))
