"""The figures of `o1p analyze` (paper Figure 1 and Table 1) and `o1p compare` (Table 2).

matplotlib is imported only here, and only when a figure is drawn. Figures use the Agg canvas
directly, without pyplot, so no global state or display backend is touched. Each function
returns the `Figure`; its caller saves it (atomically) where its stage writes.

Tested by tests/e2e/test_analyze_cli.py and tests/e2e/test_compare_cli.py (the PNGs they write).
"""

from __future__ import annotations

from collections.abc import Sequence

from megatron_o1p.errors import SetupError


def require_matplotlib(command: str) -> None:
    """Raise SetupError naming `command` (e.g. "o1p analyze") when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:
        raise SetupError(
            f"{command} draws with matplotlib, which is not installed ({err}); "
            "pip install matplotlib"
        ) from err


def _agg_figure(figsize: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)  # the Agg backend, without touching pyplot's global state
    return fig


def length_disharmony_figure(stats: Sequence[Sequence], rows: Sequence, max_problems: int):
    """Figure 1 and Table 1 of the paper, side by side.

    Args:
        stats: per problem, its `analysis.IntervalStats` (interval 1 first).
        rows: `analysis.SummaryRow`s, one per interval, then "all".
        max_problems: problems drawn as thin lines in the left panel (the first ones).

    Returns:
        The figure: left, per-problem accuracy across intervals and their mean; right, mean
        accuracy and mean length per interval.
    """
    per_interval = rows[:-1]  # drop "all"
    xs = list(range(1, len(per_interval) + 1))
    fig = _agg_figure((11, 4.2))
    left, right = fig.subplots(1, 2)
    for j, per_problem in enumerate(stats[:max_problems]):
        left.plot(
            xs,
            [s.accuracy for s in per_problem],
            lw=0.7,
            marker="o",  # markers keep an interval visible between empty neighbours (K < M)
            ms=2,
            alpha=0.35,
            color="tab:blue",
            label="one problem" if j == 0 else None,
        )
    left.plot(xs, [r.accuracy for r in per_interval], lw=3, marker="o", color="black", label="mean")
    left.set(
        xlabel="length interval (1 = shortest)",
        ylabel="accuracy",
        xticks=xs,
        ylim=(-0.02, 1.02),
        title=f"per problem ({min(max_problems, len(stats))} of {len(stats)} shown)",
    )
    left.legend(loc="lower left")
    _interval_bars(right, xs, per_interval)
    fig.tight_layout()
    return fig


def _interval_bars(ax, xs: list[int], per_interval: Sequence) -> None:
    """Mean accuracy (left axis) and mean length (right axis) per interval, as paired bars."""
    width = 0.4
    ax.bar([x - width / 2 for x in xs], [r.accuracy for r in per_interval], width, color="tab:blue")
    ax.set(
        xlabel="length interval (1 = shortest)",
        ylabel="mean accuracy",
        xticks=xs,
        xlim=(0.4, len(xs) + 0.6),
        ylim=(0, 1),
        title="averaged over problems",
    )
    twin = ax.twinx()
    twin.bar(
        [x + width / 2 for x in xs],
        [r.mean_length for r in per_interval],
        width,
        color="tab:orange",
    )
    twin.set_ylabel("mean length (tokens)")
    ax.legend(
        handles=[ax.patches[0], twin.patches[0]],
        labels=["accuracy", "length"],
        loc="upper left",
    )


def compare_figure(rows: list[dict]):
    """Accuracy against mean length, one point per method (the baseline a black square).

    Args:
        rows: `evaluation.compare.compare_table` rows, the baseline first.

    Returns:
        The figure: one panel per benchmark, then one for the average, 4 panels a row.
    """
    benches = list(rows[0]["benchmarks"])
    panels = [(b, [r["benchmarks"][b] for r in rows]) for b in benches]
    panels.append(("average", [r["average"] for r in rows]))
    cols = min(len(panels), 4)
    nrows = (len(panels) + cols - 1) // cols
    fig = _agg_figure((4.2 * cols, 3.8 * nrows))
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax, (title, values) in zip(axes, panels):
        for r, v in zip(rows, values):
            ax.scatter(
                [v["length"]],
                [v["acc"]],
                marker="s" if r["is_baseline"] else "o",
                s=50,
                color="black" if r["is_baseline"] else None,
                zorder=3,
            )
            ax.annotate(
                r["method"], (v["length"], v["acc"]), textcoords="offset points", xytext=(5, 4)
            )
        ax.set(title=title, xlabel="mean length (tokens)", ylabel="accuracy (%)")
        ax.grid(alpha=0.3)
        ax.margins(0.2)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig
