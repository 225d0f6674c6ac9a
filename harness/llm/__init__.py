"""LLM pruning support: the pruning interface, the layer-wise calibration loop, calibration sets,
model resolution, latency measurement, text and zero-shot data, and the LLM task kinds."""
