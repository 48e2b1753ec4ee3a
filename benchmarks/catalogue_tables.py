"""The tables of ``benchmarks/catalogue.py``: rows of the small catalogue's runs (medians over
rounds), the driver's overhead per batch, the byte comparison, the dry run against the
command, and their printing."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from _common import table

Run = Any  # catalogue.Run: one executor's run of the small catalogue


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def small_rows(rounds: list[dict[str, Run]]) -> tuple[list[dict], list[dict]]:
    """One row per executor (medians over rounds), and the rows with each round for JSON."""
    rows, out_rows = [], []
    for key in rounds[0]:
        runs = [d[key] for d in rounds]
        first = runs[0]
        if first.note:
            row = {
                "executor": first.name,
                "workers x threads": f"{first.workers} x {first.threads}",
                "units": "-",
                "wall s": "-",
                "units/hour": "-",
                "startup s": "-",
                "estimate s": "-",
                "measured / estimate": "-",
                "target": "0.75-1.25",
                "note": first.note,
            }
        else:
            wall = median([x.seconds for x in runs])
            row = {
                "executor": first.name,
                "workers x threads": f"{first.workers} x {first.threads}",
                "units": first.units,
                "wall s": wall,
                "units/hour": median([3600 * x.units / x.seconds for x in runs]),
                "startup s": median([x.startup for x in runs])
                if first.startup == first.startup
                else "-",
                "estimate s": median([x.estimate for x in runs]),
                "measured / estimate": median([x.seconds / x.estimate for x in runs]),
                "target": "0.75-1.25",
                "note": "",
            }
        rows.append(row)
        out_rows.append(
            {
                **row,
                "key": key,
                "rounds": [
                    {
                        "seconds": x.seconds,
                        "startup": x.startup,
                        "estimate": x.estimate,
                        "calibration": x.calibration,
                        "batch_waited": x.waited,
                        "batch_rendered": x.rendered,
                    }
                    for x in runs
                ],
            }
        )
    return rows, out_rows


def overhead_rows(rounds: list[dict[str, Run]]) -> list[dict]:
    """Per executor: what the driver waited per batch beyond the render's own seconds."""
    over_rows = []
    for key in rounds[0]:
        runs = [d[key] for d in rounds if d[key].waited]
        if not runs:
            continue
        extra = [w - s for x in runs for w, s in zip(x.waited, x.rendered, strict=True)]
        share = [(w - s) / s for x in runs for w, s in zip(x.waited, x.rendered, strict=True)]
        rendered = [s for x in runs for s in x.rendered]
        busy = [sum(x.rendered) / (x.workers * x.seconds) for x in runs]
        over_rows.append(
            {
                "executor": runs[0].name,
                "batches": len(extra),
                "render s (median)": median(rendered),
                "driver waited - render, ms (median)": 1e3 * median(extra),
                "max ms": 1e3 * max(extra),
                "share (median)": f"{100 * median(share):.2f}%",
                "share (mean)": f"{100 * statistics.fmean(share):.2f}%",
                "workers busy": f"{100 * median(busy):.0f}%",
                "target": "< 5%" if runs[0].workers > 1 else "-",
            }
        )
    return over_rows


def byte_rows(rounds: list[dict[str, Run]]) -> list[dict]:
    """Each round's run against the same round's in-process run at the workers' threads."""
    byte_rows = []
    for key in ("whole", "ray"):
        pairs = [(d["same"], d[key]) for d in rounds if key in d and d[key].pngs]
        if not pairs:
            continue
        same = sum(ref.pngs.get(k) == v for ref, other in pairs for k, v in other.pngs.items())
        byte_rows.append(
            {
                "compared with": pairs[0][0].name,
                "executor": pairs[0][1].name,
                "PNGs": sum(len(other.pngs) for _, other in pairs),
                "byte-identical": f"{same} of {sum(len(ref.pngs) for ref, _ in pairs)}",
                "target": "all" if key == "ray" else "-",
            }
        )
    return byte_rows


def print_measured(rows: list[dict], over_rows: list[dict], byte_rows: list[dict]) -> None:
    """The small catalogue's tables: wall time, overhead per batch, same bytes."""
    headers = list(rows[0])[:-1]
    notes = [f"- {r['executor']}: {r['note']}" for r in rows if r["note"]]
    text = table(
        "Small catalogue on Lite0: catalogue.run's wall time (startup apart)",
        headers,
        [[r[h] for h in headers] for r in rows],
    )
    print("\n" + text + ("\n" + "\n".join(notes) if notes else ""), flush=True)

    if over_rows:
        print(
            "\n"
            + table(
                "Per batch: time from sending it to its result in the driver, minus the render's "
                "own seconds (RenderResult.seconds); workers busy = render seconds / (workers x "
                "wall)",
                list(over_rows[0]),
                [list(r.values()) for r in over_rows],
            ),
            flush=True,
        )

    if byte_rows:
        print(
            "\n" + table("Same bytes?", list(byte_rows[0]), [list(r.values()) for r in byte_rows])
        )


def dry_rows(found: list[dict]) -> list[dict]:
    """Per case and setting: medians over rounds of the estimate, the command's wall time and
    their ratio, each round's ratio, the load averages seen."""
    rows = []
    for key in dict.fromkeys((r["case"], r["setting"]) for r in found):
        mine = [r for r in found if (r["case"], r["setting"]) == key]
        ratios = [r["measured"] / r["estimate"] for r in mine]
        rows.append(
            {
                "case": key[0],
                "setting": key[1],
                "estimate s": median([r["estimate"] for r in mine]),
                "measured s": median([r["measured"] for r in mine]),
                "measured / estimate": median(ratios),
                "rounds": ", ".join(f"{x:.2f}" for x in ratios),
                "load average": ", ".join(f"{r['load']:.1f}" for r in mine),
                "target": "0.75-1.25",
            }
        )
    return rows


def print_dry(rows: list[dict]) -> None:
    """The dry run against the command, one row per case and setting."""
    title = "The dry run's expected time of the command against the command (medians)"
    print("\n" + table(title, list(rows[0]), [list(r.values()) for r in rows]), flush=True)
