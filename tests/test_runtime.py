"""The precision a config asks for, and what runs where the CPU lacks native bf16."""

from __future__ import annotations

import logging

import pytest
import torch

from attnkit import runtime


@pytest.fixture
def cpu(monkeypatch):
    """Pretend the CPU has (True) or lacks (False) native bf16 kernels."""
    def pretend(native: bool) -> None:
        monkeypatch.setattr(runtime, "native_bf16", lambda: native)
        runtime.effective_precision.cache_clear()
    yield pretend
    runtime.effective_precision.cache_clear()


def linear_dtype(precision: str) -> torch.dtype:
    x, w = torch.randn(3, 4), torch.randn(5, 4)
    with runtime.autocast(precision):
        return torch.nn.functional.linear(x, w).dtype


def test_bf16_runs_in_bf16_where_the_cpu_has_it(cpu):
    cpu(True)
    assert runtime.effective_precision("bf16") == "bf16"
    assert linear_dtype("bf16") == torch.bfloat16
    assert linear_dtype("fp32") == torch.float32


def test_bf16_falls_back_to_fp32_with_one_warning(cpu, caplog):
    cpu(False)
    with caplog.at_level(logging.WARNING, logger="attnkit"):
        assert linear_dtype("bf16") == torch.float32
        assert linear_dtype("bf16") == torch.float32
    warnings = [r.getMessage() for r in caplog.records if "bf16" in r.getMessage()]
    assert len(warnings) == 1 and "running in fp32" in warnings[0]


def test_only_the_runtime_enters_autocast():
    """One function decides the precision a run computes in (and one switches it off for the fp32
    islands): nothing else calls torch.autocast."""
    from pathlib import Path

    package = Path(runtime.__file__).parent
    callers = [p.relative_to(package).as_posix() for p in sorted(package.rglob("*.py"))
               if "torch.autocast(" in p.read_text(encoding="utf-8")]
    assert callers == ["runtime.py"]


def test_full_precision_switches_autocast_off():
    x, w = torch.randn(3, 4), torch.randn(5, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with runtime.full_precision(x.device):
            assert torch.nn.functional.linear(x, w).dtype == torch.float32


def test_fp32_never_warns(cpu, caplog):
    cpu(False)
    with caplog.at_level(logging.WARNING, logger="attnkit"):
        assert linear_dtype("fp32") == torch.float32
    assert not caplog.records


def test_bf16_needs_the_cpu_instructions_not_just_onednn(monkeypatch):
    """oneDNN accepts bf16 on any AVX-512 CPU, but without AVX512-BF16 or AMX it emulates it, slower
    than fp32: only the instructions count."""
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    for avx512_bf16, amx, native in [(False, False, False), (True, False, True), (False, True, True)]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        runtime.native_bf16.cache_clear()
        assert runtime.native_bf16() is native
    runtime.native_bf16.cache_clear()
