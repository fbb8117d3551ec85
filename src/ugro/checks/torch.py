"""The `torch` check: the node's Python imports PyTorch and it can use CUDA on every GPU."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ugro.checks import RemoteCheck, cut_short, probe, readings
from ugro.model import CommandResult, Evaluation, Status

if TYPE_CHECKING:
    from ugro.config import Worker

MARKER = "UGRO-TORCH "

# Runs on the node, under whatever Python the node has (3.8 and later): it must never raise.
# Every failure becomes a JSON "error" field, so the parser can tell "torch is missing" from
# "python is missing" from "garbage on stdout". Versions are read where they cost nothing: the
# NCCL torch was built with (a tuple since torch 1.12, an int such as 2708 before), and the
# CUDA driver API version straight from libcuda, without creating a CUDA context.
PROBE = probe.program(
    MARKER,
    """
info = {"python": "%d.%d.%d" % tuple(sys.version_info[:3])}
try:
    import torch
except BaseException as exc:
    info["error"] = type(exc).__name__ + ": " + str(exc)
    emit(info)
    raise SystemExit(0)
info["torch"] = str(torch.__version__)
info["cuda"] = torch.version.cuda
try:
    import torch.cuda.nccl
    nccl = torch.cuda.nccl.version()
    if isinstance(nccl, int):
        nccl = divmod(nccl, 10000 if nccl >= 10000 else 1000)
        nccl = (nccl[0], nccl[1] // 100, nccl[1] % 100)
    info["nccl"] = ".".join(str(part) for part in nccl)
except BaseException:
    pass
try:
    import ctypes
    found = ctypes.c_int(0)
    if ctypes.CDLL("libcuda.so.1").cuDriverGetVersion(ctypes.byref(found)) == 0:
        info["cuda_driver"] = "%d.%d" % (found.value // 1000, found.value % 1000 // 10)
except BaseException:
    pass
try:
    info["available"] = bool(torch.cuda.is_available())
    info["devices"] = torch.cuda.device_count() if info["available"] else 0
except BaseException as exc:
    info["available"] = False
    info["devices"] = 0
    info["cuda_error"] = type(exc).__name__ + ": " + str(exc)
emit(info)
""",
)

# The versions the probe reports, as `Evaluation.versions` names them.
VERSION_KEYS = ("torch", "cuda", "nccl", "python", "cuda_driver")


class Torch(RemoteCheck):
    """The configured Python has a CUDA build of torch that sees at least `gpus` devices."""

    name = "torch"
    weight = 20
    # Importing torch cold (CUDA libraries from a network filesystem) takes tens of seconds.
    default_timeout_s = 30
    core = True
    hang_hint = (
        "importing torch hung: a CUDA call is stuck (wedged driver) or the environment sits "
        "on a slow network filesystem; raise timeouts.torch if imports are just slow"
    )

    def command(self, node: Worker) -> str:
        """`<python> -c <probe>`, the python prefix split into words and each one quoted."""
        return probe.command(node, PROBE)

    def evaluate(self, result: CommandResult, node: Worker) -> Evaluation:
        """Tell a missing interpreter, a missing torch, a CPU build and too few devices apart.

        The versions the probe saw travel with the verdict, whatever it is; one not spelled as
        a version (`readings.version`) is left out.
        """
        if (short := cut_short(result, node.python)) is not None:
            return short
        info = probe.read(result.stdout, MARKER)
        evaluation = self._judge(result, info, node)
        if info is None:
            return evaluation
        versions = {
            key: found
            for key in VERSION_KEYS
            if (found := readings.version(info.get(key))) is not None
        }
        return replace(evaluation, versions=versions)

    def _judge(  # noqa: PLR0911 - one return per distinct cause keeps the parser flat
        self, result: CommandResult, info: dict[str, Any] | None, node: Worker
    ) -> Evaluation:
        python = node.python
        if result.exit_status == 127:
            return Evaluation(
                Status.FAIL,
                f"{python!r} not found on the node: set `python:` in cluster.yaml to the "
                "interpreter of the training environment",
            )
        if info is None:
            return probe.no_report(result, f"{python} gave no torch report")
        error = info.get("error")
        if error is not None:
            if str(error).startswith("ModuleNotFoundError"):
                return Evaluation(
                    Status.FAIL,
                    f"torch is not installed for {python}: install it in that environment or "
                    "point `python:` at the one that has it",
                )
            return Evaluation(
                Status.FAIL,
                f"import torch failed: {error}; reinstall torch or fix its CUDA libraries",
            )
        version, cuda = info.get("torch"), info.get("cuda")
        devices = readings.whole(
            info.get("devices") or 0, "the CUDA device count", readings.CUDA_DEVICES
        )
        if not info.get("available"):
            if cuda is None:
                return Evaluation(
                    Status.FAIL,
                    f"torch {version} is a CPU-only build: install a CUDA build of torch",
                    value=0,
                    unit="devices",
                )
            why = info.get("cuda_error") or "no usable driver, or the driver is too old"
            return Evaluation(
                Status.FAIL,
                f"torch {version} (CUDA {cuda}) cannot use CUDA: {why}; check `nvidia-smi` "
                "and that the driver supports this CUDA version",
                value=0,
                unit="devices",
            )
        if devices < node.gpus:
            return Evaluation(
                Status.FAIL,
                f"torch sees {devices} CUDA device{'s' if devices != 1 else ''}, expected "
                f"{node.gpus}: check CUDA_VISIBLE_DEVICES and `nvidia-smi`",
                value=devices,
                unit="devices",
            )
        return Evaluation(
            Status.OK,
            f"torch {version}, CUDA {cuda}, {devices} device{'s' if devices != 1 else ''}",
            value=devices,
            unit="devices",
        )


CHECK = Torch()
