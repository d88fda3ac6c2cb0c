"""Rows, statistics, the printed table and the result files.

A Row holds paired samples: round i measured ferry and the other side back
to back (their order alternating between rounds), so per-round ratios cancel
most of the machine's slow drifts.  The row's ratio is the median of the
per-round ratios; the spread is their min..max.

kinds
    time        lower is better; ratio = ferry / other
    rate        higher is better (throughput); ratio = ferry / other
    abs         the target is on ferry's own value (seconds or bytes);
                the ratio is shown for context only
"""

import json
import math
import os
import platform
import statistics
import time


def growth_exponent(sizes, totals):
    """The slope of log(total) against log(size), least squares over the
    points that have a total: 1 for cost linear in the size, 2 quadratic,
    0 flat.  None with fewer than two points (or a non-positive one)."""
    pts = [(math.log(n), math.log(t)) for n, t in zip(sizes, totals)
           if t is not None and t > 0 and n > 0]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in pts) / sxx


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


class Row:
    def __init__(self, group, title, kind, unit, other, target=None, note=""):
        self.group = group          # "kernel", "pool", "repl", "growth"
        self.title = title          # what is measured
        self.kind = kind            # "time", "rate" or "abs"
        self.unit = unit            # "s", "items/s", "B", "exp" (an exponent)
        self.other = other          # name of the comparison side
        self.target = target        # ("<=", x) / (">=", x) on ratio, or on ferry for abs
        self.note = note
        self.ferry = []             # samples, paired with other by index
        self.others = []
        self.errors = []            # why a sample is missing
        self.skipped = None         # reason the whole row did not run

    def add(self, ferry, other):
        self.ferry.append(ferry)
        self.others.append(other)

    def fail(self, why):
        if why not in self.errors:
            self.errors.append(why)

    def ratios(self):
        out = []
        for f, o in zip(self.ferry, self.others):
            if f is None or o is None or o == 0:
                continue
            out.append(f / o)
        return out

    def summary(self):
        r = self.ratios()
        f, o = median(self.ferry), median(self.others)
        s = {
            "group": self.group, "title": self.title, "kind": self.kind,
            "unit": self.unit, "other": self.other, "note": self.note,
            "ferry": self.ferry, "others": self.others,
            "ferry_median": f, "other_median": o,
            "ratio_median": median(r) if r else None,
            "ratio_min": min(r) if r else None,
            "ratio_max": max(r) if r else None,
            "rounds": len(r), "errors": self.errors, "skipped": self.skipped,
            "target": list(self.target) if self.target else None,
        }
        s["verdict"] = self.verdict(s)
        return s

    def verdict(self, s):
        if self.skipped:
            return "skip"
        if not self.target:
            return ""
        op, x = self.target
        v = s["ferry_median"] if self.kind == "abs" else s["ratio_median"]
        if v is None:
            return "FAIL"       # ferry side failed or never produced a number
        ok = v <= x if op == "<=" else v >= x
        return "ok" if ok else "FAIL"


def fmt_value(v, unit):
    if v is None:
        return "—"
    if unit == "s":
        if v < 1e-3:
            return "%.0f µs" % (v * 1e6)
        if v < 1:
            return "%.1f ms" % (v * 1e3)
        return "%.2f s" % v
    if unit == "B":
        sign = "-" if v < 0 else ""
        return "%s%.1f MiB" % (sign, abs(v) / 2**20)
    if unit == "exp":
        return "%.2f" % v
    if unit == "B/item":
        return "%.0f B/item" % v
    if unit.endswith("/s"):
        if v >= 1e4:
            return "%.0fk %s" % (v / 1e3, unit)
        return "%.0f %s" % (v, unit)
    return "%g %s" % (v, unit)


def fmt_target(row):
    if not row.target:
        return ""
    op, x = row.target
    sym = "≤" if op == "<=" else "≥"
    if row.kind == "abs":
        return "%s %s" % (sym, fmt_value(x, row.unit))
    return "%s %g×" % (sym, x)


def fmt_ratio(s):
    if s["ratio_median"] is None:
        return "—"
    m = s["ratio_median"]
    if s["rounds"] > 1:
        return "%.3g× (%.3g–%.3g)" % (m, s["ratio_min"], s["ratio_max"])
    return "%.3g×" % m


HEAD = ["row", "ferry", "other", "ratio (min–max)", "target", ""]


def table_rows(rows):
    out = []
    for row in rows:
        s = row.summary()
        verdict = s["verdict"]
        if row.skipped:
            cells = [row.title, "—",
                     "%s %s" % (row.other, fmt_value(median(row.others), row.unit)),
                     "skipped: " + row.skipped, fmt_target(row), "skip"]
        else:
            cells = [row.title,
                     fmt_value(s["ferry_median"], row.unit),
                     "%s %s" % (row.other, fmt_value(s["other_median"], row.unit)),
                     fmt_ratio(s), fmt_target(row), verdict]
            if row.errors:
                # The first reason only; the JSON has them all.
                first = (row.errors[0].splitlines() or [""])[0]
                more = " +%d more" % (len(row.errors) - 1) if len(row.errors) > 1 else ""
                cells[3] += " [%s%s]" % (first[:60], more)
        out.append(cells)
    return out


def print_table(rows, file=None):
    cells = table_rows(rows)
    widths = [max(len(c[i]) for c in cells + [HEAD]) for i in range(len(HEAD))]
    widths[3] = min(widths[3], 60)

    def line(c):
        return "  ".join(x.ljust(widths[i]) if i < 5 else x for i, x in enumerate(c)).rstrip()

    group = None
    print(line(HEAD), file=file)
    for row, c in zip(rows, cells):
        if row.group != group:
            group = row.group
            print("-- %s %s" % (group, "-" * 60), file=file)
        print(line(c), file=file)


def markdown(rows, meta):
    lines = ["Run %s, mode `%s`, commit `%s`, kernel `%s`, %d CPUs, load average "
             "%s before and %s after the run (%s s)." % (
                 meta["date"], meta["mode"], meta.get("commit"), meta.get("kernel"),
                 meta["cpus"], meta["loadavg"], meta.get("loadavg_after"),
                 meta.get("seconds")), ""]
    lines.append("| " + " | ".join(HEAD[:-1] + ["verdict"]) + " |")
    lines.append("|" + "---|" * len(HEAD))
    group = None
    for row, c in zip(rows, table_rows(rows)):
        if row.group != group:
            group = row.group
            lines.append("| **%s** | | | | | |" % group)
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in c) + " |")
    return "\n".join(lines) + "\n"


def meta(mode):
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "mode": mode, "host": platform.node(), "cpus": os.cpu_count(),
        "loadavg": "%.2f %.2f %.2f" % os.getloadavg(),
        "python": platform.python_version(),
    }


def write(rows, m, outdir):
    os.makedirs(outdir, exist_ok=True)
    base = os.path.join(outdir, m["mode"])
    data = {"meta": m, "rows": [r.summary() for r in rows]}

    def clean(x):
        if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
            return None
        return x
    with open(base + ".json", "w") as f:
        json.dump(data, f, indent=1, default=clean)
        f.write("\n")
    with open(base + ".md", "w") as f:
        f.write(markdown(rows, m))
    return base + ".json", base + ".md"
