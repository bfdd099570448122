"""``python -m bench --quick --json F`` runs end to end and reports every figure.

A smoke test of the harness, not of speed: it checks that each figure exists and is a positive
number, or is null with a reason where the harness declares it may be unavailable. No figure is
compared with a target or a wall-clock limit (the machines are shared and noisy).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

PER_CALL = ["direct_p50_ms", "direct_p95_ms", "direct_p99_ms", "gateway_p50_ms", "gateway_p95_ms", "gateway_p99_ms",
            "ratio_p50", "ratio_p95", "ratio_p99", "overhead_p50_ms", "gateway_cpu_ms_per_call",
            "upstream_cpu_ms_per_call", "calls"]
POSITIVE = [
    *(f"call_{row}_{key}" for row in ("legacy_echo", "legacy_record", "modern_echo") for key in PER_CALL),
    "throughput_direct_cps", "throughput_gateway_cps", "throughput_ratio", "throughput_calls_per_side",
    "throughput_gateway_cpu_ms_per_call", "throughput_client_cpu_ms_per_call_direct",
    "throughput_client_cpu_ms_per_call_gateway",
    "gateway_peak_rss_mb", "gateway_rss_idle_mb", "gateway_start_s",
    "decision_p50_us", "decision_p99_us", "decisions",
    "listing_first_page_p50_ms", "listing_first_page_p95_ms", "listing_full_walk_p50_ms", "listing_tools",
    "listing_pages",
]
MAY_BE_UNAVAILABLE = {
    # figure: (its reason key, figures that come with it when available)
    "skill_ratio": ("skill_reason", ["skill_run_p50_ms", "skill_five_calls_p50_ms"]),
    "audit_ratio": ("audit_reason", ["audit_us_per_call", "audit_on_us_per_call", "audit_off_us_per_call"]),
}


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@pytest.mark.timeout(150)
def test_quick_run_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--json", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=140)
    assert proc.returncode == 0, f"python -m bench failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "Per-call latency" in proc.stdout and "Throughput" in proc.stdout

    result = json.loads(out.read_text())
    figures = result["figures"]
    missing = [k for k in POSITIVE if k not in figures]
    assert not missing, f"figures missing from the JSON: {missing}"
    not_positive = {k: figures[k] for k in POSITIVE if not _positive(figures[k])}
    assert not not_positive, f"figures that are not positive numbers: {not_positive}"

    for figure, (reason, companions) in MAY_BE_UNAVAILABLE.items():
        assert figure in figures, f"{figure} missing (it must be present, null when unavailable)"
        if figures[figure] is None:
            assert isinstance(figures.get(reason), str) and figures[reason], f"{figure} is null without a reason"
        else:
            assert _positive(figures[figure]), f"{figure} = {figures[figure]!r}"
            assert all(_positive(figures.get(k)) for k in companions), {k: figures.get(k) for k in companions}
    assert figures["listing_tools"] <= result["params"]["tools"] + 100  # visible tools (+ skills) of the 5,000

    assert result["params"]["quick"] is True
    for key in ("servers", "tools", "agents", "users", "calls", "clients"):
        assert _positive(result["params"][key]), key
    assert _positive(result["machine"]["cpu_count"]) and result["machine"]["python"]
    assert set(result["targets"]) >= {"overhead_p50_ms", "throughput_ratio", "decision_p50_us",
                                      "listing_first_page_p50_ms", "skill_per_step_overhead_pct",
                                      "audit_share_of_overhead_pct"}
