"""Architecture comparison: train or reuse each network on one fold under the same plans and budget, tabulate."""
from unetr_pp.comparison.compare import ComparisonOptions, comparison_folder, run_comparison
from unetr_pp.comparison.report import REPORT_FILES, markdown_report, result_row, write_comparison
from unetr_pp.comparison.runs import Budget, NetworkRun, parse_budget, training_decision

__all__ = ["Budget", "ComparisonOptions", "NetworkRun", "REPORT_FILES", "comparison_folder", "markdown_report",
           "parse_budget", "result_row", "run_comparison", "training_decision", "write_comparison"]
