"""What the machine can give a run: the memory available now."""

from __future__ import annotations

from pathlib import Path

MEMINFO = Path("/proc/meminfo")
#: cgroup v2 (a container's or a batch job's limit) and v1.
CGROUP_LIMITS = (
    (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
    (
        Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
        Path("/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ),
)


def available_memory() -> int | None:
    """Bytes of memory available to new allocations without swapping: Linux's
    MemAvailable, or less where a cgroup (container, SLURM job) limits this process;
    None where the system says neither."""
    candidates = [m for m in (_meminfo_available(), *map(_cgroup_headroom, CGROUP_LIMITS)) if m is not None]
    return min(candidates, default=None)


def _meminfo_available() -> int | None:
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_headroom(files: tuple[Path, Path]) -> int | None:
    """A cgroup's limit less its usage; None where there is no (or no finite) limit."""
    limit_file, usage_file = files
    try:
        limit, usage = limit_file.read_text().strip(), int(usage_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if not limit.isdigit() or int(limit) >= 1 << 60:  # "max", or v1's "unlimited" sentinel
        return None
    return max(int(limit) - usage, 0)
