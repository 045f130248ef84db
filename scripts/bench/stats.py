"""Summaries and tables: min / median / p95 in milliseconds, and ratios of medians."""

import statistics


def quantile(xs, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(secs):
    """seconds -> dict of ms (n, min, median, p95, max)."""
    ms = [s * 1e3 for s in secs]
    if not ms:
        return {"n": 0, "min": float("nan"), "median": float("nan"), "p95": float("nan"),
                "max": float("nan")}
    return {"n": len(ms), "min": min(ms), "median": statistics.median(ms),
            "p95": quantile(ms, 0.95), "max": max(ms)}


def paired_ratio(a, b):
    """Median over rounds of a[i]/b[i] (samples taken in the same round), or None."""
    rs = [x / y for x, y in zip(a, b) if x and y]
    return statistics.median(rs) if rs else None


def fmt_ms(v):
    if v != v:  # nan
        return "-"
    return "%.2f" % v if v < 100 else "%.0f" % v


def table(headers, rows, align=None):
    """Markdown table; also readable as plain text."""
    align = align or ["l"] + ["r"] * (len(headers) - 1)
    cols = [[str(h)] + [str(r[i]) for r in rows] for i, h in enumerate(headers)]
    widths = [max(len(c) for c in col) for col in cols]

    def line(cells):
        out = []
        for c, w, a in zip(cells, widths, align):
            out.append(c.rjust(w) if a == "r" else c.ljust(w))
        return "| " + " | ".join(out) + " |"
    sep = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2))
                         for w, a in zip(widths, align)) + "|"
    return "\n".join([line(headers), sep] + [line([str(c) for c in r]) for r in rows])
