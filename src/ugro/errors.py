"""Every error ugro raises, so callers catch ugro's own types and never a library's.

::

    UgroError
    ├── ConfigError            cluster.yaml is missing, unreadable or invalid
    ├── StateError             the state file cannot be read or written
    │   └── NotWritten         a file ugro keeps cannot be written (a full disk, say)
    ├── SchedulerError         the workload manager (Slurm) refused or did not answer
    ├── PrometheusError        the Prometheus holding the fleet's verdicts cannot be read
    ├── DuplicateCheckError    two checks of the registry have one name (ugro.checks)
    ├── InvalidOutput          a node printed what its command cannot (also a ValueError)
    └── TransportError         talking to a node failed
        ├── ConnectError       no session could be opened
        │   ├── ConnectionRefused   nothing listens on the SSH port
        │   ├── ConnectTimeout      no SSH handshake within connect_timeout
        │   ├── AuthFailed          the server refused every key we offered
        │   ├── CredentialsError    our identity file or known_hosts cannot be used
        │   ├── HostKeyUnknown      no known_hosts entry for the node (strict policy)
        │   └── HostKeyChanged      the node's key differs from known_hosts
        ├── CommandTimeout     a command did not finish within its timeout
        └── Disconnected       an open session broke
"""

from __future__ import annotations


class UgroError(Exception):
    """Root of ugro's errors; its message is written for an operator."""


class ConfigError(UgroError):
    """cluster.yaml is missing, unreadable or invalid; the message lists every problem."""


class StateError(UgroError):
    """The state file cannot be read or written."""


class NotWritten(StateError):
    """A file ugro keeps cannot be written (a full disk, say); what it held is unharmed.

    Unlike a file that cannot be read, this leaves the decision being written to the caller:
    `ugro cordon` still tells the scheduler.
    """


class SchedulerError(UgroError):
    """The workload manager refused a drain or resume, or did not answer in time."""


class PrometheusError(UgroError):
    """The Prometheus that holds the fleet's verdicts did not answer, or not with verdicts."""


class InvalidOutput(UgroError, ValueError):
    """A node's answer is not what its command prints: a field garbled or out of its range.

    Also a ValueError, which is what a check's parser raises for output it cannot read; the
    sweep makes the check unknown with this message.
    """


class TransportError(UgroError):
    """Talking to a node failed."""


class ConnectError(TransportError):
    """No session could be opened to the node."""


class ConnectionRefused(ConnectError):
    """Nothing listens on the node's SSH port."""


class ConnectTimeout(ConnectError):
    """The node did not complete the SSH handshake in time."""


class AuthFailed(ConnectError):
    """The SSH server refused every key offered."""


class CredentialsError(ConnectError):
    """The node's identity file or known_hosts is unreadable, encrypted or not what it claims."""


class HostKeyUnknown(ConnectError):
    """The node has no entry in known_hosts and the policy is strict."""


class HostKeyChanged(ConnectError):
    """The node presented a key that differs from its known_hosts entry."""


class CommandTimeout(TransportError):
    """A command did not finish within its timeout."""


class Disconnected(TransportError):
    """An open session broke while a command ran."""
