"""Confinement the plugin process applies to itself before any plugin code is imported.

Run first thing by `runner.py`, with the limits the server sent in its hello:
- resource limits: address space (memory), CPU seconds, open files, file size, no core dumps,
  and a lower scheduling priority than the server;
- no new privileges, every capability dropped (a root parent's child cannot raise its limits
  back, read files it does not own, or signal and trace other processes);
- Landlock (Linux 5.13+): the file system is read-only on the interpreter and the plugin's code,
  writable only in the plugin's working directory, and nothing else (not the server's data
  directory, its database or /proc); TCP connections only to the server's port unless the
  manifest asks for the network (Linux 6.7+); no signals to or abstract sockets of processes
  outside the sandbox (Linux 6.12+).
Standard library only (ctypes)."""

from __future__ import annotations

import ctypes
import os
import resource
import struct
import sys
from typing import Any

_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_SYS_CAPSET = 126
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAPBSET_DROP = 24
_PR_SET_DUMPABLE = 4

_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1, 2, 4, 8
_FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1, 2
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1, 2

_libc = ctypes.CDLL(None, use_errno=True)


def _syscall(*args: Any) -> int:
    r = int(_libc.syscall(*args))
    if r < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return r


def set_limits(memory_mb: int, cpu_seconds: int, open_files: int, file_size_mb: int) -> None:
    mem = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
    size = file_size_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= 1 << 13  # REFER
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


def landlock_abi() -> int:
    try:
        return _syscall(_SYS_LANDLOCK_CREATE_RULESET, None, 0, 1)
    except OSError:
        return 0


def _add_path(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path that does not exist needs no rule
    try:
        if not os.path.isdir(path):
            rights &= _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
        attr = struct.pack("=Qi", rights, fd)
        _syscall(_SYS_LANDLOCK_ADD_RULE, ruleset, 1, ctypes.c_char_p(attr), 0)
    finally:
        os.close(fd)


def landlock(read_paths: list[str], write_paths: list[str], tcp_ports: list[int] | None) -> int:
    """Restrict this process; returns the Landlock ABI used (0: not available, nothing done).
    `tcp_ports` None leaves the network alone."""
    abi = landlock_abi()
    if abi <= 0:
        return 0
    fs = _fs_rights(abi)
    net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 and tcp_ports is not None else 0
    scoped = (_SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL) if abi >= 6 else 0
    attr = struct.pack("=QQQ", fs, net, scoped)
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    ruleset = _syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.c_char_p(attr[:size]), size, 0)
    try:
        read = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
        for p in read_paths:
            _add_path(ruleset, p, read)
        for p in write_paths:
            _add_path(ruleset, p, fs)
        for port in (tcp_ports or []) if net else []:
            _syscall(_SYS_LANDLOCK_ADD_RULE, ruleset, 2,
                     ctypes.c_char_p(struct.pack("=QQ", _NET_CONNECT_TCP, port)), 0)
        _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        _syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0)
    finally:
        os.close(ruleset)
    return abi


def drop_privileges() -> None:
    """No new privileges, no capabilities (effective, permitted, inheritable, bounding)."""
    _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    _libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    for cap in range(64):
        if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows (or not allowed: none held)
    header = struct.pack("=Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = bytes(24)
    hdr_buf = ctypes.create_string_buffer(header, len(header))
    data_buf = ctypes.create_string_buffer(data, len(data))
    _syscall(_SYS_CAPSET, hdr_buf, data_buf)


def confine(limits: dict[str, Any], read_paths: list[str], write_paths: list[str],
            tcp_ports: list[int] | None) -> dict[str, Any]:
    """Apply everything; what was applied (reported to the server in `ready`)."""
    set_limits(int(limits["memory_mb"]), int(limits["cpu_seconds"]), int(limits["open_files"]),
               int(limits["file_size_mb"]))
    os.nice(10)  # a busy plugin yields the CPU to the server first
    interpreter = [os.path.realpath(p) for p in {sys.base_prefix, sys.prefix, os.path.dirname(sys.executable)}]
    system = ["/usr", "/lib", "/lib64", "/etc/ld.so.cache", "/etc/localtime"]
    abi = landlock([*interpreter, *system, *read_paths], [*write_paths, "/dev/null"], tcp_ports)
    drop_privileges()
    return {"landlock_abi": abi, "rlimits": True, "capabilities": "none"}
