"""The `deep` check: every idle GPU multiplies matrices in fp32 and bf16, and gets them right.

`torch.cuda.is_available()` only proves the driver answers. This probe creates a CUDA
context on each GPU, runs a small matmul in fp32 and (where the GPU supports it) bf16,
synchronises, and compares the result with a float64 reference computed on the CPU: a GPU
with failing memory or a broken SM computes fast and wrong, and only a check of the numbers
sees it.

GPUs a training process is using are skipped: the probe must never compete with a job.
Which ones are busy comes from `nvidia-smi --query-compute-apps` (the same command the
`processes` check runs, so a sweep runs it once), matched by GPU UUID.

It runs only on nodes with `deep: true`, or with `ugro check --deep`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ugro.checks import Check, Context, cut_note, cut_short, probe
from ugro.checks.readings import (
    COUNT,
    CUDA_DEVICES,
    MILLISECONDS,
    Range,
    number,
    said,
    shown,
    whole,
)
from ugro.errors import InvalidOutput
from ugro.model import CommandResult, Evaluation, Status

if TYPE_CHECKING:
    from ugro.config import Worker
    from ugro.transport import Session

APPS_COMMAND = (
    "nvidia-smi --query-compute-apps=gpu_uuid,pid,process_name,used_memory "
    "--format=csv,noheader,nounits"
)
MARKER = "UGRO-DEEP "

# Matrix side: 2·1024³ ≈ 2.1 GFLOP per matmul, 0.05–0.3 ms on a datacenter GPU since Volta, so
# the REPS timed products take a few milliseconds yet are long enough not to time only kernel
# launches. The float64 CPU reference is computed once (2.1 GFLOP: tens of milliseconds with
# torch's BLAS, under a second on one slow core) and 8 MB per matrix cross the bus per GPU.
# CUDA context creation (0.2–1 s per GPU) dominates: eight GPUs take a few seconds.
SIZE = 1024
REPS = 10
# Entries are integers in [-2, 2]: exact in every dtype the probe uses, so fp32 (and TF32)
# products, accumulated in fp32, are exact, and bf16 differs only by rounding its output.
# Allowed error, as a share of the reference's largest magnitude: fp32 must be exact (the
# share only absorbs a different summation order); bf16 keeps 8 significant bits, and with
# reduced-precision split-K reductions a few roundings add up.
TOLERANCE = {"fp32": 1e-6, "bf16": 2**-5}
# Matrix sides a report may claim: the probe's own SIZE, within reason.
SIZES = Range(0, 65536)

# Runs on the node under whatever Python it has (3.8 and later): no syntax newer than 3.8,
# and it never raises; argv[1] is the JSON list of [gpu_uuid, pid, process_name] of the
# compute processes nvidia-smi listed. One report line at the end.
_BODY = """
import time
SIZE, REPS, SEED = %(size)d, %(reps)d, 20261128


def describe(exc):
    text = (type(exc).__name__ + ": " + str(exc)).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def bf16_supported(torch):
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:
        return bool(torch.cuda.is_bf16_supported())


def skip_reason(uuid, busy):
    if not busy:
        return None
    users = ", ".join("pid %%s (%%s)" %% (pid, name) for _, pid, name in busy)
    if uuid is None:
        return ("a compute process runs (" + users + ") and this torch does not report GPU "
                "UUIDs to tell which GPU it uses")
    if any(not str(u).startswith("GPU-") for u, _, _ in busy):
        return "a compute process runs on a MIG instance or unknown device (" + users + ")"
    mine = [(pid, name) for u, pid, name in busy if str(u).lower() == uuid.lower()]
    if mine:
        return "busy: " + ", ".join("pid %%s (%%s)" %% m for m in mine)
    return None


def one_gpu(torch, index, a, b, ref, busy):
    out = {"index": index}
    try:
        props = torch.cuda.get_device_properties(index)
        out["name"] = str(props.name)
        uuid = getattr(props, "uuid", None)
        out["uuid"] = None if uuid is None else "GPU-" + str(uuid).replace("GPU-", "")
    except BaseException as exc:
        out["error"] = describe(exc)
        return out
    reason = skip_reason(out["uuid"], busy)
    if reason:
        out["skipped"] = reason
        return out
    step = "init"
    try:
        torch.cuda.set_device(index)
        device = "cuda:%%d" %% index
        kinds = [("fp32", torch.float32)]
        if bf16_supported(torch):
            kinds.append(("bf16", torch.bfloat16))
        else:
            out["bf16"] = None
        for label, dtype in kinds:
            step = label
            x = a.to(device=device, dtype=dtype)
            y = b.to(device=device, dtype=dtype)
            c = x @ y  # warm-up: cuBLAS handle and kernel choice, not timed
            torch.cuda.synchronize(index)
            start = time.perf_counter()
            for _ in range(REPS):
                c = x @ y
            torch.cuda.synchronize(index)
            ms = (time.perf_counter() - start) * 1000.0 / REPS
            err = (c.double().cpu() - ref).abs().max().item()
            out[label] = {"ms": round(ms, 4), "err": float(err)}
    except BaseException as exc:
        out["error"] = describe(exc)
        out["step"] = step
    return out


def main():
    report = {"size": SIZE}
    try:
        busy = [list(b)[:3] for b in json.loads(sys.argv[1])] if len(sys.argv) > 1 else []
    except BaseException as exc:
        report["error"] = "bad argument: " + describe(exc)
        return report
    try:
        import torch
    except BaseException as exc:
        report["error"] = "import torch failed: " + describe(exc)
        return report
    report["torch"] = str(getattr(torch, "__version__", "?"))
    try:
        if not torch.cuda.is_available():
            report["error"] = "torch cannot use CUDA (torch.cuda.is_available() is False)"
            return report
        count = torch.cuda.device_count()
        gen = torch.Generator().manual_seed(SEED)
        a = torch.randint(-2, 3, (SIZE, SIZE), generator=gen, dtype=torch.float64)
        b = torch.randint(-2, 3, (SIZE, SIZE), generator=gen, dtype=torch.float64)
        ref = a @ b
        report["scale"] = float(ref.abs().max().item())
    except BaseException as exc:
        report["error"] = "CUDA init failed: " + describe(exc)
        return report
    report["gpus"] = [one_gpu(torch, i, a, b, ref, busy) for i in range(count)]
    return report


emit(main())
"""
# %-formatting, since an f-string would double every brace of the probe's dicts.
PROBE = probe.program(MARKER, _BODY % {"size": SIZE, "reps": REPS})


@dataclass(frozen=True, slots=True)
class Busy:
    """A compute process on a GPU, as nvidia-smi lists it."""

    gpu_uuid: str
    pid: str
    process: str


class Deep(Check):
    """Every idle GPU computes a verified fp32 (and bf16) matmul."""

    name = "deep"
    weight = 10
    # CUDA init and a few matmuls per GPU; cold imports dominate.
    default_timeout_s = 60
    hang_hint = (
        "a CUDA call hung: a wedged GPU or driver (check `dmesg` for Xid errors); or cold "
        "imports are slow: raise timeouts.deep"
    )

    def applies(self, node: Worker) -> bool:
        """Only where asked for: `deep: true` in the config, or `ugro check --deep`."""
        return node.deep

    def command(self, node: Worker, busy: tuple[Busy, ...]) -> str:
        """`<python> -c <probe> <busy processes as JSON>`, every word quoted."""
        listed = json.dumps([[b.gpu_uuid, b.pid, b.process] for b in busy])
        return probe.command(node, PROBE, listed)

    async def run(
        self,
        node: Worker,
        session: Session,
        context: Context,  # noqa: ARG002 - the probe measures afresh
    ) -> Evaluation:
        """Ask nvidia-smi which GPUs are busy, then run the probe on the idle ones."""
        deadline = time.monotonic() + self.timeout(node)
        apps = await session.run(
            APPS_COMMAND, timeout=min(float(node.timeouts.gpu), self.timeout(node))
        )
        busy = parse_apps(apps)
        if isinstance(busy, str):
            return Evaluation(Status.UNKNOWN, busy)
        left = max(1.0, deadline - time.monotonic())
        ran = await session.run(self.command(node, busy), timeout=left)
        return evaluate(ran, node)


def parse_apps(result: CommandResult) -> tuple[Busy, ...] | str:
    """The compute processes nvidia-smi lists, or why it is not known which GPUs are busy."""
    if result.truncated:
        return f"not run: cannot tell which GPUs a job is using, {cut_note('nvidia-smi')}"
    if result.exit_status != 0:
        said = (result.stdout + result.stderr).strip().splitlines()
        return (
            "not run: cannot tell which GPUs a job is using, nvidia-smi "
            f"--query-compute-apps failed (exit {result.exit_status})"
            + (f": {said[0]}" if said else "")
        )
    busy = []
    for line in result.stdout.splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 3 or not fields[0]:
            return f"not run: nvidia-smi listed compute processes unreadably: {line[:120]!r}"
        busy.append(Busy(fields[0], fields[1], fields[2]))
    return tuple(busy)


def evaluate(result: CommandResult, node: Worker) -> Evaluation:  # noqa: PLR0911 - one return per cause
    """Judge the probe's report: numbers right on every idle GPU, and how fast.

    InvalidOutput when the report's numbers are not plausible (`ugro.checks.readings`).
    """
    if (short := cut_short(result, node.python)) is not None:
        return short
    if result.exit_status == 127:
        return Evaluation(
            Status.FAIL,
            f"{node.python!r} not found on the node: set `python:` in cluster.yaml",
        )
    report = probe.read(result.stdout, MARKER)
    if report is None:
        return probe.no_report(result, "no deep probe report")
    if "error" in report:
        return Evaluation(Status.FAIL, f"{said(report['error'])}: the node cannot train")
    gpus = report.get("gpus")
    if not isinstance(gpus, list) or not all(isinstance(g, dict) for g in gpus):
        return Evaluation(Status.UNKNOWN, f"deep probe report not understood: gpus {shown(gpus)}")
    if not gpus:
        return Evaluation(Status.FAIL, "torch sees no CUDA device: the node cannot train")
    if len(gpus) > CUDA_DEVICES.hi:
        raise InvalidOutput(f"the deep probe reports {len(gpus)} GPUs, more than any node has")
    scale = number(report.get("scale"), "the reference's largest value", COUNT)
    size = whole(report.get("size") or 0, "the matrix size", SIZES)
    problems = [p for gpu in gpus if (p := _problem(gpu, scale))]
    if problems:
        return Evaluation(Status.FAIL, "; ".join(problems))
    skipped = [g for g in gpus if g.get("skipped")]
    tested = [g for g in gpus if not g.get("skipped")]
    skips = "; ".join(f"GPU {g['index']} skipped, {said(g['skipped'])}" for g in skipped)
    if not tested:
        return Evaluation(
            Status.OK, f"not run: every GPU is in use ({skips}); a running job is proof enough"
        )
    return Evaluation(Status.OK, *_verified(tested, size, skips), "ms")


def _verified(tested: list[dict[str, Any]], size: int, skips: str) -> tuple[str, float]:
    """The message and value (the slowest fp32 time) of GPUs that all computed right."""
    fp32 = max(float(g["fp32"]["ms"]) for g in tested)
    bf16 = [float(g["bf16"]["ms"]) for g in tested if g.get("bf16")]
    count = len(tested)
    timing = f"fp32 {_ms(fp32)}"
    timing += f", bf16 {_ms(max(bf16))}" if len(bf16) == count else ""
    message = (
        f"{count} GPU{'s' if count != 1 else ''}: {timing} per {size}×{size} matmul"
        f"{' (slowest)' if count > 1 else ''}; verified"
    )
    if len(bf16) < count:
        message += "; no bf16 support" if not bf16 else "; bf16 only on some"
    if skips:
        message += f"; {skips}"
    return message, round(fp32, 3)


def _problem(gpu: dict[str, Any], scale: float) -> str | None:
    """What is wrong with one GPU's result, if anything.

    Its index and timings must be plausible (InvalidOutput); they are checked in place, so
    `evaluate` reads them as numbers afterwards.
    """
    index = gpu["index"] = whole(gpu.get("index"), "a GPU index", CUDA_DEVICES)
    if gpu.get("error"):
        step = gpu.get("step")
        during = f" ({step} matmul)" if step in TOLERANCE else ""
        return (
            f"GPU {index}: {said(gpu['error'])}{during}: drain the node, check `dmesg` for "
            "Xid errors and `nvidia-smi -q -d ECC`"
        )
    if gpu.get("skipped"):
        return None
    for kind, tolerance in TOLERANCE.items():
        measured = gpu.get(kind)
        if measured is None and kind != "fp32":
            continue
        if not isinstance(measured, dict) or "ms" not in measured:
            return f"GPU {index}: no {kind} result in the report"
        number(measured["ms"], f"the {kind} time of GPU {index}", MILLISECONDS)
        err = _error(measured.get("err"), f"the {kind} error of GPU {index}")
        if err is None:
            return (
                f"GPU {index}: {kind} matmul gave {shown(measured.get('err'))} (not a number): "
                "the GPU computes incorrectly; drain it and run the vendor's diagnostics "
                "(dcgmi diag -r 3)"
            )
        if err > tolerance * max(scale, 1.0):
            return (
                f"GPU {index}: {kind} matmul wrong by {err:.1e}: the GPU computes incorrectly; "
                "drain it and run the vendor's diagnostics (dcgmi diag -r 3)"
            )
    return None


def _error(value: object, field: str) -> float | None:
    """A matmul's error as a finite float; None for nan, infinity or not a number at all.

    Not a refused reading: a GPU that computes nan is what this check exists to catch. A
    negative one is (InvalidOutput): the error is a largest absolute difference.
    """
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        err = float(value)
    except OverflowError:
        return None
    if err < 0:
        raise InvalidOutput(f"{field} is {shown(value)}, below 0")
    return err if math.isfinite(err) else None


def _ms(value: float) -> str:
    return f"{value:.3g} ms" if value < 10 else f"{value:.0f} ms"


CHECK = Deep()
