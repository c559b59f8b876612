"""Observability: Prometheus metrics, process and system gauges, the optional profiler."""
