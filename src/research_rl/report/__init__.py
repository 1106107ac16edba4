"""Run reports: self-contained HTML with curves and a trajectory browser, plus PNG figures."""
