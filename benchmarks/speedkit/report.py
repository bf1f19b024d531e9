"""Tables of benchmarks/speed.py: stdout, docs/benchmark.md and docs/benchmark.png."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ShapeResult:
    shape: tuple  # N, T, D, H
    timing: object  # harness.Timing
    labels: dict  # key -> label, in table order
    ours: set
    gemm_s: float
    elem_s: float
    gemms: list
    memory: dict = field(default_factory=dict)  # key -> peak / floor, None (not measurable) or absent

    @property
    def bound(self):
        return self.gemm_s + self.elem_s

    def t(self, key):
        return self.timing.median(key)

    def peers(self):
        return [k for k in self.labels if k not in self.ours]

    def fastest_peer(self):
        peers = self.peers()
        return min(peers, key=self.t) if peers else None

    def vs_fastest(self, key):
        best = self.fastest_peer()
        return self.t(key) / self.t(best) if best else math.nan

    def fraction(self, key):
        return self.bound / self.t(key)

    def memory_text(self, key):
        if key not in self.memory:
            return "n/a"
        value = self.memory[key]
        if value is None:
            return "n/a"
        if isinstance(value, tuple):  # (ratio, "xla")
            return "%.2f (XLA)" % value[0]
        return "%.2f" % value


def shape_text(shape):
    return "(%s)" % ",".join(str(s) for s in shape)


def ms(seconds):
    value = seconds * 1e3
    return "%.3g" % value if value < 100 else "%.0f" % value


def geomean(values):
    values = [v for v in values if v and not math.isnan(v)]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def target_name(key):
    return "%s target" % key


def comparisons(results):
    """Per cell: {(our key, peer key): [ratio per shape]}, plus ("best", "torch.nn") for the best of ours."""
    out = {}
    for cell, shapes in results.items():
        table = {}
        for r in shapes:
            for ours in [k for k in r.labels if k in r.ours]:
                for peer in r.peers():
                    table.setdefault((ours, peer), []).append((r.shape, r.t(ours) / r.t(peer)))
            mine = [k for k in r.labels if k in r.ours]
            if mine and "torch.nn" in r.labels:
                best = min(r.t(k) for k in mine)
                table.setdefault(("best", "torch.nn"), []).append((r.shape, best / r.t("torch.nn")))
        out[cell] = table
    return out


def losses(results, labels_of):
    """Plain sentences for every shape where one of our targets is slower than a peer."""
    lines = []
    for cell, table in comparisons(results).items():
        for (ours, peer), pairs in table.items():
            if ours == "best":
                continue
            slow = [(s, r) for s, r in pairs if r > 1]
            if slow:
                parts = ["%.2fx slower than %s at %s" % (r, labels_of[cell][peer], shape_text(s)) for s, r in slow]
                lines.append("%s: %s is %s" % (cell, target_name(ours), "; ".join(parts)))
    return lines


def summary_rows(results, labels_of):
    """Rows of the geometric-mean summary: (cell, comparison label, geomean, shapes counted)."""
    rows = []
    for cell, table in comparisons(results).items():
        for (ours, peer), pairs in table.items():
            left = "best of our targets" if ours == "best" else target_name(ours)
            rows.append((cell, "%s / %s" % (left, labels_of[cell][peer]), geomean([r for _, r in pairs]), len(pairs)))
        for key in next(iter(results[cell])).labels if results[cell] else []:
            fr = geomean([r.fraction(key) for r in results[cell] if key in r.labels])
            rows.append((cell, "%s: fraction of the floor" % labels_of[cell][key], fr, len(results[cell])))
    return rows


# ---- stdout --------------------------------------------------------------------------------------

def print_shape(cell, r, out):
    timing = r.timing
    out("")
    out("%s %s  floor %s ms (GEMMs %s + elementwise %s)  %s"
        % (cell, shape_text(r.shape), ms(r.bound), ms(r.gemm_s), ms(r.elem_s), timing.text()))
    out("  %-28s %10s %19s %9s %9s %11s %6s" % ("implementation", "median ms", "min-max ms", "/fastest",
                                             "of floor", "mem/min", "calls"))
    for key, label in r.labels.items():
        lo, hi = timing.spread(key)
        out("  %-28s %10s %19s %8.2fx %8.0f%% %11s %6d"
            % (label + (" *" if key in r.ours else ""), ms(r.t(key)), "%s-%s" % (ms(lo), ms(hi)),
               r.vs_fastest(key), 100 * r.fraction(key), r.memory_text(key), timing.reps[key]))
    peers = r.peers()
    for ours in [k for k in r.labels if k in r.ours]:
        parts = ["%.2fx %s" % (r.t(ours) / r.t(p), r.labels[p]) for p in peers]
        out("  %s / each peer: %s" % (target_name(ours), ", ".join(parts)))


def print_summary(results, labels_of, out):
    out("")
    out("Summary: geometric means over the shapes (time ratios: > 1 means the left side is slower)")
    for cell, label, value, count in summary_rows(results, labels_of):
        if "fraction" in label:
            out("  %-14s %-62s %6.0f%%" % (cell, label, 100 * value))
        else:
            out("  %-14s %-62s %7.2f  (%d shapes)" % (cell, label, value, count))
    lines = losses(results, labels_of)
    out("")
    out("Where a target of ours loses to a peer:" if lines else "Our targets are not slower than any peer at any shape.")
    for line in lines:
        out("  " + line)


# ---- docs/benchmark.md ---------------------------------------------------------------------------

def markdown(results, labels_of, context):
    """The whole document; `context` carries the machine description, notes and definitions."""
    md = ["# Speed of the generated forward + backward passes", ""]
    md += ["Written by `python benchmarks/speed.py` (%s); do not edit by hand, re-run the script." % context["command"], ""]
    md += ["## Machine", ""]
    md += ["- %s: %s" % (k, v) for k, v in context["machine"]]
    md += ["", "## Method", ""]
    md += ["- " + line for line in context["method"]]
    md += ["", "## Cross-check (float64, (N,T,D,H) = %s, against the generated numpy module)" % context["check_shape"], ""]
    md += ["| cell | implementation | verdict |", "|---|---|---|"]
    for cell, label, ok, text in context["checks"]:
        md.append("| %s | %s | %s %s |" % (cell, label, "pass" if ok else "**FAIL (excluded)**", text))
    if context["notes"]:
        md += ["", "Notes:", ""] + ["- " + n for n in context["notes"]]
    md += ["", "## Results", ""]
    md += ["Each entry: median time of the kept rounds [min-max] · ratio to the fastest peer (our targets not "
           "counted) · fraction of the floor (floor / time) · peak memory / memory floor.  Rows marked * are our "
           "generated targets.", ""]
    for cell, shapes in results.items():
        if not shapes:
            continue
        md += ["### %s" % cell, ""]
        header = "| implementation | " + " | ".join(shape_text(r.shape) for r in shapes) + " |"
        md += [header, "|---" * (len(shapes) + 1) + "|"]
        for key, label in shapes[0].labels.items():
            row = []
            for r in shapes:
                if key not in r.labels:
                    row.append("")
                    continue
                lo, hi = r.timing.spread(key)
                row.append("%s ms [%s-%s] · %.2fx · %.0f%% · %s" % (ms(r.t(key)), ms(lo), ms(hi), r.vs_fastest(key),
                                                                    100 * r.fraction(key), r.memory_text(key)))
            md.append("| %s%s | %s |" % (label, " *" if key in shapes[0].ours else "", " | ".join(row)))
        md.append("| floor: GEMMs + elementwise | %s |" % " | ".join(
            "%s + %s ms" % (ms(r.gemm_s), ms(r.elem_s)) for r in shapes))
        md.append("| rounds kept (discarded: slow probe, busy CPUs) | %s |" % " | ".join(
            "%d (%d, %d)%s" % (r.timing.kept, r.timing.slow_probe, r.timing.busy,
                               " %d NOISY kept" % r.timing.noisy_kept if r.timing.noisy_kept else "")
            for r in shapes))
        md.append("")
        table = comparisons({cell: shapes})[cell]
        if table:
            md += ["| ratio (> 1: slower) | " + " | ".join(shape_text(r.shape) for r in shapes) + " | geomean |",
                   "|---" * (len(shapes) + 2) + "|"]
            for (ours, peer), pairs in table.items():
                left = "best of our targets" if ours == "best" else target_name(ours)
                by_shape = dict(pairs)
                md.append("| %s / %s | %s | %.2f |" % (left, labels_of[cell][peer], " | ".join(
                    "%.2f" % by_shape[r.shape] if r.shape in by_shape else "" for r in shapes),
                    geomean([v for _, v in pairs])))
            md.append("")
        md += ["GEMMs of the floor at %s: %s" % (shape_text(shapes[0].shape), "; ".join(g.text() for g in shapes[0].gemms)),
               ""]
    md += ["## Floors summary", ""]
    md += ["| cell | comparison | geometric mean over shapes |", "|---|---|---|"]
    for cell, label, value, _ in summary_rows(results, labels_of):
        md.append("| %s | %s | %s |" % (cell, label, "%.0f%%" % (100 * value) if "fraction" in label else "%.2f" % value))
    lines = losses(results, labels_of)
    md += ["", "## Where a target of ours loses to a peer", ""]
    md += ["- " + line for line in lines] if lines else ["Nowhere."]
    if context.get("sweep"):
        md += ["", "## LSTM scaling", "", context["sweep"], "", "![LSTM time against H and T](benchmark.png)"]
    md.append("")
    return "\n".join(md)


def sweep_table(sweeps):
    """Markdown table of the LSTM sweeps: {panel: [(shape, {label: seconds})]}."""
    lines = []
    for panel, points in sweeps.items():
        if not points:
            continue
        labels = list(points[0][1])
        lines += ["| %s | %s |" % (panel, " | ".join(labels)), "|---" * (len(labels) + 1) + "|"]
        for shape, times in points:
            lines.append("| %s | %s |" % (shape_text(shape), " | ".join(
                "%s ms" % ms(times[label]) if label in times else "" for label in labels)))
        lines.append("")
    return "\n".join(lines).rstrip()


def plot(sweeps, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, (panel, points) in zip(axes, sweeps.items()):
        axis = 3 if panel.startswith("H") else 1
        labels = list(points[0][1]) if points else []
        for label in labels:
            xs = [shape[axis] for shape, times in points if label in times]
            ys = [times[label] * 1e3 for shape, times in points if label in times]
            ax.plot(xs, ys, marker="o", label=label, linestyle="--" if "generated" not in label else "-")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("H (D = H)" if axis == 3 else "T")
        ax.set_ylabel("forward + backward, ms (median)")
        ax.set_title(panel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def median_times(timing, labels):
    return {labels[k]: float(np.median(v)) for k, v in timing.rounds.items() if v}
