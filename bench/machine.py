"""What the bench scripts say of the machine they measured on."""

from pathlib import Path


def cpu() -> str:
    """The processor's model name (``?`` where /proc/cpuinfo does not say)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"
