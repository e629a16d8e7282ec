"""Benchmark of the inference engine (bot/engine) against a naive per-request
transformers loop and a raw batched ceiling. Run `python -m bench` (quick),
`python -m bench --full`, or `python -m bench --json`; see bench/RESULTS.md."""
