"""Run reports: Markdown with tables, flat metric rows for JSON/CSV, and plots.

``write_report(run_dir, metrics, predictions)`` is the one call a run needs; the rest is public so
the CLI and the benchmarks can reuse the pieces (``metrics_to_rows`` for ``--json`` and CSV).
"""

from polymodal.reports.markdown import (
    BEATS,
    BELOW,
    MATCHES,
    compare_summaries,
    format_summary,
    higher_is_better,
    metrics_to_rows,
    render_markdown,
    write_report,
)
from polymodal.reports.plots import plot_binary, plot_survival

__all__ = [
    "BEATS",
    "BELOW",
    "MATCHES",
    "compare_summaries",
    "format_summary",
    "higher_is_better",
    "metrics_to_rows",
    "plot_binary",
    "plot_survival",
    "render_markdown",
    "write_report",
]
