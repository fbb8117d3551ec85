"""Capture what ugro's GPU commands print on a real NVIDIA machine, as test fixtures.

Run on a machine with a GPU (and, for the torch and deep probes, a CUDA build of torch in
PYTHON), from the repository root, with ugro importable (`pip install .` or PYTHONPATH=src):

    python benchmarks/capture_gpu_fixtures.py [--out DIR] [--python PYTHON]

It runs the exact commands the checks run (taken from ugro's modules, so they cannot drift),
each under a timeout, and writes per command its stdout, stderr, exit status and wall time to
DIR (default tests/fixtures/real/<date>-<gpu model>/), then runs each check's pure parser on
what came back and prints the verdicts and timings. Nothing is sent anywhere.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from ugro.checks import Context, deep, gpu, gpuquery, processes, registry, remap, torch, xid
from ugro.config import Worker
from ugro.model import CommandResult

TIMEOUT_S = 120


def run(command: str) -> tuple[CommandResult, float]:
    """Run `command` with sh, as a check's session would; its result and wall seconds."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return CommandResult(None, out, f"timed out after {TIMEOUT_S} s"), TIMEOUT_S
    return CommandResult(done.returncode, done.stdout, done.stderr), time.perf_counter() - start


def main() -> int:
    """Capture, save, judge."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    names, _ = run("nvidia-smi --query-gpu=name --format=csv,noheader")
    gpus = [line.strip() for line in names.stdout.splitlines() if line.strip()]
    model = re.sub(r"[^A-Za-z0-9]+", "-", gpus[0] if gpus else "no-gpu").strip("-").lower()
    out = args.out or Path("tests/fixtures/real") / f"{dt.datetime.now(dt.UTC).date()}-{model}"
    out.mkdir(parents=True, exist_ok=True)
    node = Worker(
        name="captured",
        ip="localhost",
        transport="local",
        gpus=max(len(gpus), 1),
        python=shlex.quote(args.python),
        deep=True,
    )
    apps_command = processes.COMMAND
    commands = {
        "gpu": gpu.COMMAND,
        "gpu-health-query": gpuquery.COMMAND,
        "remapped-rows": remap.COMMAND,
        "compute-apps": apps_command,
        "ps": processes.PS_COMMAND,
        "xid-kernel-log": xid.command(xid.window_s(node, Context())),
        "torch-probe": torch.CHECK.command(node),
        "deep-probe": deep.CHECK.command(node, ()),
        "nvidia-smi-q": "nvidia-smi -q",
    }
    results: dict[str, CommandResult] = {}
    summary = {}
    for name, command in commands.items():
        result, seconds = run(command)
        results[name] = result
        (out / f"{name}.stdout").write_text(result.stdout, encoding="utf-8")
        (out / f"{name}.stderr").write_text(result.stderr, encoding="utf-8")
        summary[name] = {"command": command, "exit_status": result.exit_status, "wall_s": seconds}
        print(f"{name:18} exit {result.exit_status}  {seconds * 1000:8.1f} ms")
    (out / "commands.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    checks = registry()
    verdicts = {
        "gpu": gpu.CHECK.evaluate(results["gpu"], node),
        "torch": torch.CHECK.evaluate(results["torch-probe"], node),
        "deep": deep.evaluate(results["deep-probe"], node),
    }
    for name in ("ecc", "throttle", "pcie", "temperature"):
        check = checks[name]
        if isinstance(check, gpuquery.GpuHealthCheck):
            verdicts[name] = check.evaluate(results["gpu-health-query"], node)
    for name, evaluation in verdicts.items():
        print(f"{name:12} {evaluation.status.label:8} {evaluation.message}")
    print(f"saved under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
