#!/usr/bin/env python3
"""Two training runs' loss curves in one SVG, and how far apart they are (tools/e2e_overlay.sh).

    python tools/loss_overlay.py LORAC_TRAIN_LOG.jsonl REF_LOSSES.txt OUT.svg [--window 25]

LORAC_TRAIN_LOG.jsonl is `lorac train`'s train_log.jsonl (lines with "step" and "loss"); REF_LOSSES.txt
is tools/peft_trajectory_ref.py's losses.txt ("step loss lr grad_norm"). Only the steps both have are
drawn: each run's per-step losses (thin) and their moving averages over --window steps (thick). Printed:
the mean and largest gap between the two moving averages, and the noise they are measured against (the
standard deviation of a run's per-step loss about its own moving average, averaged over both runs).
"Coincide within noise" (docs/e2e.md) means the largest gap of the averages stays below that noise.
Standard library only; the SVG is written under a temporary name and renamed.
"""
import argparse
import json
import math
import os


def read_lorac(path):
    out = {}
    for line in open(path, encoding="utf-8"):
        if '"loss"' in line:
            r = json.loads(line)
            out[int(r["step"])] = float(r["loss"])
    return out


def read_ref(path):
    out = {}
    for line in open(path, encoding="utf-8"):
        f = line.split()
        if len(f) >= 2:
            out[int(f[0])] = float(f[1])
    return out


def moving_average(xs, w):
    """Centred where it can be, shortened at the ends."""
    out = []
    for i in range(len(xs)):
        lo, hi = max(0, i - w // 2), min(len(xs), i + w // 2 + 1)
        out.append(sum(xs[lo:hi]) / (hi - lo))
    return out


def svg(path, steps, curves, title):
    W, H, L, R, T, B = 900, 480, 60, 20, 40, 50
    ys = [y for _, ys_, _, _ in curves for y in ys_]
    y0, y1 = min(ys), max(ys)
    y0, y1 = y0 - 0.02 * (y1 - y0), y1 + 0.02 * (y1 - y0)
    s0, s1 = steps[0], max(steps[-1], steps[0] + 1)

    def px(s, y):
        return L + (s - s0) / (s1 - s0) * (W - L - R), T + (y1 - y) / (y1 - y0) * (H - T - B)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>',
             f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
             f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>']
    for k in range(6):
        y = y0 + (y1 - y0) * k / 5
        _, py = px(s0, y)
        parts.append(f'<text x="{L - 6}" y="{py + 4:.1f}" text-anchor="end">{y:.2f}</text>')
        s = s0 + (s1 - s0) * k / 5
        qx, _ = px(s, y0)
        parts.append(f'<text x="{qx:.1f}" y="{H - B + 18}" text-anchor="middle">{s:.0f}</text>')
    parts.append(f'<text x="{(L + W - R) / 2}" y="{H - 10}" text-anchor="middle">optimizer step</text>')
    parts.append(f'<text x="16" y="{(T + H - B) / 2}" transform="rotate(-90 16 {(T + H - B) / 2})" '
                 'text-anchor="middle">training loss (batch mean, label smoothing included)</text>')
    for i, (name, ys_, colour, width) in enumerate(curves):
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (px(s, y) for s, y in zip(steps, ys_)))
        op = 0.35 if width < 1.5 else 1.0
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="{width}" stroke-opacity="{op}" points="{pts}"/>')
        if width >= 1.5:
            ly = T + 16 + 16 * (i // 2)
            parts.append(f'<line x1="{W - R - 230}" y1="{ly - 4}" x2="{W - R - 205}" y2="{ly - 4}" stroke="{colour}" '
                         f'stroke-width="{width}"/><text x="{W - R - 200}" y="{ly}">{name}</text>')
    parts.append("</svg>\n")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(parts))
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("lorac_log")
    ap.add_argument("ref_losses")
    ap.add_argument("out_svg")
    ap.add_argument("--window", type=int, default=25)
    ap.add_argument("--title", default="lorac and PyTorch + PEFT: the same recipe, batches and initial adapter")
    a = ap.parse_args()
    lo, ref = read_lorac(a.lorac_log), read_ref(a.ref_losses)
    steps = sorted(set(lo) & set(ref))
    if len(steps) < 2:
        raise SystemExit(f"{a.ref_losses}: fewer than 2 steps in common with {a.lorac_log}")
    xl, xr = [lo[s] for s in steps], [ref[s] for s in steps]
    ml, mr = moving_average(xl, a.window), moving_average(xr, a.window)
    noise = 0.5 * sum(math.sqrt(sum((x - m) ** 2 for x, m in zip(xs, ms)) / len(xs)) for xs, ms in ((xl, ml), (xr, mr)))
    gaps = [abs(p - q) for p, q in zip(ml, mr)]
    step_gaps = [abs(p - q) for p, q in zip(xl, xr)]
    svg(a.out_svg, steps, [("lorac", xl, "#1f77b4", 1.0), ("PyTorch + PEFT", xr, "#d62728", 1.0),
                           (f"lorac, mean of {a.window}", ml, "#1f77b4", 2.5),
                           (f"PyTorch + PEFT, mean of {a.window}", mr, "#d62728", 2.5)], a.title)
    print(f"{len(steps)} steps ({steps[0]}..{steps[-1]}): per step |lorac - PEFT| mean {sum(step_gaps) / len(steps):.4f}, "
          f"largest {max(step_gaps):.4f}; moving averages ({a.window}) apart by {sum(gaps) / len(gaps):.4f} on average, "
          f"{max(gaps):.4f} at most (step {steps[gaps.index(max(gaps))]}); per-step noise about the average {noise:.4f}")
    print(f"first step: lorac {xl[0]:.5f}, PEFT {xr[0]:.5f}; last {window_tail(xl, a.window):.4f} vs "
          f"{window_tail(xr, a.window):.4f} (mean of the last {min(a.window, len(xl))} steps)")
    print(f"wrote {a.out_svg}")
    return 0


def window_tail(xs, w):
    t = xs[-w:]
    return sum(t) / len(t)


if __name__ == "__main__":
    raise SystemExit(main())
