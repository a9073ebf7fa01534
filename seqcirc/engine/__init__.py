"""The engine: batched node and edge interventions, means, memory, the means cache."""
