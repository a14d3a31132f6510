"""Run folders and what is read from them: metrics, plots, the HTML report, comparisons.

Owns: the run folder contract (`run_folder`; its CSV cells made by Arrow in `csv_format`;
equity.csv and benchmark.csv written while the engine runs by `minute_files`), figures (`metrics`, with `equity_figures`,
`trade_figures`, `metric_columns`), plots (`plots`: `chart_data`, `plot_kit`, `run_charts`,
`symbol_chart`; drawn in a second process by `chart_worker`, the symbols' by its fork
`chart_helper`), the page (`html`: its chart data in `chart_payloads`, its tables in `html_tables`;
`report`),
the console summary (`console`)."""
