"""A node that floods: 100 MB from nvidia-smi over real SSH costs ugro a megabyte, not 700.

The issue measured `ugro check` at 28 s and 707 MB for it, a 200 MB state file and a 7.5 s
`ugro health`. The stub nvidia-smi's `flood` mode streams 100 MB of healthy-looking lines.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from conftest import require_integration
from ugro import paths

if TYPE_CHECKING:
    from pathlib import Path

    from sshcluster import TestCluster

#: What a `ugro check` of two nodes may take, whatever one of them prints.
MAX_SECONDS = 15.0
MAX_RSS_MIB = 200
#: The state file of two nodes, and how long `ugro health` may take to read it.
MAX_STATE_BYTES = 256 * 1024
MAX_HEALTH_SECONDS = 5.0


#: Runs ARGV and reports its exit code and peak memory. It stands between the test and ugro
#: because Linux counts, in a process's peak, the memory of the process it was forked from
#: until its exec: measured straight from pytest, ugro's peak would be pytest's (300 MB late
#: in a full run). This small process is what ugro is forked from.
MEASURE = """
import json, os, subprocess, sys
with open(sys.argv[1], "wb") as stdout:
    process = subprocess.Popen(sys.argv[2:], stdout=stdout, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
print(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss]))
"""


def measured(tmp_path: Path, *args: str | Path) -> tuple[int, str, float, float]:
    """Run `ugro ARGS`; its exit code, stdout, seconds taken and peak memory in MiB."""
    require_integration("runs `ugro` as a process")
    out = tmp_path / "ugro.out"
    start = time.monotonic()
    report = subprocess.run(
        [sys.executable, "-c", MEASURE, out, sys.executable, "-m", "ugro", *map(str, args)],
        capture_output=True,
        check=True,
        text=True,
    )
    seconds = time.monotonic() - start
    code, peak_kib = json.loads(report.stdout)
    return code, out.read_text(encoding="utf-8"), seconds, peak_kib / 1024


def test_a_100_mb_nvidia_smi_is_cut_and_costs_little(cluster: TestCluster, tmp_path: Path) -> None:
    """100 MB from nvidia-smi: check takes seconds and little memory; the GPU checks are unknown."""
    flooding, quiet = cluster.host("h0"), cluster.host("h1")
    flooding.set_gpu("flood")
    config = cluster.write_config(tmp_path / "cluster.yaml", [flooding, quiet])
    code, out, seconds, rss_mib = measured(tmp_path, "--config", config, "check", "--json")
    assert seconds < MAX_SECONDS
    assert rss_mib < MAX_RSS_MIB
    assert code == 2
    nodes = {n["name"]: n for n in json.loads(out)["nodes"]}
    gpu = nodes["h0"]["checks"]["gpu"]
    assert gpu["status"] == "unknown"
    assert "nvidia-smi printed more than 1 MiB" in gpu["message"]
    assert nodes["h0"]["status"] == "unhealthy"
    assert nodes["h1"]["status"] == "healthy"
    assert paths.state_file().stat().st_size < MAX_STATE_BYTES
    code, _, seconds, _ = measured(tmp_path, "health", "--json")
    assert code == 2
    assert seconds < MAX_HEALTH_SECONDS
