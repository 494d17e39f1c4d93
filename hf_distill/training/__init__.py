"""Training a student: `DistillationConfig`, `DistillationTrainer`, the memory-bounded (chunked) losses, hidden-state
projections and on-policy generation."""
