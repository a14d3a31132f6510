"""Run folders and what is read from them: metrics, plots, the HTML report, comparisons.

Owns: the run folder contract (`run_folder`), figures (`metrics`), plots (`plots`), the
page (`html`, `report`), the console summary (`console`)."""
