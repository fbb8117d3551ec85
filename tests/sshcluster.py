"""A cluster of real OpenSSH servers on loopback, with stubbed GPUs, for end-to-end tests.

Each `TestHost` is a genuine `/usr/sbin/sshd` listening on its own 127.0.0.N address, so ugro
talks to it exactly as to a remote worker: real handshake, real host-key checking, real
public-key authentication. What the hosts lack is hardware: every session runs with a PATH
that starts at the host's `bin/`, where stand-ins for `nvidia-smi` and `python3` (with a fake
`torch`) answer according to mode files that tests flip between probes.

Faults a test can inject: GPU, GPU health, GPU process and torch modes (`set_gpu`,
`set_gpu_health`, `set_gpu_apps`, `set_torch`), kernel log lines and access (`log_kernel`,
`set_kernel_log_access`), a server that accepts
TCP but never says hello (`pause`), a host that is gone (`kill`), a changed host key
(`regenerate_host_key`), and a full filesystem (`TestCluster.full_filesystem`).

Needs root (sshd can only switch to the logging-in user as root, and `full_filesystem`
mounts a tmpfs), as in CI.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import getpass
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Self

import yaml

if TYPE_CHECKING:
    from types import TracebackType

SSHD = Path("/usr/sbin/sshd")
TESTS_DIR = Path(__file__).resolve().parent
STUBS_DIR = TESTS_DIR / "stubs"
FIXTURES_DIR = TESTS_DIR / "fixtures" / "nvidia-smi"

#: Modes understood by tests/stubs/nvidia-smi.
GPU_MODES = frozenset(
    {
        "healthy",
        "one-gpu",
        "hot",
        "other-model",
        "na",
        "driver",
        "nvml",
        "lost",
        "hang",
        "garbage",
        "empty",
        "flood",
    }
)
#: What `nvidia-smi --query-compute-apps` lists on a host (tests/stubs/nvidia-smi): nothing,
#: two training processes whose pids do not exist, or pid 1 (alive everywhere).
APPS_MODES = frozenset({"none", "training", "init"})
#: What the GPU health query and the remapped-rows query answer (tests/stubs/nvidia-smi).
HEALTH_MODES = frozenset(
    {
        "healthy",
        "ecc-uncorrected",
        "ecc-aggregate",
        "remap-pending",
        "throttle-thermal",
        "pcie-x8",
        "hot",
        "critical",
    }
)
#: Whether dmesg may read the kernel log (tests/stubs/dmesg), and journalctl (journalctl).
DMESG_MODES = frozenset({"ok", "restricted"})
JOURNAL_MODES = frozenset({"ok", "denied"})
#: Modes understood by tests/stubs/python3 and the fake torch behind it.
TORCH_MODES = frozenset(
    {
        "healthy",
        "one-device",
        "nocuda",
        "broken",
        "hang",
        "missing",
        "no-bf16",
        "wrong-result",
        "cuda-error",
        "no-uuid",
        "old-torch",
    }
)

#: What `write_config` declares for every worker, matching the `healthy` stub modes.
DEFAULT_GPU = "NVIDIA GeForce RTX 4090"
DEFAULT_VRAM_GB = 24
DEFAULT_GPUS = 2
#: Short timeouts so fault tests finish quickly; still generous for loopback.
DEFAULT_TIMEOUTS: dict[str, float] = {
    "connect": 3,
    "ssh": 3,
    "gpu": 3,
    "torch": 5,
    "disk": 3,
    "latency": 2,
    "ecc": 3,
    "remap": 3,
    "xid": 3,
    "throttle": 3,
    "pcie": 3,
    "processes": 3,
    "temperature": 3,
}

#: Host i listens on 127.0.0.(FIRST_HOST_OCTET + i).
FIRST_HOST_OCTET = 10
#: An address no TestHost ever uses, for "nothing listens here".
UNUSED_ADDR = "127.0.0.254"
#: How long an sshd may take to show its banner after being started.
START_TIMEOUT_S = 10.0
#: Size of the tmpfs that `full_filesystem` fills.
FULLFS_BYTES = 4 * 1024 * 1024

# Characters that would need quoting in sshd_config; temp paths never contain them, so a
# base directory that does is rejected instead of being quoted for two languages at once.
_UNSAFE_PATH_CHARS = frozenset(" \t\n\"'\\#")


def _tool(name: str) -> str:
    """Return the absolute path of a system program the harness needs, or raise."""
    found = shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if found is None:
        raise RuntimeError(f"the test harness needs `{name}`, which is not installed")
    return found


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a helper command to completion; raise with its output if it fails."""
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if result.returncode != 0:
        msg = (
            f"{shlex.join(argv)} exited {result.returncode}:\n"
            f"{result.stdout}{result.stderr}".rstrip()
        )
        raise RuntimeError(msg)
    return result


def _keygen(path: Path, comment: str) -> None:
    """Generate a fresh ed25519 key pair at `path` and `path.pub`, replacing any old one."""
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".pub").unlink(missing_ok=True)
    _run([_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def _public_key(path: Path) -> str:
    """Return `type base64` of the key pair at `path`, without the comment."""
    fields = path.with_name(path.name + ".pub").read_text(encoding="utf-8").split()
    return f"{fields[0]} {fields[1]}"


def _free_port(addr: str) -> int:
    """Return a TCP port that is free on `addr` right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((addr, 0))
        port: int = sock.getsockname()[1]
        return port


def _read_banner(addr: str, port: int, timeout: float) -> bytes:
    """Connect and return what the server says first; b"" if it says nothing in time."""
    with socket.create_connection((addr, port), timeout=timeout) as sock:
        try:
            return sock.recv(256)
        except TimeoutError:
            return b""


def _write_atomic(path: Path, text: str) -> None:
    """Replace `path` in one step, so a stub reading it mid-update never sees it empty."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _proc_table() -> dict[int, int]:
    """Map every live pid to its parent pid, from /proc."""
    table: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:  # exited while we looked
            continue
        # The command name (field 2) may contain spaces and parentheses; it ends at the last ')'.
        fields = stat.rpartition(")")[2].split()
        table[int(entry.name)] = int(fields[1])
    return table


def _descendants(root: int) -> list[int]:
    """Return the pids of all processes below `root`, deepest last."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _proc_table().items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _stub_processes(stub_dir: Path) -> list[int]:
    """Return pids of processes started by a session on a host at or under `stub_dir`.

    Every session command runs with UGRO_STUB_DIR=<host dir> (set by the ForceCommand), and
    what it starts inherits it. That finds leftovers such as a `hang`-mode `sleep 600` whose
    session is long gone and which no longer descends from any sshd. ugro's own runner (its
    shell, which stays open between checks, that shell's subshells and the login shell that
    started it) is not a command.
    """
    wanted = os.fsencode(f"UGRO_STUB_DIR={stub_dir}")
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            # The runner's script is in its command line, and in its login shell's.
            runner = b"ugro_run()" in (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if runner:
            continue
        for var in environ.split(b"\0"):
            if var == wanted or var.startswith(wanted + b"/"):
                found.append(int(entry.name))
                break
    return found


def _kill_pids(pids: list[int]) -> None:
    """SIGKILL each pid, ignoring ones that already exited."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Say whether `pid` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _wait_gone(pids: list[int], timeout: float, *, reaped: bool) -> None:
    """Wait until none of `pids` runs (or, with `reaped`, exists at all), or `timeout` passes."""
    deadline = time.monotonic() + timeout

    def alive(pid: int) -> bool:
        return Path(f"/proc/{pid}").exists() if reaped else _running(pid)

    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.02)


def _kill_stub_processes(stub_dir: Path) -> None:
    """Kill what sessions under `stub_dir` left running, and wait until it is really gone.

    Repeats the scan because a dying process can still be visible for a moment, and a shell
    being killed may just have started a child.
    """
    deadline = time.monotonic() + 5.0
    while pids := _stub_processes(stub_dir):
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes under {stub_dir} survive SIGKILL: {pids}")
        _kill_pids(pids)
        _wait_gone(pids, timeout=0.5, reaped=False)


class TestHost:
    """One worker: a real sshd on 127.0.0.N plus the stub programs its sessions see."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, name: str, addr: str, port: int, host_dir: Path, client_pub: str) -> None:
        """Lay out `host_dir` (keys, config, stubs) for a host; `start()` launches it."""
        self.name = name
        self.addr = addr
        self.port = port
        self.dir = host_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._key_regenerated = False
        # sshd_config lines a test added (`set_sshd_options`).
        self._options: tuple[str, ...] = ()

        self.dir.mkdir(parents=True, exist_ok=True)
        # The host's sessions' $XDG_RUNTIME_DIR, as pam_systemd gives a login one on a node:
        # what a session killed with the host leaves there goes with the host's directory,
        # not into this machine's /dev/shm.
        (self.dir / "run").mkdir(mode=0o700, exist_ok=True)
        self.log = self.dir / "sshd.log"
        self.config = self.dir / "sshd_config"
        self._host_key = self.dir / "ssh_host_ed25519_key"
        self._original_key = self.dir / "ssh_host_ed25519_key.original"
        self._authorized_keys = self.dir / "authorized_keys"

        _keygen(self._host_key, f"ugro-test-{name}")
        self._authorized_keys.write_text(client_pub + "\n", encoding="utf-8")
        self._install_stubs()
        self._write_sshd_config()
        self.set_gpu("healthy")
        self.set_torch("healthy")

    def __repr__(self) -> str:
        """Show which host this is, for assertion messages."""
        return f"TestHost({self.name!r}, {self.addr}:{self.port}, pid={self.pid})"

    @property
    def pid(self) -> int | None:
        """The pid of the listening sshd, or None while the host is down."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    # --- faults ---------------------------------------------------------------------------

    def set_gpu(self, mode: str) -> None:
        """Choose what `nvidia-smi` answers on this host from the next call on."""
        if mode not in GPU_MODES:
            raise ValueError(f"unknown gpu mode {mode!r}; known: {sorted(GPU_MODES)}")
        _write_atomic(self.dir / "gpu_mode", mode + "\n")

    def set_gpu_apps(self, mode: str) -> None:
        """Choose which processes `nvidia-smi --query-compute-apps` lists from the next call on."""
        if mode not in APPS_MODES:
            raise ValueError(f"unknown apps mode {mode!r}; known: {sorted(APPS_MODES)}")
        _write_atomic(self.dir / "apps_mode", mode + "\n")

    def set_gpu_health(self, mode: str) -> None:
        """Choose what the GPU health and remapped-rows queries answer from the next call on."""
        if mode not in HEALTH_MODES:
            raise ValueError(f"unknown health mode {mode!r}; known: {sorted(HEALTH_MODES)}")
        _write_atomic(self.dir / "health_mode", mode + "\n")

    def set_kernel_log_access(self, dmesg: str = "ok", journal: str = "ok") -> None:
        """Choose whether `dmesg` is permitted and whether `journalctl` shows kernel messages."""
        if dmesg not in DMESG_MODES or journal not in JOURNAL_MODES:
            raise ValueError(f"unknown kernel log access {dmesg!r}/{journal!r}")
        _write_atomic(self.dir / "dmesg_mode", dmesg + "\n")
        _write_atomic(self.dir / "journal_mode", journal + "\n")

    def log_kernel(self, text: str, seconds_ago: float = 0.0) -> None:
        """Append a kernel message from `seconds_ago`, for dmesg and the journal alike.

        dmesg stamps seconds since boot, from this machine's real /proc/uptime, as the kernel
        does; the journal stamps Unix time.
        """
        uptime = float(Path("/proc/uptime").read_text(encoding="utf-8").split()[0])
        since_boot = uptime - seconds_ago
        unix = time.time() - seconds_ago
        with (self.dir / "kernel_log").open("a", encoding="utf-8") as log:
            log.write(f"[{since_boot:12.6f}] {text}\n")
        with (self.dir / "journal_log").open("a", encoding="utf-8") as log:
            log.write(f"{unix:.6f} {self.name} kernel: {text}\n")

    def nvidia_smi_calls(self) -> list[str]:
        """The arguments of every nvidia-smi call on this host since the last reset."""
        try:
            text = (self.dir / "nvidia-smi.calls").read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return text.splitlines()

    def set_torch(self, mode: str) -> None:
        """Choose how `python3 -c 'import torch ...'` behaves on this host from the next call on."""
        if mode not in TORCH_MODES:
            raise ValueError(f"unknown torch mode {mode!r}; known: {sorted(TORCH_MODES)}")
        _write_atomic(self.dir / "torch_mode", mode + "\n")

    def pause(self) -> None:
        """Freeze the listener: TCP connects still succeed, but no SSH banner ever comes."""
        pid = self._require_running()
        os.kill(pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Undo `pause()`."""
        pid = self._require_running()
        os.kill(pid, signal.SIGCONT)
        self._paused = False

    def kill(self) -> None:
        """Take the host down: the listener, its open sessions and their commands all die.

        New connections are refused (nothing listens on the port any more).
        """
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                # Stop the listener first so it forks no session for a client reconnecting
                # meanwhile; then the listener, then the sessions it had.
                os.kill(proc.pid, signal.SIGSTOP)
                sessions = _descendants(proc.pid)
                proc.kill()  # SIGKILL works on a stopped process too
                _kill_pids(sessions)
            proc.wait(timeout=10)
            self._proc = None
        self._paused = False
        _kill_stub_processes(self.dir)

    def start(self) -> None:
        """Start (or restart after `kill()`) the sshd; return once it shows its SSH banner."""
        if self.pid is not None:
            return
        self.kill()  # reap a listener that died on its own
        _run([str(SSHD), "-t", "-f", str(self.config)])
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # Its own session, so a Ctrl-C aimed at pytest does not kill it before
                # stop_all() gets to clean up in order.
                start_new_session=True,
            )
        self._wait_until_serving()

    def regenerate_host_key(self) -> None:
        """Give the host a new host key and restart it; known_hosts keeps the old key."""
        if not self._key_regenerated:
            for suffix in ("", ".pub"):
                Path(f"{self._host_key}{suffix}").replace(f"{self._original_key}{suffix}")
            self._key_regenerated = True
        _keygen(self._host_key, f"ugro-test-{self.name}-regenerated")
        self._restart()

    def set_sshd_options(self, *lines: str) -> None:
        """Add `lines` to the host's sshd_config (none: the test bed's own) and restart it."""
        self._options = lines
        self._write_sshd_config()
        self._restart()

    def stub_processes(self) -> list[int]:
        """Return pids of commands that sessions on this host started and are still running.

        E.g. the `sleep 600` of a `hang` mode, which outlives a client that gave up on it.
        """
        return _stub_processes(self.dir)

    def host_key_line(self) -> str:
        """Return the known_hosts line for the host's current key: `[addr]:port type base64`."""
        return f"[{self.addr}]:{self.port} {_public_key(self._host_key)}"

    def reset(self) -> None:
        """Return to a healthy, running host with its original key and no leftover commands."""
        self.set_gpu("healthy")
        self.set_gpu_apps("none")
        self.set_gpu_health("healthy")
        self.set_kernel_log_access()
        for name in ("kernel_log", "journal_log", "nvidia-smi.calls"):
            (self.dir / name).unlink(missing_ok=True)
        self.set_torch("healthy")
        _kill_stub_processes(self.dir)
        if self._options:
            self._options = ()
            self._write_sshd_config()
            self._restart()
        if self._key_regenerated:
            for suffix in ("", ".pub"):
                Path(f"{self._original_key}{suffix}").replace(f"{self._host_key}{suffix}")
            self._key_regenerated = False
            self._restart()
        elif self.pid is None:
            self.start()
        elif self._paused:
            self.resume()

    # --- internals ------------------------------------------------------------------------

    def _restart(self) -> None:
        """Kill and start again, e.g. to load a new host key."""
        self.kill()
        self.start()

    def _require_running(self) -> int:
        pid = self.pid
        if pid is None:
            raise RuntimeError(f"{self.name} is not running")
        return pid

    def _log_text(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace").strip()
        except FileNotFoundError:
            return ""

    def _wait_until_serving(self) -> None:
        """Block until the sshd answers with an SSH banner; raise with its log if it cannot."""
        proc = self._proc
        if proc is None:
            raise RuntimeError(f"{self.name}: no sshd to wait for")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                proc.wait()
                self._proc = None
                msg = (
                    f"sshd for {self.name} ({self.addr}:{self.port}) exited with "
                    f"{proc.returncode} on start. Log {self.log}:\n{self._log_text()}"
                )
                raise RuntimeError(msg)
            with contextlib.suppress(OSError):
                if _read_banner(self.addr, self.port, timeout=1.0).startswith(b"SSH-2.0-"):
                    return
            time.sleep(0.05)
        self.kill()
        msg = (
            f"sshd for {self.name} ({self.addr}:{self.port}) showed no banner within "
            f"{START_TIMEOUT_S} s. Log {self.log}:\n{self._log_text()}"
        )
        raise RuntimeError(msg)

    def _install_stubs(self) -> None:
        """Put the stub programs into the host's bin/ (`install_stubs`)."""
        install_stubs(self.dir)

    def _write_sshd_config(self) -> None:
        """Write an sshd_config that needs nothing from /etc/ssh and pins the session env."""
        path = f"{self.dir}/bin:/usr/local/bin:/usr/bin:/bin"
        # sshd hands ForceCommand to the login shell as `$SHELL -c <line>`, with the client's
        # command in $SSH_ORIGINAL_COMMAND. "$SSH_ORIGINAL_COMMAND" (double-quoted, expanded
        # once) reaches `sh -c` byte for byte. `env -i` drops root's environment, so the
        # pyenv shims that ~/.bashrc puts on PATH cannot shadow the stubs.
        force = (
            f"exec /usr/bin/env -i HOME={shlex.quote(str(self.dir))} "
            f"UGRO_STUB_DIR={shlex.quote(str(self.dir))} PATH={shlex.quote(path)} "
            f"XDG_RUNTIME_DIR={shlex.quote(str(self.dir / 'run'))} "
            '/bin/sh -c "$SSH_ORIGINAL_COMMAND"'
        )
        lines = [
            f"ListenAddress {self.addr}:{self.port}",
            f"HostKey {self._host_key}",
            f"AuthorizedKeysFile {self._authorized_keys}",
            f"PidFile {self.dir / 'sshd.pid'}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "PermitRootLogin prohibit-password",
            # Many parallel probes arrive at once; the default (10:30:100) drops some.
            "MaxStartups 100",
            "MaxSessions 20",
            # ~/.ssh/rc would run before every command and could print into its output.
            "PermitUserRC no",
            "PrintMotd no",
            "PrintLastLog no",
            "UseDNS no",
            "X11Forwarding no",
            "LogLevel ERROR",
            # The login shell runs ForceCommand, and bash reads ~/.bashrc when sshd starts
            # it: root's may run `pyenv init` (85 ms a command). A HOME of the host's own
            # keeps the test host's sessions as lean as a real node's.
            f"SetEnv HOME={self.dir}",
            f"ForceCommand {force}",
            *self._options,
        ]
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")


class TestCluster:
    """A set of `TestHost`s sharing one client key and one known_hosts file."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, base_dir: Path, client_key: Path, known_hosts: Path) -> None:
        """Use `TestCluster.start()`; this only records paths."""
        self.base_dir = base_dir
        self.client_key = client_key
        self.known_hosts = known_hosts
        self.user = getpass.getuser()
        self.hosts: list[TestHost] = []
        self._fullfs: Path | None = None
        self._stopped = False

    @classmethod
    def start(cls, base_dir: Path, count: int) -> TestCluster:
        """Create `count` hosts h0..h{count-1} under `base_dir` and start them all."""
        if not 1 <= count <= 200:
            raise ValueError(f"count must be 1..200, got {count}")
        base_dir = base_dir.resolve()
        if _UNSAFE_PATH_CHARS & set(str(base_dir)):
            raise ValueError(f"base_dir must not contain spaces, quotes or '#': {base_dir}")
        base_dir.mkdir(parents=True, exist_ok=True)
        # sshd refuses to start without its privilege-separation directory.
        with contextlib.suppress(PermissionError):
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)

        client_key = base_dir / "client_key"
        _keygen(client_key, "ugro-test-client")
        cluster = cls(base_dir, client_key, base_dir / "known_hosts")
        atexit.register(cluster.stop_all)  # no stray sshd even if a fixture never tears down
        try:
            client_pub = _public_key(client_key)
            for i in range(count):
                addr = f"127.0.0.{FIRST_HOST_OCTET + i}"
                host = TestHost(f"h{i}", addr, _free_port(addr), base_dir / f"h{i}", client_pub)
                cluster.hosts.append(host)
                cluster._start_host(host)
            cluster.known_hosts.write_text(
                "".join(host.host_key_line() + "\n" for host in cluster.hosts), encoding="utf-8"
            )
        except BaseException:
            cluster.stop_all()
            raise
        return cluster

    def __enter__(self) -> Self:
        """Use the cluster as a context manager that stops it on exit."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop everything."""
        self.stop_all()

    def host(self, name: str) -> TestHost:
        """Return the host called `name`."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def reset(self) -> None:
        """`reset()` every host: healthy, running, original keys."""
        for host in self.hosts:
            host.reset()

    def stop_all(self) -> None:
        """Kill every sshd and session command, and unmount the full filesystem. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop_all)
        for host in self.hosts:
            host.kill()
        _kill_stub_processes(self.base_dir)
        if self._fullfs is not None:
            result = subprocess.run(
                [_tool("umount"), str(self._fullfs)], capture_output=True, check=False, timeout=30
            )
            if result.returncode != 0:
                # Busy (a test left a process inside): detach it now, freed when unused.
                subprocess.run(
                    [_tool("umount"), "-l", str(self._fullfs)],
                    capture_output=True,
                    check=False,
                    timeout=30,
                )
            self._fullfs = None

    def write_config(
        self,
        path: Path,
        hosts: list[TestHost] | None = None,
        workers_extra: dict[str, dict[str, object]] | None = None,
        **top: object,
    ) -> Path:
        """Write a cluster.yaml for `hosts` (default: all) and return its path.

        `top` overrides or adds top-level keys; `workers_extra[name]` is merged into that
        worker's entry.
        """
        workers: list[dict[str, object]] = []
        for host in self.hosts if hosts is None else hosts:
            worker: dict[str, object] = {
                "name": host.name,
                "ip": host.addr,
                "ssh_port": host.port,
                "gpu": DEFAULT_GPU,
                "vram_gb": DEFAULT_VRAM_GB,
                "gpus": DEFAULT_GPUS,
            }
            worker.update((workers_extra or {}).get(host.name, {}))
            workers.append(worker)
        config: dict[str, object] = {
            "user": self.user,
            "identity_file": str(self.client_key),
            "known_hosts": str(self.known_hosts),
            "host_key_policy": "strict",
            "timeouts": dict(DEFAULT_TIMEOUTS),
            "workers": workers,
        }
        config.update(top)
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    @staticmethod
    def unused_address() -> tuple[str, int]:
        """Return a loopback address and port where nothing listens (connects are refused)."""
        return UNUSED_ADDR, _free_port(UNUSED_ADDR)

    def full_filesystem(self) -> Path:
        """Return a mounted 4 MiB tmpfs filled to the last byte (mounted once per cluster)."""
        if self._fullfs is not None:
            return self._fullfs
        mount_point = self.base_dir / "fullfs"
        mount_point.mkdir(exist_ok=True)
        argv = [_tool("mount"), "-t", "tmpfs", "-o", f"size={FULLFS_BYTES}", "tmpfs"]
        result = subprocess.run(
            [*argv, str(mount_point)],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if result.returncode != 0:
            msg = (
                f"cannot mount a tmpfs at {mount_point} (needs root or CAP_SYS_ADMIN): "
                f"{result.stderr.strip()}"
            )
            raise RuntimeError(msg)
        self._fullfs = mount_point
        _fill(mount_point / "filler")
        return mount_point

    def _start_host(self, host: TestHost) -> None:
        """Start `host`, moving it to another port if someone took its port meanwhile."""
        for _attempt in range(3):
            try:
                host.start()
            except RuntimeError as exc:
                if "Address already in use" not in str(exc):
                    raise
                host.port = _free_port(host.addr)
                host._write_sshd_config()  # noqa: SLF001 (the cluster owns its hosts' layout)
            else:
                return
        host.start()


def install_stubs(host_dir: Path) -> None:
    """Put nvidia-smi, python3, dmesg and journalctl stand-ins into `host_dir`/bin/.

    Baking the absolute paths in (rather than symlinking) keeps the stubs' paths right
    whatever directory they are run from, and pins python3 to the interpreter running the
    tests. Their modes are read from files in `host_dir` (the sessions' $UGRO_STUB_DIR).
    """
    bin_dir = host_dir / "bin"
    bin_dir.mkdir(exist_ok=True)
    real_python = Path(sys.executable).resolve()
    replacements = {
        "@FIXTURES@": str(FIXTURES_DIR),
        "@REAL_PYTHON@": str(real_python),
        "@FAKETORCH@": str(STUBS_DIR / "faketorch"),
    }
    for name in ("nvidia-smi", "python3", "dmesg", "journalctl"):
        text = (STUBS_DIR / name).read_text(encoding="utf-8")
        for placeholder, value in replacements.items():
            text = text.replace(f"'{placeholder}'", shlex.quote(value))
        target = bin_dir / name
        target.write_text(text, encoding="utf-8")
        target.chmod(0o755)


def _fill(path: Path) -> None:
    """Write to `path` until the filesystem is full, in ever smaller pieces down to a byte."""
    chunk = 64 * 1024
    with path.open("wb", buffering=0) as out:
        while chunk:
            try:
                out.write(b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk //= 2


__all__ = ["GPU_MODES", "HEALTH_MODES", "TORCH_MODES", "TestCluster", "TestHost"]
