"""A simulated node farm: up to some 60 000 SSH nodes on loopback, served by a few processes.

Real sshd per node (`sshcluster.py`) stays the truth for correctness; this farm is for scale,
where a thousand sshd (and a shell and a stub per command) would not fit on a small machine.
Each node is an address 127.77.x.y with its own listening socket on one shared port; a few
processes (asyncssh servers) split the addresses between them. A node speaks real SSH: key
exchange, host key, public-key authentication, a channel kept open for batches of commands
(it answers ugro's runner, `ugro.transport.batch`, a pass's records in one write as the runner
sends them when every command ends within its hold) or a channel per command.
Commands are answered with what the same stubs as the sshd test hosts print (tests/stubs/:
nvidia-smi, python3 with the fake torch, dmesg, journalctl), run once per distinct command
through /bin/sh with the stubs first on PATH, and replayed from then on.

What it does not model:

* a node's own sshd and shell: no fork per connection or command, no PAM, no login shell,
  no MaxStartups or MaxSessions, and a batch's runner is not run (its records are written
  directly); the farm's few processes share the machine with ugro;
* per-node state: every node answers alike (healthy stub modes, two RTX 4090s), except the
  `hung` ones, whose nvidia-smi and Python commands never answer;
* time: load, memory and disk figures are the farm machine's at the first answer, replayed;
  the kernel log's clock (`date`, `/proc/uptime`) is read afresh for each answer;
* the network: loopback has no latency, loss or bandwidth limit worth the name;
* failures of the connection itself (refused, host key changed, authentication failed).

    .venv/bin/python tests/farm.py serve ...   (what `Farm.start` runs in each process)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Self

import asyncssh
import yaml

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from sshcluster import DEFAULT_GPU, DEFAULT_GPUS, DEFAULT_VRAM_GB, install_stubs  # noqa: E402
from ugro.checks import xid  # noqa: E402
from ugro.transport import batch  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import TracebackType

#: The farm's addresses are 127.77.x.y: far from the sshd test hosts' 127.0.0.x.
NET = "127.77"
#: Addresses per third octet (y runs 1..PER_OCTET).
PER_OCTET = 250
MAX_NODES = 240 * PER_OCTET
#: How long the serving processes may take to listen on every address.
START_TIMEOUT_S = 120.0
#: Commands that never answer on a hung node: the GPU tools and the node's Python.
HANGS = re.compile(r"nvidia-smi|python")
#: The part of the kernel-log command that changes with every check (the window's length).
_WINDOW = re.compile(r"\$\(\(now - [0-9]+\)\)")
#: How every runner of batches of commands (ugro.transport.batch) begins.
BATCH = shlex.join(["sh", "-c", batch.SERVE, "ugro-batch", batch.MARK]) + " "
#: A backslash escape in a command's text as the client sends it (`ugro_def`).
_ESCAPE = re.compile(r"\\(.)")
#: The kernel-log answer's clock lines, refreshed at every answer.
_CLOCK = re.compile(rf"^{re.escape(xid.MARK)}(now|uptime) .*$", re.MULTILINE)


def address(index: int) -> str:
    """The address of node `index`."""
    if not 0 <= index < MAX_NODES:
        raise ValueError(f"node index must be 0..{MAX_NODES - 1}, got {index}")
    return f"{NET}.{index // PER_OCTET}.{index % PER_OCTET + 1}"


def name(index: int) -> str:
    """The name of node `index` in the configs the farm writes."""
    return f"f{index}"


class Farm:
    """Nodes 0..count-1 served by a few processes; `start` builds one, `stop` ends it."""

    __test__ = False

    def __init__(self, base_dir: Path, count: int, port: int, hung: frozenset[int]) -> None:
        """Use `Farm.start()`; this only records what the farm is."""
        self.base_dir = base_dir
        self.count = count
        self.port = port
        self.hung = hung
        self.client_key = base_dir / "client_key"
        self.known_hosts = base_dir / "known_hosts"
        self.processes: list[subprocess.Popen[bytes]] = []

    @classmethod
    def start(
        cls, base_dir: Path, count: int, *, processes: int = 4, hung: Iterable[int] = ()
    ) -> Farm:
        """Generate keys and stubs under `base_dir`, and serve `count` nodes from `processes`."""
        if not 1 <= count <= MAX_NODES:
            raise ValueError(f"count must be 1..{MAX_NODES}, got {count}")
        base_dir = base_dir.resolve()
        base_dir.mkdir(parents=True, exist_ok=True)
        farm = cls(base_dir, count, _free_port(address(0)), frozenset(hung))
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        host_key.write_private_key(str(base_dir / "host_key"))
        client = asyncssh.generate_private_key("ssh-ed25519")
        client.write_private_key(str(farm.client_key))
        farm.client_key.chmod(0o600)
        client.write_public_key(str(base_dir / "client_key.pub"))
        # A line per node, as ssh-keyscan writes a fleet's file (the nodes share one key):
        # ugro must not pay for the file's size at every connect.
        public = host_key.export_public_key().decode().strip()
        farm.known_hosts.write_text(
            "".join(f"[{address(i)}]:{farm.port} {public}\n" for i in range(count)),
            encoding="utf-8",
        )
        (base_dir / "hung").write_text(" ".join(map(str, sorted(farm.hung))), encoding="utf-8")
        install_stubs(base_dir)
        try:
            for index in range(processes):
                farm.processes.append(farm._spawn(index, processes))
            farm._wait_ready(processes)
        except BaseException:
            farm.stop()
            raise
        return farm

    def __enter__(self) -> Self:
        """Use the farm as a context manager that stops it on exit."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop every serving process."""
        self.stop()

    def pids(self) -> list[int]:
        """The serving processes' pids, for measuring what the farm itself costs."""
        return [p.pid for p in self.processes if p.poll() is None]

    def write_config(self, path: Path, count: int | None = None, **top: object) -> Path:
        """Write a cluster.yaml for the first `count` nodes (default all) and return its path.

        `top` overrides or adds top-level keys.
        """
        workers = [
            {
                "name": name(i),
                "ip": address(i),
                "gpu": DEFAULT_GPU,
                "vram_gb": DEFAULT_VRAM_GB,
                "gpus": DEFAULT_GPUS,
            }
            for i in range(self.count if count is None else count)
        ]
        config: dict[str, object] = {
            "user": "farm",
            "ssh_port": self.port,
            "identity_file": str(self.client_key),
            "known_hosts": str(self.known_hosts),
            "host_key_policy": "strict",
            "workers": workers,
        }
        config.update(top)
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    def stop(self) -> None:
        """Stop every serving process; idempotent."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []

    def _spawn(self, index: int, of: int) -> subprocess.Popen[bytes]:
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "serve",
            str(self.base_dir),
            str(self.port),
            str(self.count),
            str(index),
            str(of),
        ]
        log = (self.base_dir / f"serve-{index}.log").open("wb")
        with log:
            return subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def _wait_ready(self, processes: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        ready = [self.base_dir / f"ready-{i}" for i in range(processes)]
        while not all(path.exists() for path in ready):
            for i, process in enumerate(self.processes):
                if process.poll() is not None:
                    log = (self.base_dir / f"serve-{i}.log").read_text(errors="replace")
                    raise RuntimeError(f"farm process {i} exited {process.returncode}:\n{log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the farm did not listen within {START_TIMEOUT_S:g} s")
            time.sleep(0.1)


def _free_port(addr: str) -> int:
    with socket.socket() as probe:
        probe.bind((addr, 0))
        return int(probe.getsockname()[1])


# --- the serving processes ---------------------------------------------------------------------


class Answers:
    """What a healthy stub node prints for each command: run once through /bin/sh, replayed."""

    def __init__(self, base_dir: Path) -> None:
        """Run commands with the stubs under `base_dir` first on PATH, as a test host does."""
        self.env = {
            "HOME": str(base_dir),
            "UGRO_STUB_DIR": str(base_dir),
            "PATH": f"{base_dir}/bin:/usr/local/bin:/usr/bin:/bin",
        }
        self._known: dict[str, asyncio.Task[tuple[bytes, bytes, int]]] = {}

    async def answer(self, command: str) -> tuple[bytes, bytes, int]:
        """Stdout, stderr and exit status of `command` on a healthy stub node."""
        key = _WINDOW.sub("$((now - N))", command)
        task = self._known.get(key)
        if task is None:
            task = asyncio.ensure_future(self._run(command))
            self._known[key] = task
        stdout, stderr, status = await asyncio.shield(task)
        if key != command or xid.MARK in command:
            stdout = _CLOCK.sub(_clock, stdout.decode(errors="replace")).encode()
        return stdout, stderr, status

    @staticmethod
    def cap(command: str) -> int:
        """A runner's cap on each stream: the first word after the mark (`batch.opening`)."""
        return int(command.removeprefix(BATCH).split()[0])

    async def _run(self, command: str) -> tuple[bytes, bytes, int]:
        process = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await process.communicate()
        return stdout, stderr, process.returncode or 0


def _unescaped(match: re.Match[str]) -> str:
    """One `printf %b` escape of a command's text, as the runner's `ugro_def` reads it."""
    return "\n" if match.group(1) == "n" else match.group(1)


def _clock(match: re.Match[str]) -> str:
    """The kernel-log answer's clock line, as the node would print it now."""
    if match.group(1) == "now":
        return f"{xid.MARK}now {int(time.time())}"
    uptime = Path("/proc/uptime").read_text(encoding="ascii").split()[0]
    return f"{xid.MARK}uptime {uptime}"


async def _record(answers: Answers, cap: int, k: int, command: str) -> bytes:
    """Command `k`'s record, as SERVE prints it: its header, then both streams cut at `cap`."""
    stdout, stderr, status = await answers.answer(command)
    stdout, stderr = stdout[:cap], stderr[:cap]
    return f"{batch.MARK} {k} {status} {len(stdout)} {len(stderr)}\n".encode() + stdout + stderr


async def serve(base_dir: Path, port: int, count: int, index: int, of: int) -> None:
    """Listen on the addresses of nodes index, index + of, ... until SIGTERM."""
    answers = Answers(base_dir)
    hung_text = (base_dir / "hung").read_text(encoding="utf-8").split()
    hung = {address(int(i)) for i in hung_text}
    host_key = asyncssh.read_private_key(str(base_dir / "host_key"))
    authorized = asyncssh.import_authorized_keys(
        (base_dir / "client_key.pub").read_text(encoding="utf-8")
    )

    async def handle(process: asyncssh.SSHServerProcess[bytes]) -> None:
        command = process.command or ""
        node = process.get_extra_info("sockname")[0]
        if command.startswith(BATCH):
            await answer_batch(process, command, hangs=node in hung)
            return
        if node in hung and HANGS.search(command):
            await process.channel.wait_closed()
            return
        stdout, stderr, status = await answers.answer(command)
        process.stdout.write(stdout)
        process.stderr.write(stderr)
        process.exit(status)

    async def answer_batch(
        process: asyncssh.SSHServerProcess[bytes], command: str, *, hangs: bool
    ) -> None:
        """Answer as SERVE would: up, then per `ugro_run` line the records and done.

        The farm answers at once, so a pass's records go out together, as SERVE's do when
        every command ends within the hold; a hung node's, when the hold ends.
        """
        cap = answers.cap(command)
        named: dict[str, str] = {}
        process.stdout.write(f"{batch.MARK} up\n".encode())

        while line := (await process.stdin.readline()).decode():
            words = shlex.split(line)
            if words[0] == "ugro_def":
                named[words[1]] = _ESCAPE.sub(_unescaped, words[2])
                continue
            pass_id, watchdog, hold, keys = words[1], float(words[2]), float(words[4]), words[6::2]
            commands = [named[key] for key in keys]
            stuck = [hangs and HANGS.search(part) is not None for part in commands]
            records = await asyncio.gather(
                *(
                    _record(answers, cap, k, part)
                    for k, part in enumerate(commands, 1)
                    if not stuck[k - 1]
                )
            )
            if any(stuck):
                await asyncio.sleep(hold)
                process.stdout.write(b"".join(records))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.channel.wait_closed(), watchdog)
                    return
                records = []
            process.stdout.write(b"".join([*records, f"{batch.MARK} done {pass_id}\n".encode()]))
        process.exit(0)

    servers = [
        await asyncssh.listen(
            address(i),
            port,
            server_host_keys=[host_key],
            authorized_client_keys=authorized,
            process_factory=handle,
            encoding=None,
            allow_pty=False,
            x11_forwarding=False,
            agent_forwarding=False,
            sftp_factory=None,
            reuse_address=True,
        )
        for i in range(index, count, of)
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    (base_dir / f"ready-{index}").write_text(str(os.getpid()), encoding="utf-8")
    await stop.wait()
    for server in servers:
        server.close()
    with contextlib.suppress(Exception):
        await asyncio.gather(*(s.wait_closed() for s in servers))


def main() -> None:
    """`farm.py serve BASE_DIR PORT COUNT INDEX OF`: one of the farm's serving processes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["serve"])
    parser.add_argument("base_dir", type=Path)
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("index", type=int)
    parser.add_argument("of", type=int)
    args = parser.parse_args()
    asyncio.run(serve(args.base_dir, args.port, args.count, args.index, args.of))


if __name__ == "__main__":
    main()
