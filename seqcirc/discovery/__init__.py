"""Discovery: the paper's iterative pruning and the .circ file it writes."""
