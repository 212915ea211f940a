"""A/B of two or more builds of the `steady_state` example, normalised by
its in-process CPU-throughput control.

On the shared benchmark VMs the host's state moves single runs by ±30 %,
more than most changes worth measuring; within one process the example runs
weft's nested request and a memory-free control in alternating rounds, and
the ratio of the two cancels the host's state. Builds run interleaved,
alternating their order; rounds 0 and 1 (warm-up) are left out.

    cargo build --release -p weft-bench --example steady_state
    cp target/release/examples/steady_state /tmp/ss_a   # then change, rebuild:
    cp target/release/examples/steady_state /tmp/ss_b
    python3 scripts/steady_ab.py /tmp/ss_a /tmp/ss_b 6

Prints, per build, the median ns per span over processes and the median
span/control ratio with its quartiles (lower is faster).
"""

import statistics
import subprocess
import sys


def run(binary: str) -> tuple[float, float]:
    out = subprocess.run([binary, "10", "100000"], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in out.splitlines() if line.strip() and line.split()[0].isdigit()][2:]
    if not rows:
        sys.exit(f"{binary}: no rounds in its output")
    span = statistics.median(float(r[1]) for r in rows)
    ratio = statistics.median(float(r[1]) / float(r[2]) for r in rows)
    return span, ratio


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    binaries, pairs = sys.argv[1:-1], int(sys.argv[-1])
    results: dict[str, list[tuple[float, float]]] = {b: [] for b in binaries}
    for i in range(pairs):
        for b in binaries if i % 2 == 0 else binaries[::-1]:
            results[b].append(run(b))
    for b, rs in results.items():
        spans = sorted(s for s, _ in rs)
        ratios = sorted(r for _, r in rs)
        q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        print(
            f"{b:30s} ns/span median {statistics.median(spans):6.1f} (min {spans[0]:.1f})"
            f"  span/control median {statistics.median(ratios):5.2f} (quartiles {q[0]:.2f}-{q[2]:.2f})"
        )


if __name__ == "__main__":
    main()
