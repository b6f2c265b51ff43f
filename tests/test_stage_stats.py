"""Each stage's wall time and peak memory in the run folder's run_stats.json."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

from hfsynth.runs.folder import RunFolder
from hfsynth.stage_stats import measured_stage, summary

MIB = 2**20


def test_each_stage_gets_its_own_peak_and_time(tmp_path: Path) -> None:
    with measured_stage(tmp_path, "generate"):
        block = bytearray(400 * MIB)  # touched: resident, not just reserved
        block[::4096] = b"x" * len(block[::4096])
        del block
    with measured_stage(tmp_path, "train", engine="ray"):
        time.sleep(0.2)

    stages = json.loads(RunFolder(tmp_path).stats.read_text())["stages"]
    assert list(stages) == ["generate", "train"]
    generate, train = stages["generate"], stages["train"]
    assert generate["peak_rss_mib"] >= 400 and train["seconds"] >= 0.2 and train["engine"] == "ray"
    if generate["peak_scope"] == "stage":  # Linux: the peak is reset when a stage begins
        assert train["peak_rss_mib"] < generate["peak_rss_mib"] - 300
    assert re.fullmatch(r"stages: generate 0\.0 min, peak \d+\.\d\d GiB; train 0\.0 min, peak \d+\.\d\d GiB",
                        summary(tmp_path))


def test_a_stage_that_fails_records_nothing_and_a_rerun_replaces_its_entry(tmp_path: Path) -> None:
    try:
        with measured_stage(tmp_path, "evaluate"):
            raise RuntimeError("interrupted")
    except RuntimeError:
        pass
    assert not RunFolder(tmp_path).stats.exists() and summary(tmp_path) is None
    for pause in (0.0, 0.1):
        with measured_stage(tmp_path, "evaluate"):
            time.sleep(pause)
    stages = json.loads(RunFolder(tmp_path).stats.read_text())["stages"]
    assert list(stages) == ["evaluate"] and stages["evaluate"]["seconds"] >= 0.1


def test_stages_running_at_once_report_the_process_peak(tmp_path: Path) -> None:
    # Two recipes' stages at once (hfsynth run with several recipes on Ray): neither peak is a stage's own.
    both_running = threading.Barrier(2)

    def stage(name: str) -> None:
        with measured_stage(tmp_path / name, "generate", engine="ray"):
            both_running.wait(timeout=10)

    threads = [threading.Thread(target=stage, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    scopes = [json.loads(RunFolder(tmp_path / name).stats.read_text())["stages"]["generate"]["peak_scope"]
              for name in ("a", "b")]
    assert scopes == ["process", "process"]
    with measured_stage(tmp_path / "a", "train"):  # alone again
        pass
    train = json.loads(RunFolder(tmp_path / "a").stats.read_text())["stages"]["train"]
    assert train["peak_scope"] == ("stage" if Path("/proc/self/clear_refs").exists() else "process")
