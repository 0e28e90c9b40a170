"""Draws results.json of the Goldfish example as an SVG bar chart (Python standard library only).

usage: plot.py RESULTS.json OUTPUT.svg

Left panel: exact match and token match on the memorized documents (and, lighter, on the
held-out ones) per run; right panel: held-out loss per run. Every bar carries its value.
"""
import json
import sys
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 760, 330
TOP, BOTTOM = 40, 250          # plot area, y pixels
COLORS = {"exact": "#1f77b4", "token": "#ff7f0e", "loss": "#2ca02c"}


def text(x, y, value, size=11, anchor="middle", weight="normal", rotate=None):
    transform = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" font-family="sans-serif"{transform}>{escape(value)}</text>')


def bar(x, width, value, top_value, color, label, opacity=1.0):
    height = (BOTTOM - TOP) * value / top_value
    return [f'<rect x="{x:.1f}" y="{BOTTOM - height:.1f}" width="{width:.1f}" '
            f'height="{height:.1f}" fill="{color}" fill-opacity="{opacity}"/>',
            text(x + width / 2, BOTTOM - height - 3, label, size=9)]


def axis(left, right, top_value, ticks, title):
    parts = [f'<line x1="{left}" y1="{BOTTOM}" x2="{right}" y2="{BOTTOM}" stroke="black"/>',
             f'<line x1="{left}" y1="{TOP}" x2="{left}" y2="{BOTTOM}" stroke="black"/>',
             text((left + right) / 2, TOP - 18, title, size=12, weight="bold")]
    for tick in ticks:
        y = BOTTOM - (BOTTOM - TOP) * tick / top_value
        parts.append(f'<line x1="{left - 4}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" '
                     f'stroke="#dddddd"/>')
        parts.append(text(left - 6, y + 4, f"{tick:g}", size=10, anchor="end"))
    return parts


def legend(x, y, entries):
    parts = []
    for i, (label, color, opacity) in enumerate(entries):
        parts.append(f'<rect x="{x}" y="{y + 14 * i - 9}" width="10" height="10" fill="{color}" '
                     f'fill-opacity="{opacity}"/>')
        parts.append(text(x + 14, y + 14 * i, label, size=10, anchor="start"))
    return parts


def draw(results):
    runs = results["runs"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>']
    # memorization panel
    left, right = 50, 480
    parts += axis(left, right, 1.0, [0, 0.25, 0.5, 0.75, 1.0],
                  "Greedy recall of 32 tokens after a 32-token prefix")
    group = (right - left) / len(runs)
    width = group / 6
    for i, run in enumerate(runs):
        x = left + group * i + width
        values = [(run["memorized"]["exact_match"], COLORS["exact"], 1.0),
                  (run["memorized"]["token_match"], COLORS["token"], 1.0),
                  (run["held_out"]["exact_match"], COLORS["exact"], 0.35),
                  (run["held_out"]["token_match"], COLORS["token"], 0.35)]
        for j, (value, color, opacity) in enumerate(values):
            parts += bar(x + j * width, width * 0.9, value, 1.0, color, f"{value:.2f}", opacity)
        parts.append(text(left + group * (i + 0.5), BOTTOM + 16, run["label"], size=10))
        parts.append(text(left + group * (i + 0.5), BOTTOM + 29, run["detail"], size=9))
    parts += legend(left + 8, BOTTOM + 50, [("exact match, memorized set", COLORS["exact"], 1.0),
                                             ("token match, memorized set", COLORS["token"], 1.0)])
    parts += legend(left + 208, BOTTOM + 50, [("exact match, held-out set", COLORS["exact"], 0.35),
                                              ("token match, held-out set", COLORS["token"], 0.35)])
    # held-out loss panel
    left, right = 560, 740
    top_value = max(run["valid_loss"] for run in runs) * 1.15
    step = 0.5 if top_value <= 4 else 1.0
    ticks = [step * i for i in range(int(top_value / step) + 1)]
    parts += axis(left, right, top_value, ticks, "Held-out loss (nats/token)")
    group = (right - left) / len(runs)
    for i, run in enumerate(runs):
        x = left + group * i + group * 0.2
        parts += bar(x, group * 0.6, run["valid_loss"], top_value, COLORS["loss"],
                     f"{run['valid_loss']:.3f}")
        parts.append(text(x + group * 0.3, BOTTOM + 12, run["short"], size=9, anchor="end",
                          rotate=-35))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py RESULTS.json OUTPUT.svg")
    with open(sys.argv[1]) as f:
        results = json.load(f)
    with open(sys.argv[2], "w") as f:
        f.write(draw(results))


if __name__ == "__main__":
    main()
