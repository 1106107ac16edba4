"""Run reports: self-contained HTML with curves and a trajectory browser, plus PNG figures."""

from research_rl.report.build import ReportResult, build_report
from research_rl.report.rundir import RunData, RunDirError, read_run

__all__ = ["ReportResult", "RunData", "RunDirError", "build_report", "read_run"]
