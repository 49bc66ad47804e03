"""The parts of `benchmarks/accelerator_check.py` (one module each) and what they share:
`sizes` (the shapes of a full and a tiny run), `measure` (timing, FLOPs, MFU, memory, batch
fitting), `encoder_part`, `input_pipeline_part`, `correctness_part`, `captioner_part`."""
