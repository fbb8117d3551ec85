"""A real Slurm controller on loopback for the scheduler tests: munged, slurmctld and one slurmd.

Everything lives in one temporary directory: a fresh MUNGE key and a munged on its own socket,
a slurm.conf on free ports (pointed at by SLURM_CONF), slurmctld's state, and one slurmd for
node `NODE`, so the node is IDLE and DRAIN/RESUME behave as on a real cluster. Debian's
`slurmctld`, `slurmd`, `slurm-client` and `munge` packages provide the programs (scripts/test
installs them). Needs root: slurmd runs jobs as any user.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

MUNGED = Path("/usr/sbin/munged")
SLURMCTLD = Path("/usr/sbin/slurmctld")
SLURMD = Path("/usr/sbin/slurmd")
SCONTROL = Path("/usr/bin/scontrol")
PROGRAMS = (MUNGED, SLURMCTLD, SLURMD, SCONTROL)

#: The node that has a slurmd, and so goes IDLE, DRAIN and back like a real one.
NODE = "ugro-n1"
START_TIMEOUT_S = 30.0


def installed() -> bool:
    """Whether every program the harness starts is installed."""
    return all(p.exists() for p in PROGRAMS)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class SlurmCluster:
    """munged + slurmctld + one slurmd under `base`; `stop()` (or the context) ends them all."""

    __test__ = False

    def __init__(self, base: Path, extra_conf: Sequence[str] = ()) -> None:
        """Lay out `base`; `start()` launches the daemons.

        `extra_conf` are more slurm.conf lines (a HealthCheckProgram, say).
        """
        self.base = base
        self.extra_conf = list(extra_conf)
        self.conf = base / "slurm.conf"
        self.socket = base / "munge" / "munge.socket"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.started_in_s = 0.0

    @classmethod
    def start(cls, base: Path, extra_conf: Sequence[str] = ()) -> SlurmCluster:
        """Start munged, slurmctld and slurmd; return once the node is IDLE."""
        cluster = cls(base, extra_conf)
        began = time.monotonic()
        try:
            cluster._start_munge()
            cluster._write_conf()
            cluster._spawn("slurmctld", [str(SLURMCTLD), "-D", "-f", str(cluster.conf)])
            cluster._wait(lambda: "is UP" in cluster.scontrol("ping").stdout, "slurmctld")
            cluster._spawn("slurmd", [str(SLURMD), "-D", "-N", NODE, "-f", str(cluster.conf)])
            cluster._wait(lambda: cluster.state() == "IDLE", f"{NODE} to be IDLE")
        except BaseException:
            cluster.stop()
            raise
        cluster.started_in_s = time.monotonic() - began
        return cluster

    def __enter__(self) -> Self:
        """Use the cluster as a context manager that stops it."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop every daemon."""
        self.stop()

    def scontrol(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the real scontrol against this controller."""
        return subprocess.run(
            [str(SCONTROL), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=30,
            check=False,
        )

    def show(self, node: str = NODE) -> str:
        """`scontrol show node -o NODE`, as scontrol prints it."""
        done = self.scontrol("show", "node", "-o", node)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def state(self, node: str = NODE) -> str:
        """The node's State= field, e.g. IDLE or IDLE+DRAIN."""
        for field in self.show(node).split():
            if field.startswith("State="):
                return field.removeprefix("State=")
        return ""

    def reset(self) -> None:
        """Bring the node back to IDLE with no Reason, whoever drained it."""
        if "DRAIN" in self.state():
            self.scontrol("update", f"NodeName={NODE}", "State=RESUME")
        self._wait(lambda: self.state() == "IDLE", f"{NODE} to be IDLE again")

    def stop(self) -> None:
        """Terminate every daemon (SIGKILL after 10 s), newest first. Idempotent."""
        while self._procs:
            _, proc = self._procs.pop()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def _start_munge(self) -> None:
        munge = self.base / "munge"
        munge.mkdir(mode=0o700, parents=True)
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self._spawn(
            "munged",
            [
                str(MUNGED),
                "--foreground",
                "--force",
                f"--socket={self.socket}",
                f"--key-file={key}",
                f"--pid-file={munge / 'munged.pid'}",
                f"--seed-file={munge / 'munged.seed'}",
                f"--log-file={munge / 'munged.log'}",
            ],
        )
        self._wait(self.socket.exists, "munged's socket")

    def _write_conf(self) -> None:
        base = self.base
        (base / "state").mkdir()
        (base / "spool").mkdir()
        lines = [
            "ClusterName=ugrotest",
            "SlurmctldHost=localhost",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            f"AuthInfo=socket={self.socket}",
            "CredType=cred/munge",
            f"StateSaveLocation={base / 'state'}",
            f"SlurmdSpoolDir={base / 'spool'}",
            f"SlurmctldPidFile={base / 'slurmctld.pid'}",
            f"SlurmdPidFile={base / 'slurmd.pid'}",
            f"SlurmctldLogFile={base / 'slurmctld.log'}",
            f"SlurmdLogFile={base / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/linear",
            "MpiDefault=none",
            "MailProg=/bin/true",
            "ReturnToService=2",
            "JobCompType=jobcomp/none",
            "AccountingStorageType=accounting_storage/none",
            f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs=1 State=UNKNOWN",
            "PartitionName=main Nodes=ALL Default=YES State=UP",
            *self.extra_conf,
        ]
        self.conf.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.base / f"{name}.out").open("ab")
        with log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        self._procs.append((name, proc))

    def _wait(self, ready: Callable[[], object], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            for name, proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited {proc.returncode}: {self._logs(name)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}: {self._logs()}")
            time.sleep(0.1)

    def _logs(self, *names: str) -> str:
        texts = []
        for path in sorted(self.base.glob("*.out")) + sorted(self.base.glob("*.log")):
            if not names or path.stem in names:
                tail = path.read_text(encoding="utf-8", errors="replace")[-2000:]
                texts.append(f"--- {path.name}\n{tail}")
        return "\n".join(texts)


__all__ = ["NODE", "SlurmCluster", "installed"]
