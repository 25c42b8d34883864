"""The study harness above the API: the ablation studies (cells, runner, tables and plots),
the binarised-encoder ablation, box-error analysis and the benches' wall-time helpers."""
